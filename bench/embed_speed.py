"""Embedding speed: dlib's ``compute_face_descriptor`` against the same ResNet on ONNX Runtime, per face.

Makes aligned chips (HOG detector, one upsampling, the largest face of each image; the 5-point shape predictor;
``dlib.get_face_chip`` at 150 px with padding 0.25, as facesearch does) from ``--faces`` images of the dev set
(``../shared/faces/dev`` beside the repository, ``FACESEARCH_DEV_DATA`` or ``--data``; identity folders only,
drawn with ``--seed``), or from ``tests/fixtures/identities`` when the dev set is absent. Then, for each batch
size, times both embedders on all chips in batches of that size, in alternating order for each of ``--repeats``,
after one untimed warm-up pass each, and reports the best time per face of each and their ratio. It also reports
the largest difference between the two embedders' templates (per component, and in pairwise distances).

Markdown goes to stdout, progress to stderr.

    python -m bench.embed_speed                          # 64 faces, batches 1, 8, 32, 2 repeats
    python -m bench.embed_speed --faces 128 --batches 1 16 64 --json bench/results/embed_speed.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from facesearch.core.records import RGBImage
from facesearch.vision.alignment import face_chip
from facesearch.vision.models.dlib_models import DlibFivePointLandmarks, DlibHogDetector, DlibResNetEmbedder
from facesearch.vision.models.onnx_resnet import OnnxResNetEmbedder, cpu_count

REPO = Path(__file__).resolve().parents[1]
FIXTURE_FACES = REPO / "tests" / "fixtures" / "identities"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
Templates = npt.NDArray[np.float32]


def default_dev_dir() -> Path:
    """``FACESEARCH_DEV_DATA``, else ``shared/faces/dev`` beside the repository."""
    override = os.environ.get("FACESEARCH_DEV_DATA")
    return Path(override) if override else REPO.parent / "shared" / "faces" / "dev"


def candidate_images(data: Path) -> list[Path]:
    """Identity photos of the dev set (not ``_multi``, ``_variants``... folders), or the test fixtures."""
    if data.is_dir():
        found = [
            path
            for folder in sorted(data.iterdir())
            if folder.is_dir() and not folder.name.startswith("_")
            for path in sorted(folder.iterdir())
            if path.suffix.lower() in IMAGE_SUFFIXES
        ]
        if found:
            return found
    return sorted(p for p in FIXTURE_FACES.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def make_chips(paths: Sequence[Path], count: int, seed: int) -> tuple[list[RGBImage], list[str]]:
    """Up to ``count`` chips, one per image (its largest face), images drawn in a seeded order."""
    detector, landmarks = DlibHogDetector(), DlibFivePointLandmarks()
    order = list(paths)
    random.Random(seed).shuffle(order)
    chips: list[RGBImage] = []
    names: list[str] = []
    for path in order:
        if len(chips) >= count:
            break
        pixels: RGBImage = np.asarray(Image.open(path).convert("RGB"))
        boxes = detector.detect(pixels, 1, 0.0)
        if not boxes:
            continue
        box = max((b for b, _ in boxes), key=lambda b: b.width * b.height)
        chips.append(face_chip(pixels, box, landmarks.landmarks(pixels, box), 150, 0.25))
        names.append(path.name)
    return chips, names


def time_per_face(embed: Callable[[Sequence[RGBImage]], Templates], chips: Sequence[RGBImage], batch: int) -> float:
    """Seconds per face to embed all ``chips`` in batches of ``batch``."""
    start = time.perf_counter()
    for first in range(0, len(chips), batch):
        embed(chips[first : first + batch])
    return (time.perf_counter() - start) / len(chips)


def distances(templates: Templates) -> npt.NDArray[np.float64]:
    values = templates.astype(np.float64)
    result: npt.NDArray[np.float64] = np.linalg.norm(values[:, None, :] - values[None, :, :], axis=2)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=default_dev_dir(), help="dev set folder")
    parser.add_argument("--faces", type=int, default=64, help="number of chips (one per image)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="ONNX Runtime intra-op threads (default: the usable cores)")
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args(argv)

    paths = candidate_images(args.data)
    source = "dev set" if paths and FIXTURE_FACES not in paths[0].parents else "tests/fixtures/identities"
    print(f"making up to {args.faces} chips from {len(paths)} images ({source})...", file=sys.stderr)
    chips, names = make_chips(paths, args.faces, args.seed)
    if not chips:
        print("no faces found", file=sys.stderr)
        return 1

    print("loading models...", file=sys.stderr)
    dlib_embedder = DlibResNetEmbedder()
    start = time.perf_counter()
    onnx_embedders = {batch: OnnxResNetEmbedder(batch_size=batch, threads=args.threads) for batch in args.batches}
    onnx_load = time.perf_counter() - start

    reference = dlib_embedder.embed(chips)  # also the warm-up of both
    ported = onnx_embedders[max(args.batches)].embed(chips)
    max_diff = float(np.abs(reference - ported).max())
    max_distance_diff = float(np.abs(distances(reference) - distances(ported)).max())

    rows: list[dict[str, Any]] = []
    for batch in args.batches:
        onnx = onnx_embedders[batch]
        onnx.embed(chips[:batch])
        dlib_times: list[float] = []
        onnx_times: list[float] = []
        for repeat in range(args.repeats):
            runs = [("dlib", dlib_embedder.embed, dlib_times), ("onnx", onnx.embed, onnx_times)]
            for label, embed, times in runs if repeat % 2 == 0 else runs[::-1]:
                times.append(time_per_face(embed, chips, batch))
                print(f"batch {batch}, repeat {repeat + 1}: {label} {times[-1] * 1000:.1f} ms/face", file=sys.stderr)
        rows.append(
            {
                "batch": batch,
                "dlib_ms": [t * 1000 for t in dlib_times],
                "onnx_ms": [t * 1000 for t in onnx_times],
                "dlib_best_ms": min(dlib_times) * 1000,
                "onnx_best_ms": min(onnx_times) * 1000,
                "speedup": min(dlib_times) / min(onnx_times),
            }
        )

    providers = onnx_embedders[max(args.batches)].providers
    load = os.getloadavg()[0]
    threads = args.threads or cpu_count()
    print(f"## Embedding speed: dlib vs ONNX Runtime ({len(chips)} faces from the {source})\n")
    print(
        f"{platform.machine()}, {cpu_count()} cores usable, Python {platform.python_version()}, "
        f"ONNX Runtime providers {', '.join(providers)} with {threads} intra-op threads; best of {args.repeats} "
        f"repeats, order alternating; 1-minute load average at the end {load:.2f}.\n"
    )
    print("| batch | dlib ms/face | ONNX ms/face | speed-up (dlib / ONNX) |\n|---|---|---|---|")
    for row in rows:
        print(f"| {row['batch']} | {row['dlib_best_ms']:.1f} | {row['onnx_best_ms']:.2f} | {row['speedup']:.1f}x |")
    print(
        f"\nMax abs difference per template component over all {len(chips)} faces: {max_diff:.2e} "
        f"(templates' largest component {float(np.abs(reference).max()):.3f}); "
        f"max difference of pairwise distances: {max_distance_diff:.2e}."
    )
    print(f"ONNX model load ({len(args.batches)} sessions, graph built or read from the cache): {onnx_load:.2f} s.")
    median_speedup = statistics.median(row["speedup"] for row in rows)
    print(f"Median speed-up over the batch sizes: {median_speedup:.1f}x.")

    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        report = {
            "faces": len(chips),
            "images": names,
            "source": source,
            "cores": cpu_count(),
            "threads": threads,
            "load_average": load,
            "providers": providers,
            "max_abs_diff": max_diff,
            "max_distance_diff": max_distance_diff,
            "rows": rows,
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
