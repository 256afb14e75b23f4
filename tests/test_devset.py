"""Detection, orientation, bad files and verification accuracy on the dev set (skips without it).

The figures each test measures are printed (``pytest -s`` or ``-rP`` shows them), recorded as junit
properties and repeated in the assertion message when a test fails. Templates are computed once per
module (the models are slow on CPUs): the whole file takes about three minutes on two cores.
"""

from __future__ import annotations

import csv
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from bench.verify_accuracy import (
    DEFAULT_PROTOCOL,
    ImageResult,
    accuracy_at,
    best_threshold,
    embed_largest,
    pair_distances,
    read_pairs,
    sample_pairs,
)

import facesearch
from conftest import ACTOR, iou, news_spec, require_dev_data
from facesearch.core.errors import ImageError
from facesearch.core.records import Box
from facesearch.core.settings import DEFAULT_MATCH_THRESHOLD, Settings
from facesearch.engine.engine import Engine
from facesearch.vision.imaging import load_image

pytestmark = pytest.mark.devset

MULTI_RECALL_MIN = 0.95
ACCURACY_PAIRS = 600
ACCURACY_SEED = 0
ACCURACY_MIN = 0.975
BOX_IOU_MIN = 0.5
ROTATION_OF = {"rot90": 270, "rot180": 180, "rot270": 90, "exif6": 0, "exif8": 0, "exif3": 0}
"""Degrees counter-clockwise facesearch must turn each variant for its face to be upright: a variant whose
pixels were turned 90 degrees counter-clockwise needs 270 more; EXIF variants are upright once decoded."""

Record = Callable[[str, object], None]


@pytest.fixture(scope="module")
def dev() -> Path:
    return require_dev_data()


class Templates:
    """The largest face of each dev image, embedded once for the whole module."""

    def __init__(self, dev: Path) -> None:
        self.dev = dev
        self._results: dict[str, ImageResult] = {}

    def __getitem__(self, relative: str) -> ImageResult:
        if relative not in self._results:
            self._results[relative] = embed_largest(self.dev / relative)
        return self._results[relative]

    def all(self, relatives: list[str]) -> dict[str, ImageResult]:
        return {relative: self[relative] for relative in relatives}


@pytest.fixture(scope="module")
def templates(dev: Path) -> Templates:
    return Templates(dev)


def read_manifest(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def report(record_property: Record, name: str, text: str) -> None:
    print(f"\n{text}")
    record_property(name, text)


# -- (a) group photos ------------------------------------------------------------------------------


def test_group_photos_detection_recall(dev: Path, record_property: Record) -> None:
    counted = [row for row in read_manifest(dev / "_multi" / "manifest.csv") if row["expected_faces"].strip()]
    assert counted, "no _multi image states its expected face count"
    lines = []
    expected_total = found_total = extra_total = 0
    for row in counted:
        expected = int(row["expected_faces"])
        found = len(facesearch.detect_faces(dev / row["file"]))
        expected_total += expected
        found_total += min(found, expected)
        extra_total += max(0, found - expected)
        lines.append(f"  {row['file']}: expected {expected}, found {found}")
    recall = found_total / expected_total
    figures = (
        f"group photos: {len(counted)} images, {expected_total} faces expected, recall {recall:.3f} "
        f"({found_total}/{expected_total}), {extra_total} detections beyond the expected count\n" + "\n".join(lines)
    )
    report(record_property, "multi_face_recall", figures)
    assert recall >= MULTI_RECALL_MIN, figures


# -- (b) variants ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    file: str
    derived_from: str
    transform: str


def box_in_variant(box: Box, transform: str, width: int, height: int) -> Box:
    """Where a face at ``box`` of an upright ``width`` x ``height`` source lies in its rotated variant."""
    match transform:
        case "rot90":  # turned counter-clockwise: (x, y) -> (y, width - x)
            return Box(box.top, width - box.right, box.bottom, width - box.left)
        case "rot270":  # turned clockwise: (x, y) -> (height - y, x)
            return Box(height - box.bottom, box.left, height - box.top, box.right)
        case "rot180":
            return Box(width - box.right, height - box.bottom, width - box.left, height - box.top)
        case _:  # EXIF variants are upright after decoding, as the source
            return box


def test_every_variant_shows_its_face_upright_and_aligned(
    dev: Path, templates: Templates, record_property: Record
) -> None:
    variants = [
        Variant(row["file"], row["derived_from"].strip(), row["transform"])
        for row in read_manifest(dev / "_variants" / "manifest.csv")
    ]
    failures: list[str] = []
    lines: list[str] = []
    for variant in variants:
        result = templates[variant.file]
        if result.embedding is None or result.face is None:
            failures.append(
                f"{variant.file} ({variant.transform}): no face found{f' - {result.error}' if result.error else ''}"
            )
            continue
        line = (
            f"  {variant.file} ({variant.transform}): {result.faces} face(s), rotation {result.face.detection.rotation}"
        )
        if variant.transform in ROTATION_OF:
            source = templates[variant.derived_from]
            if source.embedding is None or source.face is None:
                failures.append(f"{variant.file}: its source {variant.derived_from} shows no face")
                continue
            distance = float(facesearch.face_distance(source.embedding, result.embedding)[0])
            upright = load_image(dev / variant.derived_from, max_bytes=10**9, max_pixels=10**9)
            expected_box = box_in_variant(source.face.detection.box, variant.transform, upright.width, upright.height)
            overlap = iou(result.face.detection.box, expected_box)
            line += f", distance to source {distance:.3f}, box IoU {overlap:.2f}"
            if distance > DEFAULT_MATCH_THRESHOLD:
                failures.append(
                    f"{variant.file}: template {distance:.3f} from its source's (> {DEFAULT_MATCH_THRESHOLD})"
                )
            if result.face.detection.rotation != ROTATION_OF[variant.transform]:
                failures.append(
                    f"{variant.file}: face found at rotation {result.face.detection.rotation}, "
                    f"expected {ROTATION_OF[variant.transform]}"
                )
            if overlap < BOX_IOU_MIN:
                failures.append(
                    f"{variant.file}: box {result.face.detection.box.as_list()} is not where the source's face "
                    f"lands ({expected_box.as_list()}, IoU {overlap:.2f})"
                )
        lines.append(line)
    figures = f"variants: {len(variants)} images, {len(failures)} failures\n" + "\n".join(lines)
    report(record_property, "variants", figures)
    assert not failures, "variants that fail:\n  " + "\n  ".join(failures) + "\n" + figures


# -- (c) corrupt files -----------------------------------------------------------------------------


def corrupt_files(dev: Path) -> list[Path]:
    files = [dev / row["file"] for row in read_manifest(dev / "_corrupt" / "manifest.csv")]
    assert files, "_corrupt/manifest.csv lists no file"
    return files


def test_corrupt_files_raise_an_image_error_naming_the_file(dev: Path) -> None:
    settings = Settings()
    for path in corrupt_files(dev):
        with pytest.raises(ImageError) as raised:
            load_image(path, max_bytes=settings.max_file_bytes, max_pixels=settings.max_image_pixels)
        assert path.name in raised.value.message, f"{path.name}: message does not name the file: {raised.value}"


def test_ingest_of_a_folder_with_corrupt_files_adds_the_good_image_and_lists_the_others(
    dev: Path, engine: Engine, tmp_path: Path, record_property: Record
) -> None:
    folder = tmp_path / "upload"
    folder.mkdir()
    corrupt = corrupt_files(dev)
    for path in corrupt:
        shutil.copy(path, folder / path.name)
    good = dev / "Barack_Obama" / "frlib_obama.jpg"
    shutil.copy(good, folder / good.name)
    engine.create_collection(news_spec(), ACTOR)
    result = engine.ingest("news", [folder], ACTOR, workers=1)
    reasons = {Path(failed.path).name: failed.reason for failed in result.failed}
    report(
        record_property, "corrupt_ingest", "ingest failures:\n" + "\n".join(f"  {k}: {v}" for k, v in reasons.items())
    )
    assert result.images_added == 1, f"expected only {good.name} to be added: {result}"
    assert result.faces_added >= 1, f"{good.name} shows a face: {result}"
    assert sorted(reasons) == sorted(p.name for p in corrupt), f"failed files: {reasons}"
    for name, reason in reasons.items():
        assert name in reason, f"{name}: reason does not name the file: {reason!r}"


# -- (d) verification accuracy ---------------------------------------------------------------------


def test_verification_accuracy_on_lfw_pairs(dev: Path, templates: Templates, record_property: Record) -> None:
    pairs = sample_pairs([p for p in read_pairs(dev) if p.protocol == DEFAULT_PROTOCOL], ACCURACY_PAIRS, ACCURACY_SEED)
    same = np.array([p.same for p in pairs], dtype=np.bool_)
    assert len(pairs) == ACCURACY_PAIRS and int(same.sum()) == ACCURACY_PAIRS // 2
    images = templates.all(list(dict.fromkeys(path for p in pairs for path in (p.a, p.b))))
    distances = pair_distances(pairs, images)
    accuracy = accuracy_at(distances, same, DEFAULT_MATCH_THRESHOLD)
    best, best_accuracy, _ = best_threshold(distances, same)
    without = sorted(path for path, result in images.items() if result.embedding is None)
    figures = (
        f"verification on {len(pairs)} {DEFAULT_PROTOCOL} pairs (seed {ACCURACY_SEED}, {len(images)} images): "
        f"accuracy {accuracy:.4f} at the default {DEFAULT_MATCH_THRESHOLD}; best {best:.2f} ({best_accuracy:.4f}); "
        f"{len(without)} images without a face ({int(np.sum(~np.isfinite(distances)))} pairs): {without}"
    )
    report(record_property, "verification_accuracy", figures)
    assert accuracy >= ACCURACY_MIN, figures
