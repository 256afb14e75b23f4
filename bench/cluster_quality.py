"""Which grouping algorithm, at which threshold: BCubed precision and recall on the dev set's identities.

    python bench/cluster_quality.py                       # LFW identities with 2+ photos
    python bench/cluster_quality.py --all-sources --json bench/results/clusters.json

Each image is embedded once with ``facesearch.embed_faces`` (largest face; cached in
``bench/results/cluster-cache-{1,4}view.json``). The neighbour graph is built as the product builds it (k nearest
neighbours from a faiss index within the product's radius), then each algorithm groups it: the plain ones
on the edges within the threshold, the re-ranked average linkage (the product's) on whole neighbour lists,
with the product's k1 / k2 / lambda. Merging two people is worse than splitting one, so the target is
precision >= 0.98 with recall >= 0.90.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import faiss
import numpy as np
import numpy.typing as npt

from bench.verify_accuracy import default_dev_dir, embed_images, load_cache, load_models, save_cache
from facesearch.core.settings import DEFAULT_TEMPLATE_VIEWS, TEMPLATE_VIEWS, Settings
from facesearch.people.algorithms import (
    Edges,
    average_linkage,
    bcubed,
    chinese_whispers,
    complete_linkage,
    reciprocal_jaccard,
    reranked_average_linkage,
)
from facesearch.people.service import DISTANCE_WEIGHT, EXPANSION, GRAPH_RADIUS, RECIPROCAL_NEIGHBOURS

THRESHOLDS = (0.40, 0.45, 0.47, 0.475, 0.48, 0.485, 0.49, 0.50, 0.52, 0.55, 0.58, 0.60)
NEIGHBOURS = (10, 30)
CACHE = "bench/results/cluster-cache-{views}view.json"
Algorithm = Callable[[npt.NDArray[np.float32], Edges, float], npt.NDArray[np.int64]]
ALGORITHMS: dict[str, Algorithm] = {
    "average linkage": average_linkage,
    "complete linkage": lambda vectors, edges, threshold: complete_linkage(len(vectors), edges, threshold),
    "chinese whispers": lambda vectors, edges, _threshold: chinese_whispers(len(vectors), edges),
}
T = TypeVar("T")
RERANKED = f"re-ranked average linkage (k1={RECIPROCAL_NEIGHBOURS}, k2={EXPANSION}, lambda={DISTANCE_WEIGHT})"


@dataclass(frozen=True)
class Row:
    algorithm: str
    neighbours: int
    threshold: float
    precision: float
    recall: float
    clusters: int
    seconds: float


def identities(dev: Path, all_sources: bool) -> list[str]:
    with (dev / "identities.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [
        row["identity"]
        for row in rows
        if int(row["n_images"]) >= 2 and (all_sources or row["sources"] == "lfw_muxspace")
    ]


def knn_edges(vectors: npt.NDArray[np.float32], k: int, radius: float) -> Edges:
    index = faiss.IndexFlatL2(vectors.shape[1])
    index.add(vectors)
    squared, ids = index.search(vectors, k + 1)
    distances = np.sqrt(np.maximum(squared, 0.0))
    sources = np.repeat(np.arange(len(vectors)), k + 1)
    keep = (ids.ravel() >= 0) & (ids.ravel() != sources) & (distances.ravel() <= radius)
    return (
        sources[keep].astype(np.int64),
        ids.ravel()[keep].astype(np.int64),
        distances.ravel()[keep].astype(np.float32),
    )


def evaluate(labels: npt.NDArray[np.str_], vectors: npt.NDArray[np.float32]) -> list[Row]:
    rows = []
    for k in NEIGHBOURS:
        graph = knn_edges(vectors, k, GRAPH_RADIUS)
        jaccard, jaccard_seconds = timed(reciprocal_jaccard, vectors, graph, RECIPROCAL_NEIGHBOURS, EXPANSION)
        for threshold in THRESHOLDS:
            close = graph[2] <= threshold
            edges = graph[0][close], graph[1][close], graph[2][close]
            for name, algorithm in ALGORITHMS.items():
                predicted, seconds = timed(algorithm, vectors, edges, threshold)
                rows.append(score(name, k, threshold, labels, predicted, seconds))
            predicted, seconds = timed(reranked_average_linkage, vectors, graph, threshold, jaccard, DISTANCE_WEIGHT)
            rows.append(score(RERANKED, k, threshold, labels, predicted, jaccard_seconds + seconds))
    return rows


def timed(function: Callable[..., T], *args: Any) -> tuple[T, float]:
    started = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - started


def score(
    name: str, k: int, threshold: float, labels: npt.NDArray[np.str_], predicted: npt.NDArray[np.int64], seconds: float
) -> Row:
    precision, recall = bcubed(labels, predicted)
    clusters = len(np.unique(predicted))
    return Row(name, k, threshold, round(precision, 4), round(recall, 4), clusters, round(seconds, 3))


def render(rows: Sequence[Row], people: int, faces: int, missing: int, views: int) -> str:
    lines = [
        f"# Grouping quality: {faces} faces of {people} people ({missing} images without a face left out), "
        f"templates from {views} view(s)",
        "",
        "| algorithm | k | threshold | BCubed precision | BCubed recall | clusters | seconds |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r.algorithm} | {r.neighbours} | {r.threshold:.3f} | {r.precision:.4f} | {r.recall:.4f} | {r.clusters} | "
        f"{r.seconds:.2f} |"
        for r in rows
    ]
    eligible = [r for r in rows if r.precision >= 0.98]
    best = max(eligible or rows, key=lambda r: (r.recall, r.precision))
    verdict = "meets" if best.precision >= 0.98 and best.recall >= 0.90 else "does not meet"
    lines += [
        "",
        f"Best recall at precision >= 0.98: {best.algorithm}, k={best.neighbours}, threshold {best.threshold:.3f}: "
        f"precision {best.precision:.4f}, recall {best.recall:.4f} ({verdict} the 0.98 / 0.90 target).",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=default_dev_dir())
    parser.add_argument("--all-sources", action="store_true", help="Every identity with 2+ photos, not only LFW.")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--template-views", type=int, default=DEFAULT_TEMPLATE_VIEWS, choices=TEMPLATE_VIEWS)
    args = parser.parse_args(argv)
    dev: Path = args.data
    names = identities(dev, args.all_sources)
    files = [f"{name}/{path.name}" for name in names for path in sorted((dev / name).iterdir()) if path.is_file()]
    settings = Settings(template_views=args.template_views)
    load_models()
    cache = Path(CACHE.format(views=settings.template_views))
    known = load_cache(cache, settings)
    print(f"embedding {len([f for f in files if f not in known])} images ...", file=sys.stderr)
    images = embed_images(dev, files, settings=settings, known=known)
    save_cache(cache, settings, images)
    kept = [f for f in files if images[f].embedding is not None]
    vectors = np.vstack([images[f].embedding for f in kept]).astype(np.float32)  # type: ignore[misc]
    labels = np.array([f.split("/")[0] for f in kept])
    rows = evaluate(labels, vectors)
    print(render(rows, len(set(labels)), len(kept), len(files) - len(kept), settings.template_views))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
