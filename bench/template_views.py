"""Which views of a face to average into its template: grouping recall at precision 0.98 for each choice.

    ./run bench template_views                # LFW identities with 2+ photos of the dev set

Each image's largest face is detected and aligned once by the product's pipeline (dlib's 150 px chip); each
candidate view of that chip (mirrored, shrunk, zoomed, blurred, or a wider chip cut by dlib) is embedded
once and cached in ``bench/results/template-views.npz``. Each combination's template is the plain mean of its
views' descriptors (no scale: the threshold sweep absorbs it), grouped by the product's re-ranked average
linkage on its k-nearest-neighbour graph, and scored with BCubed precision and recall. The table gives each
combination's best recall with precision >= 0.98 over thresholds 0.005 apart, and the threshold.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageFilter

from bench.cluster_quality import identities, knn_edges
from bench.verify_accuracy import default_dev_dir
from facesearch.core.errors import FacesearchError
from facesearch.core.records import RGBImage
from facesearch.core.settings import Settings
from facesearch.people.algorithms import bcubed, reciprocal_jaccard, reranked_average_linkage
from facesearch.people.service import DISTANCE_WEIGHT, EXPANSION, GRAPH_RADIUS, NEIGHBOURS, RECIPROCAL_NEIGHBOURS
from facesearch.vision.alignment import face_chip
from facesearch.vision.imaging import decode_image, read_image_file
from facesearch.vision.models.registry import shared_models
from facesearch.vision.pipeline import AnalysisOptions, detect_faces
from facesearch.vision.templates import mirrored, shrunk

CACHE = Path("bench/results/template-views.npz")
THRESHOLDS = np.round(np.arange(0.40, 0.55, 0.005), 3)
Transform = Callable[[RGBImage], RGBImage]


def _zoomed_in(chip: RGBImage, scale: float) -> RGBImage:
    side = chip.shape[0]
    crop = round(side / scale)
    start = (side - crop) // 2
    inner = Image.fromarray(np.ascontiguousarray(chip[start : start + crop, start : start + crop]))
    return np.asarray(inner.resize((side, side), Image.Resampling.BILINEAR), dtype=np.uint8)


def _blurred(chip: RGBImage) -> RGBImage:
    return np.asarray(Image.fromarray(chip).filter(ImageFilter.GaussianBlur(0.7)), dtype=np.uint8)


VIEWS: dict[str, Transform] = {
    "chip": lambda c: c,
    "mirror": mirrored,
    "shrunk 6%": lambda c: shrunk(c, 0.94),
    "shrunk 6% mirror": lambda c: mirrored(shrunk(c, 0.94)),
    "shrunk 12%": lambda c: shrunk(c, 0.88),
    "shrunk 12% mirror": lambda c: mirrored(shrunk(c, 0.88)),
    "zoomed 6%": lambda c: _zoomed_in(c, 1.06),
    "zoomed 6% mirror": lambda c: mirrored(_zoomed_in(c, 1.06)),
    "blurred": _blurred,
    "blurred mirror": lambda c: mirrored(_blurred(c)),
}
WIDE = ("dlib padding 0.30", "dlib padding 0.30 mirror")
"""Views cut from the photo rather than made from the chip."""
COMBINATIONS: tuple[tuple[str, ...], ...] = (
    ("chip",),
    ("chip", "mirror"),
    ("chip", "shrunk 6%"),
    ("chip", "mirror", "shrunk 6%", "shrunk 6% mirror"),
    ("chip", "mirror", "shrunk 12%", "shrunk 12% mirror"),
    ("chip", "mirror", "shrunk 6%", "shrunk 6% mirror", "zoomed 6%", "zoomed 6% mirror"),
    ("chip", "mirror", *WIDE),
    ("chip", "mirror", "blurred", "blurred mirror"),
)


def face_views(path: Path, settings: Settings) -> list[RGBImage] | None:
    """Every view of ``path``'s largest face, in VIEWS order then WIDE; None without a face."""
    models = shared_models()
    try:
        data = read_image_file(path, settings.max_file_bytes)
        image = decode_image(data, name=str(path), max_pixels=settings.max_image_pixels, max_side=None)
    except FacesearchError:
        return None
    faces = detect_faces(image, models, AnalysisOptions.from_settings(settings))
    if not faces:
        return None
    face = max(faces, key=lambda f: f.box.area)
    embedder = models.embedder
    chip = face_chip(image.pixels, face.box, face.landmarks, embedder.chip_size, embedder.chip_padding)
    wide = face_chip(image.pixels, face.box, face.landmarks, embedder.chip_size, 0.30)
    return [np.ascontiguousarray(view(chip)) for view in VIEWS.values()] + [wide, mirrored(wide)]


def embed_views(dev: Path, files: Sequence[str]) -> tuple[dict[str, npt.NDArray[np.float32]], npt.NDArray[np.str_]]:
    """Descriptors of each view of each file's largest face (cached), and each face's identity."""
    names = [*VIEWS, *WIDE]
    if CACHE.exists():
        cached = np.load(CACHE)
        if list(cached["files"]) == list(files):
            return {name: cached[name] for name in names}, cached["labels"]
    settings = Settings()
    embedder = shared_models().embedder
    rows: list[npt.NDArray[np.float32]] = []
    labels: list[str] = []
    started = time.perf_counter()
    for number, relative in enumerate(files, start=1):
        views = face_views(dev / relative, settings)
        if views is not None:
            rows.append(embedder.embed(views))
            labels.append(relative.split("/")[0])
        if number % 250 == 0 or number == len(files):
            print(f"{number}/{len(files)} images, {time.perf_counter() - started:.0f} s", file=sys.stderr)
    stacked = np.stack(rows)
    descriptors = {name: stacked[:, k] for k, name in enumerate(names)}
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, npt.NDArray[np.generic]] = {"files": np.array(files), "labels": np.array(labels), **descriptors}
    np.savez(CACHE, **arrays)  # type: ignore[arg-type]  # numpy's stub types **kwds as its bool option
    return descriptors, np.array(labels)


def best_recall(vectors: npt.NDArray[np.float32], labels: npt.NDArray[np.str_]) -> tuple[float, float, float]:
    """(threshold, precision, recall) with the best recall at precision >= 0.98."""
    graph = knn_edges(vectors, NEIGHBOURS, GRAPH_RADIUS)
    jaccard = reciprocal_jaccard(vectors, graph, RECIPROCAL_NEIGHBOURS, EXPANSION)
    best = (float("nan"), float("nan"), 0.0)
    for threshold in THRESHOLDS:
        predicted = reranked_average_linkage(vectors, graph, float(threshold), jaccard, DISTANCE_WEIGHT)
        precision, recall = bcubed(labels, predicted)
        if precision >= 0.98 and recall > best[2]:
            best = (float(threshold), precision, recall)
    return best


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=default_dev_dir())
    args = parser.parse_args(argv)
    dev: Path = args.data
    if not (dev / "identities.csv").is_file():
        print(f"dev set not found at {dev}; pass --data or set FACESEARCH_DEV_DATA", file=sys.stderr)
        return 2
    names = identities(dev, all_sources=False)
    files = [f"{name}/{path.name}" for name in names for path in sorted((dev / name).iterdir()) if path.is_file()]
    descriptors, labels = embed_views(dev, files)
    print(f"# Views averaged into a template: {len(labels)} faces of {len(set(labels))} people\n")
    print("| views averaged | threshold | BCubed precision | recall at precision >= 0.98 |")
    print("|---|---:|---:|---:|")
    for combination in COMBINATIONS:
        mean = np.mean([descriptors[name] for name in combination], axis=0)
        threshold, precision, recall = best_recall(np.ascontiguousarray(mean, dtype=np.float32), labels)
        print(f"| {' + '.join(combination)} | {threshold:.3f} | {precision:.4f} | {recall:.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
