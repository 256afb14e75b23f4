"""The HOG detector read from the cache folder is dlib's own: same boxes and scores, rebuilt when altered."""

from __future__ import annotations

from pathlib import Path

import dlib
import numpy as np
import pytest
from PIL import Image

from conftest import FIXTURES
from facesearch.vision.models.cache import is_intact
from facesearch.vision.models.dlib_models import DlibHogDetector

PHOTOS = sorted((FIXTURES / "identities").iterdir())[:4] + sorted((FIXTURES / "multi").iterdir())[:2]


def _cached_file(cache: Path) -> Path:
    (path,) = cache.glob("dlib-hog-frontal-*.svm")
    return path


def _dlib_detections(pixels: np.ndarray, upsample: int) -> list[tuple[int, int, int, int, float]]:
    rects, scores, _ = dlib.get_frontal_face_detector().run(pixels, upsample, 0.0)
    return [(r.left(), r.top(), r.right() + 1, r.bottom() + 1, round(s, 6)) for r, s in zip(rects, scores, strict=True)]


@pytest.mark.parametrize("photo", PHOTOS, ids=lambda p: p.name)
def test_the_cached_detector_finds_what_dlib_finds(photo: Path, tmp_path: Path) -> None:
    DlibHogDetector(tmp_path)  # writes the cache
    cached = DlibHogDetector(tmp_path)  # reads it
    pixels = np.asarray(Image.open(photo).convert("RGB"))
    for upsample in (0, 1):
        found = sorted((b.left, b.top, b.right, b.bottom, round(s, 6)) for b, s in cached.detect(pixels, upsample, 0.0))
        assert found == sorted(_dlib_detections(pixels, upsample))
    assert found, f"no face in {photo.name}"


def test_the_cache_is_written_once_with_its_checksum(tmp_path: Path) -> None:
    DlibHogDetector(tmp_path)
    path = _cached_file(tmp_path)
    assert is_intact(path)
    written = path.stat().st_mtime_ns
    DlibHogDetector(tmp_path)
    assert path.stat().st_mtime_ns == written


def test_an_altered_cache_file_is_rebuilt(tmp_path: Path) -> None:
    DlibHogDetector(tmp_path)
    path = _cached_file(tmp_path)
    original = path.read_bytes()
    path.write_bytes(original[: len(original) // 2])  # torn, as by a crash mid-write
    assert not is_intact(path)
    detector = DlibHogDetector(tmp_path)
    assert path.read_bytes() == original and is_intact(path)
    pixels = np.asarray(Image.open(PHOTOS[0]).convert("RGB"))
    assert detector.detect(pixels, 1, 0.0)


def test_an_unwritable_cache_folder_still_gives_a_detector(tmp_path: Path) -> None:
    blocked = tmp_path / "cache"
    blocked.write_text("a file where the cache folder should be")
    detector = DlibHogDetector(blocked)
    pixels = np.asarray(Image.open(PHOTOS[0]).convert("RGB"))
    assert detector.detect(pixels, 1, 0.0)
    assert blocked.read_text() == "a file where the cache folder should be"
