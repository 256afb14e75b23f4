"""Which grouping algorithm, at which threshold: BCubed precision and recall on the dev set's identities.

    python -m bench.cluster_quality                       # LFW: people with 2+ photos, and every person
    python -m bench.cluster_quality --recipe dlib-4view-v1   # dlib's templates alone (cached below)
    python -m bench.cluster_quality --all-sources --json bench/results/clusters.json

Each image is embedded once with ``facesearch.embed_faces`` (largest face; cached in
``bench/results/cluster-cache-{1,4}view.json``). A fused recipe's templates (the default's among them) are made
from that four-view cache and FaceNet's two views (``bench/facenet_templates.py`` and its ``--mirror`` in 32 bits,
``bench/facenet_int8.py`` in 8), over the faces both find. The neighbour
graph is built as the product builds it (k nearest neighbours from a faiss index within the product's radius),
then each algorithm groups it: the plain ones on the edges within the threshold, the re-ranked average linkage on
whole neighbour lists, with the product's k1 / k2 / lambda, with and without the product's stricter bars for faces
still on their own (``LoneFaces``, relative to each face's local scale). Merging two people is worse than
splitting one, so the target is precision >= 0.98 with recall >= 0.90, both on the people with 2+ photos and on
every person, one-photo people included (most people in a real archive appear once). The lone-face bars are also
chosen out of fold: on one half of the people (split by identity), scored on the other.
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

from bench import facenet_templates
from bench.template_fusion import load_dataset
from bench.verify_accuracy import default_dev_dir, embed_images, load_cache, load_models, save_cache
from facesearch.core.settings import DEFAULT_TEMPLATE_RECIPE, TEMPLATE_RECIPES, Settings, views_recipe
from facesearch.people.algorithms import (
    Edges,
    LoneFaces,
    average_linkage,
    bcubed,
    chinese_whispers,
    complete_linkage,
    local_scales,
    reciprocal_jaccard,
    reranked_average_linkage,
)
from facesearch.people.service import (
    DISTANCE_WEIGHT,
    EXPANSION,
    GRAPH_RADIUS,
    GROUPINGS,
    RECIPROCAL_NEIGHBOURS,
    SCALE_LIMIT,
)
from facesearch.people.service import NEIGHBOURS as PRODUCT_NEIGHBOURS
from facesearch.vision.recipes import RECIPES, fused_templates

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
PAIR_BARS = (0.76, 0.78, 0.80, 0.82, 0.84)
JOIN_BARS = (0.84, 0.86, 0.88, 0.90, 0.92)
"""The lone-face bars tried out of fold (``LoneFaces.pair`` and ``LoneFaces.join``, times the local scale)."""
TARGET_PRECISION, TARGET_RECALL = 0.98, 0.90
CHOICE_PRECISION = 0.985
"""The precision the bars must reach on both sets of the training half to be chosen: a margin over the target,
as precision falls when a collection grows (more strangers to confuse) and the held-out half must hold it."""


@dataclass(frozen=True)
class Row:
    algorithm: str
    neighbours: int
    threshold: float
    precision: float
    recall: float
    clusters: int
    seconds: float


def identities(dev: Path, all_sources: bool, min_photos: int = 2) -> list[str]:
    with (dev / "identities.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [
        row["identity"]
        for row in rows
        if int(row["n_images"]) >= min_photos and (all_sources or row["sources"] == "lfw_muxspace")
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


def evaluate(labels: npt.NDArray[np.str_], vectors: npt.NDArray[np.float32], lone: LoneFaces) -> list[Row]:
    rows = []
    for k in NEIGHBOURS:
        graph = knn_edges(vectors, k, GRAPH_RADIUS)
        jaccard, jaccard_seconds = timed(reciprocal_jaccard, vectors, graph, RECIPROCAL_NEIGHBOURS, EXPANSION)
        scales = local_scales(len(vectors), graph, PRODUCT_NEIGHBOURS, SCALE_LIMIT)
        for threshold in THRESHOLDS:
            close = graph[2] <= threshold
            edges = graph[0][close], graph[1][close], graph[2][close]
            for name, algorithm in ALGORITHMS.items():
                predicted, seconds = timed(algorithm, vectors, edges, threshold)
                rows.append(score(name, k, threshold, labels, predicted, seconds))
            predicted, seconds = timed(reranked_average_linkage, vectors, graph, threshold, jaccard, DISTANCE_WEIGHT)
            rows.append(score(RERANKED, k, threshold, labels, predicted, jaccard_seconds + seconds))
            args = (vectors, graph, threshold, jaccard, DISTANCE_WEIGHT, lone, scales)
            predicted, seconds = timed(reranked_average_linkage, *args)
            name = f"{RERANKED}, lone faces: pair {lone.pair}, join {lone.join}"
            rows.append(score(name, k, threshold, labels, predicted, jaccard_seconds + seconds))
    return rows


@dataclass(frozen=True)
class FoldRow:
    """Lone-face bars chosen on the other folds' people, scored on this fold's."""

    fold: int
    pair: float
    join: float
    precision_every: float
    recall_every: float
    precision_repeated: float
    recall_repeated: float


def product_grouping(
    vectors: npt.NDArray[np.float32], threshold: float, lone: LoneFaces | None
) -> npt.NDArray[np.int64]:
    """The product's grouping of ``vectors``: its graph, re-ranking and (with ``lone``) lone-face bars."""
    graph = knn_edges(vectors, PRODUCT_NEIGHBOURS, GRAPH_RADIUS)
    jaccard = reciprocal_jaccard(vectors, graph, RECIPROCAL_NEIGHBOURS, EXPANSION)
    scales = local_scales(len(vectors), graph, PRODUCT_NEIGHBOURS, SCALE_LIMIT)
    return reranked_average_linkage(vectors, graph, threshold, jaccard, DISTANCE_WEIGHT, lone, scales)


def both_scores(
    labels: npt.NDArray[np.str_], vectors: npt.NDArray[np.float32], threshold: float, lone: LoneFaces | None
) -> tuple[float, float, float, float]:
    """(precision, recall) over every person's faces, then over only the people with 2+ photos (grouped
    without the others, as the dev figures were before one-photo people were counted)."""
    names, counts = np.unique(labels, return_counts=True)
    repeated = np.isin(labels, names[counts >= 2])
    every = bcubed(labels, product_grouping(vectors, threshold, lone))
    only = bcubed(labels[repeated], product_grouping(vectors[repeated], threshold, lone))
    return every[0], every[1], only[0], only[1]


def cross_validate(
    labels: npt.NDArray[np.str_], vectors: npt.NDArray[np.float32], threshold: float, folds: int = 2
) -> list[FoldRow]:
    """Folds split by identity (every ``folds``-th name); for each, the bars with the best recall on the worse
    of the two sets at precision >= CHOICE_PRECISION on both (or the best precision if none reaches it) on the
    other folds, then scored on this one."""
    names = np.unique(labels)
    fold_of = {str(name): i % folds for i, name in enumerate(names)}
    faces_fold = np.array([fold_of[str(label)] for label in labels])
    rows = []
    for fold in range(folds):
        train, test = faces_fold != fold, faces_fold == fold
        tried = []
        for pair in PAIR_BARS:
            for join in JOIN_BARS:
                figures = both_scores(labels[train], vectors[train], threshold, LoneFaces(pair, join))
                precise = min(figures[0], figures[2]) >= CHOICE_PRECISION
                worse = min(figures[1], figures[3]) if precise else min(figures[0], figures[2])
                tried.append(((precise, worse), pair, join))
        _, pair, join = max(tried)
        figures = both_scores(labels[test], vectors[test], threshold, LoneFaces(pair, join))
        rows.append(FoldRow(fold, pair, join, *(round(f, 4) for f in figures)))
    return rows


def render_folds(rows: Sequence[FoldRow], threshold: float) -> str:
    lines = [
        f"## Lone-face bars chosen out of fold (people split by identity; group threshold {threshold}; "
        f"chosen at precision >= {CHOICE_PRECISION} on the other half)",
        "",
        "| held-out fold | pair | join | precision, every person | recall | precision, 2+ photos | recall |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r.fold} | {r.pair} | {r.join} | {r.precision_every:.4f} | {r.recall_every:.4f} | "
        f"{r.precision_repeated:.4f} | {r.recall_repeated:.4f} |"
        for r in rows
    ]
    return "\n".join(lines)


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


def render(rows: Sequence[Row], people: int, faces: int, missing: int, recipe: str, title: str) -> str:
    lines = [
        f"# Grouping quality, {title}: {faces} faces of {people} people ({missing} images without a face left "
        f"out), templates of {recipe}",
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


@dataclass(frozen=True)
class SummaryRow:
    """The product's grouping of one recipe's templates, without and with the lone-face bars."""

    bars: str
    precision_every: float
    recall_every: float
    precision_repeated: float
    recall_repeated: float


def summary(
    labels: npt.NDArray[np.str_], vectors: npt.NDArray[np.float32], repeated: npt.NDArray[np.bool_], recipe: str
) -> list[SummaryRow]:
    """Every person and the people with 2+ photos grouped alone, before (no bars) and after (the product's)."""
    grouping = GROUPINGS[recipe]
    rows = []
    for name, lone in (("none", None), (f"pair {grouping.lone.pair}, join {grouping.lone.join}", grouping.lone)):
        every = bcubed(labels, product_grouping(vectors, grouping.threshold, lone))
        only = bcubed(labels[repeated], product_grouping(vectors[repeated], grouping.threshold, lone))
        rows.append(SummaryRow(name, *(round(f, 4) for f in (*every, *only))))
    return rows


def render_summary(rows: Sequence[SummaryRow], recipe: str) -> str:
    threshold = GROUPINGS[recipe].threshold
    lines = [
        f"## The product's grouping of {recipe} templates (group threshold {threshold}), lone-face bars or none",
        "",
        "| lone-face bars | precision, every person | recall | precision, 2+ photos | recall | target met |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        met = min(r.precision_every, r.precision_repeated) >= TARGET_PRECISION
        met = met and min(r.recall_every, r.recall_repeated) >= TARGET_RECALL
        lines.append(
            f"| {r.bars} | {r.precision_every:.4f} | {r.recall_every:.4f} | {r.precision_repeated:.4f} | "
            f"{r.recall_repeated:.4f} | {'yes' if met else 'no'} |"
        )
    return "\n".join(lines)


def dlib_templates(dev: Path, files: list[str], views: int) -> tuple[list[str], npt.NDArray[np.float32], int]:
    """Each photo's dlib template of ``views`` views (embedded once, cached): the photos with a face, their
    templates, and how many photos have none."""
    settings = Settings(template_views=views)
    load_models()
    cache = Path(CACHE.format(views=views))
    known = load_cache(cache, settings)
    print(f"embedding {len([f for f in files if f not in known])} images ...", file=sys.stderr)
    images = embed_images(dev, files, settings=settings, known=known)
    save_cache(cache, settings, images)
    kept = [f for f in files if images[f].embedding is not None]
    vectors = np.vstack([images[f].embedding for f in kept]).astype(np.float32)  # type: ignore[misc]
    return kept, vectors, len(files) - len(kept)


def recipe_templates(dev: Path, files: list[str], recipe: str) -> tuple[list[str], npt.NDArray[np.float32], int]:
    """The photos with a face, their templates of ``recipe``, and how many photos have none: the fused recipe
    over the faces both dlib (four views) and FaceNet (two views, ``bench/facenet_templates.py``) find."""
    chosen = RECIPES[recipe]
    kept, vectors, missing = dlib_templates(dev, files, chosen.dlib_views)
    if not chosen.facenet_views:
        return kept, vectors, missing
    caches = facenet_templates.recipe_caches(chosen)
    for path in caches:
        if not set(files) <= set(facenet_templates.load_cache(path)):
            raise SystemExit(
                f"FaceNet templates missing from {path}: run python -m bench.facenet_templates (--mirror)"
                " or, for 8 bits, bench.facenet_int8"
            )
    data = load_dataset(dev, facenet_views=2, dlib_views=chosen.dlib_views, facenet_caches=caches)
    fused = dict(zip(data.files, fused_templates(data.dlib, data.facenet, chosen.scale), strict=True))
    both = [f for f in files if f in fused]
    return both, np.vstack([fused[f] for f in both]).astype(np.float32), len(files) - len(both)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=default_dev_dir())
    parser.add_argument("--all-sources", action="store_true", help="Every identity with 2+ photos, not only LFW.")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--recipe", choices=TEMPLATE_RECIPES, default=DEFAULT_TEMPLATE_RECIPE)
    parser.add_argument("--template-views", type=int, choices=(1, 4), help="Shorthand for --recipe dlib-Nview-v1.")
    parser.add_argument("--folds-only", action="store_true", help="Only the summary and the out-of-fold bars.")
    args = parser.parse_args(argv)
    dev: Path = args.data
    recipe: str = views_recipe(args.template_views) if args.template_views else args.recipe
    if args.all_sources and RECIPES[recipe].facenet_views:
        parser.error("FaceNet's templates are cached for the LFW identities only: leave out --all-sources")
    names = identities(dev, args.all_sources, min_photos=1)
    files = [f"{name}/{path.name}" for name in names for path in sorted((dev / name).iterdir()) if path.is_file()]
    kept, vectors, _ = recipe_templates(dev, files, recipe)
    labels = np.array([f.split("/")[0] for f in kept])
    threshold = GROUPINGS[recipe].threshold
    photos = {name: sum(1 for f in files if f.startswith(f"{name}/")) for name in names}
    repeated = np.array([photos[label] >= 2 for label in labels])
    found = set(kept)
    report: dict[str, Any] = {"recipe": recipe}
    if not args.folds_only:
        for key, title, chosen in (("repeated", "people with 2+ photos", repeated), ("every", "every person", None)):
            part = slice(None) if chosen is None else chosen
            rows = evaluate(labels[part], vectors[part], GROUPINGS[recipe].lone)
            missing = sum(1 for f in files if f not in found and (chosen is None or photos[f.split("/")[0]] >= 2))
            print(render(rows, len(set(labels[part])), len(labels[part]), missing, recipe, title) + "\n")
            report[key] = [asdict(r) for r in rows]
    product = summary(labels, vectors, repeated, recipe)
    print(render_summary(product, recipe) + "\n")
    report["product"] = [asdict(r) for r in product]
    folds = cross_validate(labels, vectors, threshold)
    print(render_folds(folds, threshold))
    report["folds"] = [asdict(r) for r in folds]
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
