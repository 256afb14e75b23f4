"""Ingest throughput of each template recipe, side by side: ``Engine.ingest`` of the same dev images (chosen as
``bench/ingest_throughput.py`` chooses them) into a fresh data folder, 2 workers, each recipe ``--repeats`` times in
alternating order after one warm-up each (models loaded, ONNX graphs cached), the median reported with the ratio to
the default recipe. ``bench/peer_ingest.py`` measures the default against the ``face_recognition`` command; the
ratio here carries that comparison over to the other recipes.

    PYTHONPATH=src python -m bench.recipe_ingest [--images 100] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Sequence

from bench.ingest_throughput import default_dev_dir, select_images, timed_ingest
from facesearch.safeguards.vault import generate_master_key

RECIPES = ("dlib-4view-v1", "dlib4view+facenet2view-int8-v1", "dlib4view+facenet2view-v1")
WORKERS = 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    paths, _ = select_images(default_dev_dir(), args.images)
    key = generate_master_key()
    for recipe in RECIPES:  # warm-up: caches and page cache
        timed_ingest(paths[:8], WORKERS, key, template_recipe=recipe)
    seconds: dict[str, list[float]] = {recipe: [] for recipe in RECIPES}
    faces = {}
    for repeat in range(args.repeats):
        for recipe in RECIPES if repeat % 2 == 0 else reversed(RECIPES):
            report, took = timed_ingest(paths, WORKERS, key, template_recipe=recipe)
            seconds[recipe].append(took)
            faces[recipe] = report.faces_added
            print(f"{recipe}: {took:.1f} s ({report.images_added} images, {report.faces_added} faces)", file=sys.stderr)
    base = statistics.median(seconds[RECIPES[0]])
    print(f"| recipe | images/s (median of {args.repeats}) | faces | time vs {RECIPES[0]} |")
    print("|---|---|---|---|")
    for recipe in RECIPES:
        median = statistics.median(seconds[recipe])
        print(f"| `{recipe}` | {len(paths) / median:.2f} | {faces[recipe]} | {median / base:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
