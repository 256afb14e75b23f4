"""Fuzzing image bytes (Hypothesis, derandomized): malformed and extreme images through ``FaceAnalyser`` and the
library's ``detect_faces``, and a folder of them through a real ingest. Every outcome is a result or a
``FacesearchError`` with a message, never another exception, and the ingest's memory stays bounded."""

from __future__ import annotations

import io
import json
import os
import random
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from bench.extreme_shapes import rss_mb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from conftest import FIXTURES
from facesearch.core.errors import FacesearchError
from facesearch.core.settings import Settings
from facesearch.safeguards.vault import generate_master_key
from facesearch.vision.analysis import FaceAnalyser
from facesearch.vision.api import detect_faces

SRC = Path(__file__).resolve().parents[1] / "src"
REAL_FILES = sorted(
    path
    for folder in ("identities", "formats", "rotated", "multi", "noface")
    for path in (FIXTURES / folder).iterdir()
    if path.is_file() and path.suffix.lower() not in {".md", ".csv"}
)[::3]
REAL_BYTES = [path.read_bytes() for path in REAL_FILES]
real_bytes = st.integers(0, len(REAL_BYTES) - 1).map(REAL_BYTES.__getitem__)  # indexes: a short repr
FUZZ = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
INGEST_CEILING_MB = 500


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_header(width: int, height: int, rows: int = 1) -> bytes:
    """A PNG that claims ``width`` x ``height`` with the data of at most ``rows`` rows."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = zlib.compress(bytes((1 + 3 * min(width, 4096)) * rows))
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


def gif_header(width: int, height: int) -> bytes:
    width, height = min(width, 65535), min(height, 65535)
    return b"GIF89a" + struct.pack("<HHBBB", width, height, 0, 0, 0) + b",\x00\x00\x00\x00" + bytes(8)


def bmp_header(width: int, height: int) -> bytes:
    width, height = (max(-(2**31), min(side, 2**31 - 1)) for side in (width, height))
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 54 + 64, 0, 0, 54) + info + bytes(64)


def jpeg_header(width: int, height: int) -> bytes:
    """A baseline JPEG's start with its frame header claiming ``width`` x ``height``, then garbage."""
    width, height = min(width, 65535), min(height, 65535)
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, height, width, 3) + bytes.fromhex("011100021101031101")
    return b"\xff\xd8" + sof + b"\xff\xda\x00\x0c\x03\x01\x00\x02\x11\x03\x11\x00\x3f\x00" + bytes(32) + b"\xff\xd9"


def encoded(width: int, height: int, fmt: str, seed: int) -> bytes:
    noise = random.Random(seed).randbytes(width * height * 3)
    buffer = io.BytesIO()
    Image.frombytes("RGB", (width, height), noise).save(buffer, fmt)
    return buffer.getvalue()


sides = st.integers(min_value=0, max_value=2**31 - 1)
headers = st.builds(
    lambda make, width, height: make(width, height),
    st.sampled_from([png_header, gif_header, bmp_header, jpeg_header]),
    st.one_of(sides, st.integers(0, 70000)),
    st.one_of(sides, st.integers(0, 70000)),
)
truncated = real_bytes.flatmap(lambda data: st.integers(0, len(data)).map(lambda n: data[:n]))
flipped = st.tuples(real_bytes, st.lists(st.tuples(st.integers(0), st.integers(0, 255)), max_size=8))
thin = st.builds(
    lambda short, long, wide, fmt, seed: encoded(long, short, fmt, seed) if wide else encoded(short, long, fmt, seed),
    st.integers(1, 24),
    st.integers(1, 3000),
    st.booleans(),
    st.sampled_from(["PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP"]),
    st.integers(0, 1000),
)
malformed = st.one_of(
    st.binary(max_size=4096),
    truncated,
    flipped.map(lambda pair: _flip(*pair)),
    headers,
    thin,
)


def _flip(data: bytes, flips: list[tuple[int, int]]) -> bytes:
    changed = bytearray(data)
    for offset, value in flips:
        changed[offset % len(changed)] = value
    return bytes(changed)


ANALYSER = FaceAnalyser(Settings())


def _result_or_error(run: Callable[[], object]) -> None:
    try:
        run()
    except FacesearchError as error:
        assert error.message.strip(), "an error without a message"


@FUZZ
@given(data=malformed)
def test_any_bytes_are_analysed_or_refused_with_a_message(data: bytes) -> None:
    _result_or_error(lambda: ANALYSER.detect(data, "fuzzed"))
    _result_or_error(lambda: ANALYSER.analyse(data, "fuzzed"))


@FUZZ
@given(data=st.one_of(thin, truncated, headers))
def test_the_library_gives_a_result_or_a_facesearch_error(
    data: bytes, tmp_path_factory: pytest.TempPathFactory
) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "image.png"
    path.write_bytes(data or b"\x00")
    _result_or_error(lambda: detect_faces(path))


def malformed_folder(folder: Path, seed: int = 20) -> int:
    """A seeded mix of the fuzzed kinds of file, one of each kind at several sizes; returns how many."""
    rng = random.Random(seed)
    files: list[tuple[str, bytes]] = [
        ("random.jpg", rng.randbytes(2048)),
        ("empty.png", b""),
        ("png-huge.png", png_header(2**31 - 1, 2**31 - 1)),
        ("png-thin.png", png_header(1, 90_000_000)),
        ("png-wide.png", png_header(65000, 3)),
        ("gif-huge.gif", gif_header(65535, 65535)),
        ("gif-thin.gif", gif_header(65535, 1)),
        ("bmp-huge.bmp", bmp_header(2**31 - 1, 1)),
        ("bmp-negative.bmp", bmp_header(-5, -(2**31))),
        ("jpeg-huge.jpg", jpeg_header(65535, 65535)),
        ("jpeg-thin.jpg", jpeg_header(1, 65500)),
        ("one-pixel.png", encoded(1, 1, "PNG", 1)),
        ("thin-24x600.png", encoded(24, 600, "PNG", 2)),
        ("thin-3000x8.jpg", encoded(3000, 8, "JPEG", 3)),
        ("heic.jpg", b"\x00\x00\x00\x18ftypheic" + bytes(64)),
    ]
    for index, data in enumerate(REAL_BYTES[:5]):
        files.append((f"truncated-{index}.jpg", data[: rng.randrange(len(data))]))
        files.append((f"flipped-{index}.png", _flip(data, [(rng.randrange(len(data)), rng.randrange(256))] * 4)))
    for name, data in files:
        (folder / name).write_bytes(data)
    return len(files)


def test_an_ingest_of_malformed_files_reports_each_and_stays_bounded(tmp_path: Path) -> None:
    folder = tmp_path / "fuzzed"
    folder.mkdir()
    count = malformed_folder(folder)
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FACESEARCH_")}
    environment |= {"FACESEARCH_MASTER_KEY": generate_master_key(), "FACESEARCH_DATA_DIR": str(tmp_path / "data")}
    environment["PYTHONPATH"] = str(SRC)
    base = [sys.executable, "-m", "facesearch"]
    for args in (["init"], ["collection", "create", "fuzz", "--purpose", "Fuzzing the ingest of malformed files",
                            "--basis", "legitimate-interests", "--condition", "substantial-public-interest",
                            "--retention", "1y"]):  # fmt: skip
        subprocess.run([*base, *args], env=environment, check=True, capture_output=True, timeout=120)
    command = [*base, "ingest", "fuzz", str(folder), "--json", "--workers", "1", "--no-progress"]
    child = subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peak, start = 0, time.monotonic()
    while child.poll() is None:
        peak = max(peak, rss_mb(child.pid))
        if peak > INGEST_CEILING_MB or time.monotonic() - start > 120:
            child.kill()
            child.wait()
            pytest.fail(f"ingest stopped at {peak} MB after {time.monotonic() - start:.0f} s")
        time.sleep(0.02)
    out, err = child.communicate()
    assert child.returncode in (0, 7), err.decode()
    assert b"Traceback" not in err
    report = json.loads(out.decode("utf-8"))
    accounted = report["images_added"] + report["skipped_already_indexed"]
    accounted += len(report["failed"]) + len(report["unsupported"])
    assert report["files_seen"] == count and accounted == count
    assert all(entry["reason"].strip() and "unexpected error" not in entry["reason"] for entry in report["failed"])
