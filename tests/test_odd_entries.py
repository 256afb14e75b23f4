"""Odd directory entries and unsupported formats: each is reported as that file's outcome, the rest is indexed.

A self-referencing symlink used to abort the whole ingest with a traceback, and a file name that is not UTF-8
failed its whole batch of 64 at write time, on every re-run; HEIC, AVIF and JPEG 2000 files were skipped
without a word."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import ACTOR, FIXTURES, PURPOSE, news_spec
from facesearch.core.errors import ImageError
from facesearch.core.paths import path_bytes, path_text
from facesearch.engine.engine import Engine
from facesearch.safeguards.vault import generate_master_key
from facesearch.vision.imaging import read_image_file

LATIN1_NAME = os.fsdecode(b"caf\xe9.jpg")
HEIC_BYTES = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64)
JP2_BYTES = b"\x00\x00\x00\x0cjP  \r\n\x87\n" + bytes(64)


@pytest.fixture
def odd_folder(tmp_path: Path) -> Path:
    """Three real photos among every kind of odd entry."""
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    (folder / "named-like.jpg").mkdir()
    faces = FIXTURES / "identities"
    shutil.copy(faces / "obama__1.jpg", folder / "good.jpg")
    shutil.copy(faces / "obama__2.jpg", folder / LATIN1_NAME)
    shutil.copy(faces / "bbt_penny__1.png", folder / "named-like.jpg" / "inside.png")
    (folder / "self.jpg").symlink_to("self.jpg")
    (folder / "dangling.jpg").symlink_to("nowhere.jpg")
    (folder / "sub" / "up").symlink_to("..")  # a folder loop, never followed
    (folder / "linked-folder.jpg").symlink_to("sub")
    (folder / "zero.jpg").symlink_to("/dev/zero")
    os.mkfifo(folder / "pipe.jpg")
    (folder / "phone.heic").write_bytes(HEIC_BYTES)
    (folder / "scan.jp2").write_bytes(JP2_BYTES)
    (folder / "other.avif").write_bytes(b"\x00\x00\x00\x18ftypavif" + bytes(64))
    (folder / "renamed.jpg").write_bytes(HEIC_BYTES)  # known by its content
    return folder


@pytest.fixture(autouse=True)
def no_hang() -> Iterator[None]:
    """A FIFO opened for reading would block for ever: fail instead after 60 s."""

    def stop(signum: int, frame: object) -> None:
        raise TimeoutError("blocked: a FIFO or device was opened")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def test_each_odd_entry_is_that_files_failure_and_the_rest_is_indexed(engine: Engine, odd_folder: Path) -> None:
    engine.create_collection(news_spec(), ACTOR)
    report = engine.ingest("news", [odd_folder], ACTOR, workers=1)
    failed = {Path(f.path).name: f.reason for f in report.failed}
    assert set(failed) == {"self.jpg", "dangling.jpg", "zero.jpg", "pipe.jpg"}
    assert "symbolic link loop" in failed["self.jpg"]
    assert "broken symbolic link" in failed["dangling.jpg"]
    assert "not a regular file" in failed["pipe.jpg"] and "not a regular file" in failed["zero.jpg"]
    assert report.images_added == 3  # good.jpg, the Latin-1 name, and the photo inside the folder named like one
    assert {(Path(f.path).name, f.format) for f in report.unsupported} == {
        ("phone.heic", "HEIC"),
        ("scan.jp2", "JPEG 2000"),
        ("other.avif", "AVIF"),
        ("renamed.jpg", "HEIC"),
    }
    assert all("convert them to JPEG or PNG" in f.advice for f in report.unsupported)

    again = engine.ingest("news", [odd_folder], ACTOR, workers=1)  # a re-run adds nothing and fails the same
    assert again.skipped_already_indexed == 3 and len(again.failed) == 4

    matches = engine.search(FIXTURES / "identities" / "obama__3.jpg", ACTOR, PURPOSE).results[0].matches
    sources = {match.image_path for match in matches}
    assert str(odd_folder / "good.jpg") in sources
    stored = next(source for source in sources if source.endswith("caf\\xe9.jpg"))
    assert path_bytes(stored) == os.fsencode(odd_folder / LATIN1_NAME)  # lossless, and valid UTF-8


def test_cli_json_stays_valid_utf8_with_a_non_utf8_name(tmp_path: Path, odd_folder: Path) -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FACESEARCH_")}
    environment |= {"FACESEARCH_MASTER_KEY": generate_master_key(), "FACESEARCH_DATA_DIR": str(tmp_path / "d")}
    environment["PYTHONPATH"] = str(Path(__file__).resolve().parents[1] / "src")

    def facesearch(*args: str | Path) -> subprocess.CompletedProcess[bytes]:
        command = [sys.executable, "-m", "facesearch", *map(str, args)]
        return subprocess.run(command, capture_output=True, env=environment, timeout=300, check=False)

    assert facesearch("init").returncode == 0
    spec = news_spec()
    create = facesearch(
        "collection", "create", "news", "--purpose", spec.purpose, "--basis", "legitimate-interests",
        "--condition", "substantial-public-interest", "--retention", "2y",
    )  # fmt: skip
    assert create.returncode == 0, create.stderr
    result = facesearch("ingest", "news", odd_folder, "--json", "--workers", "1", "--no-progress")
    assert result.returncode == 7, result.stderr  # some files failed, each listed
    assert b"Traceback" not in result.stderr
    report = json.loads(result.stdout.decode("utf-8"))  # strict UTF-8
    assert report["images_added"] == 3 and len(report["failed"]) == 4
    assert sorted(entry["format"] for entry in report["unsupported"]) == ["AVIF", "HEIC", "HEIC", "JPEG 2000"]
    text = facesearch("ingest", "news", odd_folder, "--workers", "1", "--no-progress").stdout.decode("utf-8")
    assert "4 skipped (format not supported)" in text and "convert them to JPEG or PNG" in text


def test_a_fifo_or_device_named_directly_is_refused_without_being_read(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    for path in (fifo, Path("/dev/zero"), Path("/dev/null")):
        with pytest.raises(ImageError, match="not a regular file"):
            read_image_file(path, 1_000_000)


def test_an_unreadable_file_is_reported_and_the_rest_indexed(engine: Engine, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(FIXTURES / "identities" / "obama__1.jpg", folder / "a.jpg")
    shutil.copy(FIXTURES / "identities" / "obama__2.jpg", folder / "locked.jpg")
    (folder / "locked.jpg").chmod(0)
    engine.create_collection(news_spec(), ACTOR)
    report = engine.ingest("news", [folder], ACTOR, workers=1)
    if os.geteuid() == 0:  # root reads a file whatever its mode
        assert report.images_added == 2 and not report.failed
    else:
        assert report.images_added == 1
        assert [("locked.jpg", "permission denied" in f.reason) for f in report.failed] == [("locked.jpg", True)]


def test_path_text_is_valid_utf8_and_lossless() -> None:
    for raw in (b"caf\xe9.jpg", "café.jpg".encode(), b"/a/\xff\xfe/b.png", b"plain.jpg"):
        text = path_text(os.fsdecode(raw))
        text.encode("utf-8")
        assert path_bytes(text) == raw
    assert path_text("café.jpg") == "café.jpg"


def test_uploads_of_unsupported_formats_are_listed_as_skipped(engine: Engine) -> None:
    engine.create_collection(news_spec(), ACTOR)
    photo = (FIXTURES / "identities" / "obama__1.jpg").read_bytes()
    uploads = [("phone.heic", HEIC_BYTES), ("scan.jp2", JP2_BYTES), ("renamed.jpg", HEIC_BYTES), ("a.jpg", photo)]
    report = engine.ingest_uploads("news", uploads, ACTOR).report
    assert report.images_added == 1 and not report.failed
    assert [(f.path, f.format) for f in report.unsupported] == [
        ("phone.heic", "HEIC"),
        ("scan.jp2", "JPEG 2000"),
        ("renamed.jpg", "HEIC"),
    ]
