"""Detection and embedding with the real dlib models on the committed fixture photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import FIXTURES, fixture_manifest
from facesearch.core.settings import DEFAULT_MATCH_THRESHOLD, Settings
from facesearch.vision.analysis import FaceAnalyser
from facesearch.vision.api import detect_faces, embed_faces, load_image_file, verify_faces
from facesearch.vision.distance import face_distance
from facesearch.vision.recipes import FUSED_INT8_SCALE

FACE_FIXTURES = [row for row in fixture_manifest() if row["expected_faces"] and not row["file"].startswith("corrupt")]


@pytest.mark.parametrize("row", FACE_FIXTURES, ids=[row["file"] for row in FACE_FIXTURES])
def test_fixture_face_counts(row: dict[str, str]) -> None:
    faces = detect_faces(FIXTURES / row["file"])
    assert len(faces) == int(row["expected_faces"]), row["note"]


def test_boxes_landmarks_and_scores_are_plausible() -> None:
    path = next(p for p in sorted((FIXTURES / "identities").iterdir()))
    width, height = Image.open(path).size
    (face,) = detect_faces(path)
    box = face.box
    assert 0 <= box.left < box.right <= width and 0 <= box.top < box.bottom <= height
    assert face.score > 0
    assert len(face.landmarks) == 5
    # Landmarks (eyes and nose) lie inside the face box.
    for x, y in face.landmarks:
        assert box.left <= x <= box.right and box.top <= y <= box.bottom


def rotation_fixtures() -> list[Path]:
    return sorted((FIXTURES / "rotated").glob("*.jpg"))


@pytest.mark.parametrize("path", rotation_fixtures(), ids=lambda p: p.name)
def test_rotated_photos_are_found_upright_and_match_the_original(path: Path) -> None:
    upright = FIXTURES / "rotated" / "source" / "upright.jpg"
    (reference,) = embed_faces(upright)
    (face,) = embed_faces(path)
    distance = float(face_distance(reference.embedding, face.embedding)[0])
    assert distance < 0.25, f"{path.name}: template differs from the upright photo's by {distance:.3f}"
    expected_rotation = {"rot90": 270, "rot180": 180, "rot270": 90}.get(path.stem, 0)
    assert face.detection.rotation == expected_rotation
    pixels = load_image_file(path)
    box = face.detection.box
    assert box.right <= pixels.shape[1] and box.bottom <= pixels.shape[0]


def test_exif_rotated_photo_box_is_in_upright_coordinates() -> None:
    (face,) = detect_faces(FIXTURES / "rotated" / "exif6.jpg")
    (reference,) = detect_faces(FIXTURES / "rotated" / "source" / "upright.jpg")
    assert face.rotation == 0  # EXIF made it upright, no fallback needed
    assert abs(face.box.left - reference.box.left) <= 3 and abs(face.box.top - reference.box.top) <= 3


def test_faces_of_about_40_pixels_are_found() -> None:
    photo = Image.open(FIXTURES / "rotated" / "source" / "upright.jpg").convert("RGB")
    (face,) = detect_faces(np.asarray(photo))
    factor = 44 / face.box.width
    small = photo.resize((round(photo.width * factor), round(photo.height * factor)), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (640, 480), (128, 128, 128))
    canvas.paste(small, (300, 200))
    (found,) = detect_faces(np.asarray(canvas))
    assert 30 <= found.box.width <= 60
    assert 300 <= found.box.left <= 300 + small.width


def test_rotation_fallback_can_be_switched_off() -> None:
    settings = Settings(try_rotations=False)
    assert detect_faces(FIXTURES / "rotated" / "rot90.jpg", settings) == []


@pytest.mark.parametrize("path", sorted((FIXTURES / "formats").iterdir()), ids=lambda p: p.name)
def test_every_format_gives_the_same_face(path: Path) -> None:
    (reference,) = embed_faces(FIXTURES / "formats" / "source.jpg")
    (face,) = embed_faces(path)
    assert float(face_distance(reference.embedding, face.embedding)[0]) < 0.2


def test_noface_images_have_no_faces() -> None:
    for path in sorted((FIXTURES / "noface").iterdir()):
        assert detect_faces(path) == [], path.name


def test_templates_are_256_float32_of_the_fused_length_and_deterministic(identity_files: dict[str, list[Path]]) -> None:
    path = next(iter(identity_files.values()))[0]
    face = embed_faces(path)[0]
    assert face.recipe == "dlib4view+facenet2view-int8-v1"
    assert face.embedding.shape == (256,) and face.embedding.dtype == np.float32
    assert float(np.linalg.norm(face.embedding)) == pytest.approx(FUSED_INT8_SCALE, abs=1e-4)
    assert np.array_equal(embed_faces(path)[0].embedding, face.embedding)
    dlib_only = embed_faces(path, Settings(template_recipe="dlib-4view-v1"))[0].embedding
    assert dlib_only.shape == (128,) and np.isfinite(dlib_only).all() and float(np.linalg.norm(dlib_only)) > 0.5


def test_same_person_matches_and_different_people_do_not(identity_files: dict[str, list[Path]]) -> None:
    analyser = FaceAnalyser(Settings())
    people = sorted(identity_files)
    first, second = identity_files[people[0]][:2]
    other = identity_files[people[1]][0]
    same = analyser.verify(first, second)
    different = analyser.verify(first, other)
    assert same.match and same.distance < DEFAULT_MATCH_THRESHOLD
    assert not different.match and different.distance > DEFAULT_MATCH_THRESHOLD
    assert same.threshold == DEFAULT_MATCH_THRESHOLD
    (a,) = embed_faces(first)
    (b,) = embed_faces(second)
    assert verify_faces(a.embedding, b.embedding)
