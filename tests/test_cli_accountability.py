"""Accountability commands as a person runs them: key, audit, rights, report, purge, collection delete."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from test_cli import CREATE, facesearch


@pytest.fixture
def data_dir(tmp_path: Path, identity_files: dict[str, list[Path]]) -> Path:
    folder = tmp_path / "data"
    assert facesearch(folder, "init").returncode == 0
    assert facesearch(folder, *CREATE).returncode == 0
    gallery = [path for paths in identity_files.values() for path in paths[:-1]]
    assert facesearch(folder, "ingest", "news", *gallery, "--workers", "1").returncode == 0
    return folder


def test_key_generate_writes_a_new_file_once(tmp_path: Path) -> None:
    key_file = tmp_path / "master.key"
    assert facesearch(tmp_path / "d", "key", "generate", "--out", key_file).returncode == 0
    assert len(key_file.read_text().strip()) == 44 and oct(key_file.stat().st_mode)[-3:] == "600"
    again = facesearch(tmp_path / "d", "key", "generate", "--out", key_file)
    assert again.returncode == 2 and "never overwritten" in again.stderr


def test_access_erase_and_audit_from_the_command_line(
    data_dir: Path, tmp_path: Path, identity_files: dict[str, list[Path]]
) -> None:
    _identity, paths = next(iter(identity_files.items()))
    access = facesearch(data_dir, "rights", "access", paths[-1], "--reference", "SAR-1", "--out", tmp_path / "sar")
    assert access.returncode == 0, access.stderr
    assert f"{len(paths) - 1} image(s) held for request SAR-1" in access.stdout
    assert (tmp_path / "sar" / "access-report.html").exists()

    erase = facesearch(
        data_dir, "rights", "erase", paths[-1], "--reference", "ER-1", "--json", "--out", tmp_path / "r.json"
    )
    assert erase.returncode == 0, erase.stderr
    receipt = json.loads(erase.stdout)["receipt"]
    assert receipt["faces_removed"] == len(paths) - 1
    assert json.loads((tmp_path / "r.json").read_text())["receipt"]["id"] == receipt["id"]

    after = json.loads(facesearch(data_dir, "search", paths[-1], "--purpose", "check", "--json").stdout)
    assert after["results"][0]["matches"] == []

    actions = [e["action"] for e in json.loads(facesearch(data_dir, "audit", "list", "--json").stdout)]
    assert actions == ["configuration", "ingest", "access-request", "export", "erasure", "search"]
    verified = facesearch(data_dir, "audit", "verify")
    assert verified.returncode == 0 and "audit log intact: 6 entries" in verified.stdout


def test_audit_verify_names_the_broken_entry_with_exit_code_10(data_dir: Path) -> None:
    with sqlite3.connect(data_dir / "catalog.sqlite3") as connection:
        connection.execute("UPDATE audit_events SET actor = 'mallory' WHERE seq = 2")
    result = facesearch(data_dir, "audit", "verify", "--json")
    assert result.returncode == 10
    assert json.loads(result.stdout)["first_broken_seq"] == 2


def test_report_shows_what_is_held_and_searches_by_purpose(
    data_dir: Path, identity_files: dict[str, list[Path]]
) -> None:
    probe = next(iter(identity_files.values()))[-1]
    for purpose in ("case A", "case A", "case B"):
        assert facesearch(data_dir, "search", probe, "--purpose", purpose).returncode == 0
    report = json.loads(facesearch(data_dir, "report", "--json").stdout)
    (collection,) = report["collections"]
    assert collection["name"] == "news" and collection["lawful_basis"] == "legitimate-interests"
    assert collection["images"] == sum(len(p) - 1 for p in identity_files.values())
    assert collection["next_purge_at"] is not None
    assert report["searches_by_purpose"] == {"case A": 2, "case B": 1}
    future = json.loads(facesearch(data_dir, "report", "--since", "2999-01-01", "--json").stdout)
    assert future["searches_by_purpose"] == {}
    assert "searches by purpose" in facesearch(data_dir, "report").stdout


def test_purge_and_collection_delete(data_dir: Path) -> None:
    assert "nothing expired" in facesearch(data_dir, "purge").stdout
    refused = facesearch(data_dir, "collection", "delete", "news", "--yes")
    assert refused.returncode == 2 and "--reason" in refused.stderr
    deleted = facesearch(data_dir, "collection", "delete", "news", "--reason", "project ended", "--yes")
    assert deleted.returncode == 0 and "key is destroyed" in deleted.stdout
    assert json.loads(facesearch(data_dir, "collection", "list", "--json").stdout) == []


def test_bad_audit_filters_are_refused(data_dir: Path) -> None:
    bad_action = facesearch(data_dir, "audit", "list", "--action", "dance")
    assert bad_action.returncode == 2 and "'dance' is not one of" in bad_action.stderr
    bad_time = facesearch(data_dir, "audit", "list", "--since", "yesterday")
    assert bad_time.returncode == 2 and "ISO 8601" in bad_time.stderr
