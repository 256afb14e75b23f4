"""The facesearch command as a person runs it: real processes, exit codes, tables and JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FIXTURES, SAMPLES
from facesearch.safeguards.vault import generate_master_key

CREATE = [
    "collection", "create", "news", "--purpose", "Find archive photos of people in reader requests",
    "--basis", "legitimate-interests", "--condition", "substantial-public-interest", "--retention", "2y",
]  # fmt: skip


MASTER_KEY = generate_master_key()


def facesearch(
    data_dir: Path, *args: str | Path, key: str = MASTER_KEY, settings: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The CLI in its own process, with no ``FACESEARCH_*`` variable but the key and ``settings``."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FACESEARCH_")} | (settings or {})
    return subprocess.run(
        [sys.executable, "-m", "facesearch", "--data-dir", str(data_dir), "--actor", "cli-test", *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env={**environment, "FACESEARCH_MASTER_KEY": key},
    )


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    assert facesearch(folder, "init").returncode == 0
    assert facesearch(folder, *CREATE).returncode == 0
    return folder


def test_ingest_then_search_prints_matches_and_json(data_dir: Path, identity_files: dict[str, list[Path]]) -> None:
    _identity, paths = next(iter(identity_files.items()))
    ingest = facesearch(data_dir, "ingest", "news", *paths[:-1], "--workers", "1")
    assert ingest.returncode == 0, ingest.stderr
    assert f"{len(paths) - 1} images added" in ingest.stdout

    text = facesearch(data_dir, "search", paths[-1], "--purpose", "case 17")
    assert text.returncode == 0, text.stderr
    assert "distance" in text.stdout and paths[0].name in text.stdout

    result = json.loads(facesearch(data_dir, "search", paths[-1], "--json", "--top-k", "1", "--purpose", "c 17").stdout)
    (probe,) = result["results"]
    (match,) = probe["matches"]
    assert match["collection"] == "news" and Path(match["image_path"]).name in {p.name for p in paths}
    assert len(match["box"]) == 4 and match["distance"] < result["threshold"]


def test_failed_files_give_exit_code_7_and_a_listed_reason(data_dir: Path) -> None:
    result = facesearch(data_dir, "ingest", "news", FIXTURES / "corrupt", "--json")
    assert result.returncode == 7
    report = json.loads(result.stdout)
    assert {Path(f["path"]).name for f in report["failed"]} == {p.name for p in (FIXTURES / "corrupt").iterdir()}


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["search", "missing.jpg", "--purpose", "case 1"], 3, "missing.jpg: no such file"),
        (["search", FIXTURES / "corrupt" / "truncated.jpg", "--purpose", "case 1"], 3, "truncated"),
        (["search", FIXTURES / "rotated" / "exif6.jpg"], 9, "needs a stated purpose"),
        (["ingest", "nope", FIXTURES / "noface"], 5, "collection 'nope' does not exist"),
        (["ingest", "news", "nowhere/"], 2, "nowhere not found"),
        (["search", FIXTURES / "noface" / "banana.jpg", "--purpose", "case 1"], 4, "no face found"),
        (["search", FIXTURES / "rotated" / "exif6.jpg", "--top-k", "0", "--purpose", "case 1"], 2, "--top-k"),
        (CREATE, 6, "already exists"),
        (["collection", "create", "x", "--purpose", "short", "--basis", "consent", "--condition",
          "explicit-consent", "--retention", "1y"], 2, "purpose 'short' is too short"),
        (["collection", "show", "nope"], 5, "does not exist"),
    ],
)  # fmt: skip
def test_bad_input_gets_one_line_and_its_exit_code(
    data_dir: Path, args: list[str | Path], code: int, message: str
) -> None:
    result = facesearch(data_dir, *args)
    assert result.returncode == code, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_uninitialised_data_folder_exits_8(tmp_path: Path) -> None:
    result = facesearch(tmp_path / "none", "stats")
    assert result.returncode == 8 and "facesearch init" in result.stderr


def test_wrong_master_key_exits_8_and_says_so(data_dir: Path) -> None:
    result = facesearch(data_dir, "stats", key=generate_master_key())
    assert result.returncode == 8 and "master key does not open this data folder" in result.stderr


def test_verify_needs_a_purpose_is_audited_and_detect_needs_no_data_folder(
    data_dir: Path, tmp_path: Path, identity_files: dict[str, list[Path]]
) -> None:
    first, second = next(iter(identity_files.values()))[:2]
    refused = facesearch(data_dir, "verify", first, second)
    assert refused.returncode == 9 and "--purpose, or FACESEARCH_PURPOSE" in refused.stderr
    verdict = json.loads(facesearch(data_dir, "verify", first, second, "--purpose", "case 9", "--json").stdout)
    assert verdict["match"] is True and verdict["threshold"] == 0.6
    (entry,) = json.loads(facesearch(data_dir, "audit", "list", "--action", "verify", "--json").stdout)
    assert entry["actor"] == "cli-test" and entry["details"]["match"] is True and entry["purpose"] == "case 9"
    drawn = tmp_path / "boxes.png"
    group = sorted((FIXTURES / "multi").iterdir())[0]
    detected = facesearch(tmp_path / "none", "detect", group, "--draw", drawn, "--json")
    assert detected.returncode == 0, detected.stderr
    assert len(json.loads(detected.stdout)["faces"]) >= 2
    assert drawn.stat().st_size > 0


def test_collection_list_show_and_stats_as_json(data_dir: Path) -> None:
    (listed,) = json.loads(facesearch(data_dir, "collection", "list", "--json").stdout)
    shown = json.loads(facesearch(data_dir, "collection", "show", "news", "--json").stdout)
    assert listed == shown
    assert shown["lawful_basis"] == "legitimate-interests" and shown["retention_days"] == 730
    stats = json.loads(facesearch(data_dir, "stats", "--json").stdout)
    assert stats["collections"][0]["name"] == "news"
    assert stats["template_views"] == 4
    assert "templates from 4 view(s)" in facesearch(data_dir, "stats").stdout


def test_demo_indexes_the_samples_and_finds_each_probes_person(tmp_path: Path) -> None:
    result = facesearch(tmp_path / "demo", "demo", "--samples", SAMPLES, "--workers", "2")
    assert result.returncode == 0, result.stderr
    blocks = [block.strip().splitlines() for block in result.stdout.split("\n\n") if "match(es)" in block]
    assert len(blocks) == len(list((SAMPLES / "probes").iterdir()))
    for header, *matches in blocks:
        person = header.split(".")[0]  # probes are named after the person: bbt_howard.png
        assert matches, f"no match for {person}"
        assert all(person in Path(line.split()[1]).name for line in matches), (person, matches)
    report = (tmp_path / "demo" / "demo-report.html").read_text()
    assert report.count("<figure class='match'>") == sum(len(block) - 1 for block in blocks)
