"""FaceNet's input: YuNet's five points mapped onto ArcFace's template by a least-squares similarity transform."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from conftest import FIXTURES
from facesearch.core.records import RGBImage
from facesearch.vision.alignment import arcface_chip, arcface_template, similarity_transform
from facesearch.vision.models.dlib_models import DlibFivePointLandmarks, DlibHogDetector
from facesearch.vision.models.yunet import YuNetProposer


def _similarity(angle: float, scale: float, shift: tuple[float, float]) -> np.ndarray:
    cos, sin = math.cos(angle) * scale, math.sin(angle) * scale
    return np.array([[cos, -sin, shift[0]], [sin, cos, shift[1]]])


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    result: np.ndarray = points @ matrix[:, :2].T + matrix[:, 2]
    return result


def test_the_template_is_arcfaces_scaled_to_the_chip() -> None:
    template = arcface_template(160)
    np.testing.assert_allclose(template[0], np.array([38.2946, 51.6963]) * 160 / 112 + 0.5)
    assert template[0, 0] < template[2, 0] < template[1, 0]  # the eyes either side of the nose
    assert template[0, 1] < template[2, 1] < template[3, 1]  # eyes above the nose above the mouth


@pytest.mark.parametrize(("angle", "scale"), [(0.0, 1.0), (0.4, 0.37), (-2.5, 3.2)])
def test_a_similarity_transform_is_recovered_exactly(angle: float, scale: float) -> None:
    source = np.random.default_rng(1).uniform(0, 300, (5, 2))
    truth = _similarity(angle, scale, (12.5, -40.0))
    np.testing.assert_allclose(similarity_transform(source.tolist(), _apply(truth, source).tolist()), truth, atol=1e-9)


def test_with_noise_it_is_the_least_squares_fit_and_never_a_reflection() -> None:
    rng = np.random.default_rng(2)
    source = rng.uniform(0, 200, (5, 2))
    truth = _similarity(0.3, 0.8, (5.0, 9.0))
    target = _apply(truth, source) + rng.normal(0, 2.0, (5, 2))
    fitted = similarity_transform(source.tolist(), target.tolist())
    fitted_error = ((_apply(fitted, source) - target) ** 2).sum()
    assert fitted_error <= ((_apply(truth, source) - target) ** 2).sum()
    for nudge in np.eye(6).reshape(6, 2, 3) * 1e-3:  # any nearby similarity does worse
        linear = fitted + nudge
        linear[1, 1], linear[1, 0] = linear[0, 0], -linear[0, 1]
        assert ((_apply(linear, source) - target) ** 2).sum() >= fitted_error - 1e-9
    mirrored = source * np.array([-1.0, 1.0])
    assert np.linalg.det(similarity_transform(source.tolist(), mirrored.tolist())[:, :2]) > 0
    with pytest.raises(ValueError, match="two or more matching"):
        similarity_transform([(0.0, 0.0)], [(1.0, 1.0), (2.0, 2.0)])
    with pytest.raises(ValueError, match="coincide"):
        similarity_transform([(3.0, 3.0), (3.0, 3.0)], [(0.0, 0.0), (1.0, 1.0)])


def test_the_chip_puts_the_five_points_on_the_template() -> None:
    """Bright dots drawn at the five points of a turned, shrunk face land on the template's points in the chip."""
    template = arcface_template(160)
    placed = _apply(_similarity(0.5, 0.6, (180.0, 40.0)), template)
    photo = np.zeros((400, 400, 3), dtype=np.uint8)
    for x, y in placed:
        photo[int(y) - 2 : int(y) + 3, int(x) - 2 : int(x) + 3] = 255
    chip = arcface_chip(photo, [(float(x), float(y)) for x, y in np.floor(placed) + 0.5], 160)
    assert chip.shape == (160, 160, 3) and chip.dtype == np.uint8
    for x, y in template:
        window = chip[int(y) - 6 : int(y) + 7, int(x) - 6 : int(x) + 7, 0].astype(float)
        rows, cols = np.mgrid[int(y) - 6 : int(y) + 7, int(x) - 6 : int(x) + 7]
        centre = ((cols + 0.5) * window).sum() / window.sum(), ((rows + 0.5) * window).sum() / window.sum()
        assert math.dist(centre, (x, y)) < 0.9


def _photo(name: str) -> RGBImage:
    return np.asarray(Image.open(FIXTURES / "identities" / name).convert("RGB"))


@pytest.mark.parametrize("name", ["obama__1.jpg", "bbt_sheldon__2.png", "twd_daryl__1.jpg"])
def test_yunets_five_points_sit_on_the_face_dlib_sees(name: str) -> None:
    pixels = _photo(name)
    ((_, score, five),) = YuNetProposer().locate(pixels, 0.6, 20)[:1]
    assert score >= 0.6 and len(five) == 5
    right_eye, left_eye, nose, right_mouth, left_mouth = np.array(five)
    assert right_eye[0] < nose[0] < left_eye[0] and right_mouth[0] < left_mouth[0]
    assert max(right_eye[1], left_eye[1]) < nose[1] < min(right_mouth[1], left_mouth[1])
    # dlib's five points: the corners of each eye (outer, inner) and the base of the nose.
    ((dlib_box, _),) = DlibHogDetector().detect(pixels, 1, 0.0)[:1]
    dlib_points = np.array(DlibFivePointLandmarks().landmarks(pixels, dlib_box))
    eyes = sorted([dlib_points[0:2].mean(axis=0), dlib_points[2:4].mean(axis=0)], key=lambda p: float(p[0]))
    width = dlib_box.right - dlib_box.left
    assert math.dist(right_eye, eyes[0]) < 0.1 * width and math.dist(left_eye, eyes[1]) < 0.1 * width


def test_the_proposals_and_their_points_agree() -> None:
    proposer = YuNetProposer()
    pixels = np.asarray(Image.open(sorted((FIXTURES / "multi").iterdir())[0]).convert("RGB"))
    located = proposer.locate(pixels, 0.6, 20)
    assert len(located) >= 2
    assert [(box, score) for box, score, _ in located] == proposer.propose(pixels, 0.6, 20)
    for box, _, five in located:
        assert all(box.left - 2 <= x <= box.right + 2 and box.top - 2 <= y <= box.bottom + 2 for x, y in five)
