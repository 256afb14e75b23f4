"""Thin, extreme-aspect and one-pixel images: refused or analysed within a bounded memory and time.

Before the pixel budget each of the thin shapes below took 2.3 to over 6 GB and 20-30 s (the tight-crop retry
doubled a 1 px side four times after adding a 512 px border); a one-pixel image crashed in dlib."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from bench import extreme_shapes
from bench.extreme_shapes import rss_mb
from PIL import Image

from conftest import FIXTURES
from facesearch.core.errors import ImageError, NoFaceError
from facesearch.core.settings import Settings
from facesearch.vision.analysis import FaceAnalyser
from facesearch.vision.api import detect_faces
from facesearch.vision.pipeline import UPSAMPLE_BUDGET, upsample_times

SRC = Path(__file__).resolve().parents[1] / "src"
SHAPES = (*extreme_shapes.SHAPES, ("2048x24.png", 2048, 24, "PNG"))
CEILING_MB = 400
"""Peak resident memory allowed to the whole child process (models loaded: about 85 MB)."""
SECONDS_PER_IMAGE = 15.0
"""Generous for two shared cores: the slowest shape (20x2048, five HOG scans) takes about 4.5 s alone."""

CHILD = """
import json, sys, time
from pathlib import Path
from facesearch.core.errors import FacesearchError
from facesearch.core.settings import Settings
from facesearch.vision.analysis import FaceAnalyser
analyser = FaceAnalyser(Settings())
for name in sys.argv[1:]:
    start = time.perf_counter()
    try:
        outcome = len(analyser.detect(Path(name)).faces)
    except FacesearchError as error:
        outcome = str(error)
    print(json.dumps({"name": Path(name).name, "outcome": outcome, "seconds": time.perf_counter() - start}), flush=True)
"""


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header says ``width`` x ``height`` RGB, with one compressed row of data (writing a real
    1x90,000,000 PNG takes 15 s; the header is all that facesearch may look at before refusing it)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    row = zlib.compress(bytes(1 + 3 * width))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", row) + chunk(b"IEND", b"")


def test_each_extreme_shape_is_refused_or_analysed_in_bounded_memory_and_time(tmp_path: Path) -> None:
    paths = []
    for name, width, height, fmt in SHAPES:
        if width * height > 10_000_000:
            (tmp_path / name).write_bytes(png_header_only(width, height))
        else:
            Image.new("RGB", (width, height), (128, 128, 128)).save(tmp_path / name, fmt)
        paths.append(str(tmp_path / name))
    env = dict(os.environ, PYTHONPATH=str(SRC))
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, *paths], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    peak, start = 0, time.monotonic()
    while child.poll() is None:
        peak = max(peak, rss_mb(child.pid))
        if peak > CEILING_MB or time.monotonic() - start > SECONDS_PER_IMAGE * len(SHAPES):
            child.kill()
            child.wait()
            pytest.fail(f"analysis stopped at {peak} MB after {time.monotonic() - start:.0f} s")
        time.sleep(0.02)
    out, err = child.communicate()
    assert child.returncode == 0, err
    results = {row["name"]: row for row in map(json.loads, out.splitlines())}
    assert set(results) == {name for name, *_ in SHAPES}
    for name in ("3x9000.png", "1x20000.png", "20000x1.png", "1x65000.jpg", "1x90000000.png"):
        assert "too thin to hold a face" in results[name]["outcome"], results[name]
    for name in ("20x2048.png", "8x1000.png", "2048x24.png", "1x1.png"):
        assert results[name]["outcome"] == 0, results[name]
    slowest = max(results.values(), key=lambda row: row["seconds"])
    assert slowest["seconds"] < SECONDS_PER_IMAGE, slowest


def test_one_pixel_image_gives_no_face_or_a_no_face_error(tmp_path: Path) -> None:
    path = tmp_path / "dot.png"
    Image.new("RGB", (1, 1), (200, 10, 10)).save(path)
    analyser = FaceAnalyser(Settings())
    assert analyser.detect(path).faces == []
    with pytest.raises(NoFaceError, match="no face found"):
        analyser.analyse_or_fail(path)
    for shape in ((1, 1, 3), (1, 500, 3), (500, 1, 3), (3, 3)):
        assert detect_faces(np.zeros(shape, np.uint8)) == []


def test_arrays_are_checked_and_reduced_like_files() -> None:
    with pytest.raises(ImageError, match="too thin to hold a face"):
        detect_faces(np.zeros((1, 20000, 3), np.uint8))
    with pytest.raises(ImageError, match="is not an image"):
        detect_faces(np.zeros((10, 10, 4), np.uint8))
    photo = np.asarray(Image.open(FIXTURES / "identities" / "obama__1.jpg").convert("RGB"))
    large = np.asarray(Image.fromarray(photo).resize((photo.shape[1] * 8, photo.shape[0] * 8)))
    faces = detect_faces(large, Settings(detect_max_side=1280))
    assert len(faces) == 1
    assert faces[0].box.width > 400  # reported in the array's own pixels


@pytest.mark.parametrize(("height", "width", "padded"), [(20, 2048, (1044, 3072)), (1, 2048, (1025, 3072))])
def test_doubling_stays_within_the_budget_whatever_the_shape(height: int, width: int, padded: tuple[int, int]) -> None:
    settings = Settings()
    pixels = padded[0] * padded[1]
    times = upsample_times(height, width, settings.upsample_max_pixels, 600, 0.4, scanned_pixels=pixels)
    assert pixels * 4**times <= UPSAMPLE_BUDGET * settings.upsample_max_pixels
    # an ordinary photo is doubled as before
    assert upsample_times(250, 250, settings.upsample_max_pixels, 600) == 2
    assert upsample_times(480, 640, settings.upsample_max_pixels, 600) == 1


def test_the_cli_detects_no_face_in_a_one_pixel_image_and_refuses_a_thin_one(tmp_path: Path) -> None:
    dot, strip = tmp_path / "dot.png", tmp_path / "strip.png"
    Image.new("RGB", (1, 1)).save(dot)
    strip.write_bytes(png_header_only(3, 9000))
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FACESEARCH_")} | {"PYTHONPATH": str(SRC)}
    command = [sys.executable, "-m", "facesearch", "detect", "--json"]
    found = subprocess.run([*command, str(dot)], capture_output=True, text=True, env=environment, timeout=120)
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)["faces"] == []
    refused = subprocess.run([*command, str(strip)], capture_output=True, text=True, env=environment, timeout=120)
    assert refused.returncode == 3 and "too thin to hold a face" in refused.stderr
    assert "Traceback" not in refused.stderr + found.stderr
