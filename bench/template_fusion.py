"""dlib's four-view templates, FaceNet's, and their fusions, measured on the dev LFW faces out of fold.

The faces are those both pipelines find (dlib's: ``bench/results/cluster-cache-4view.json`` as
``bench/identification.py`` makes it; FaceNet's: ``bench/results/facenet-cache.npz``, ``bench/facenet_templates.py``).
Each way of comparing two faces is a distance matrix over them:

- ``dlib``: Euclidean distance between four-view templates (today's default);
- ``facenet``: Euclidean distance between unit-length FaceNet templates (cosine similarity);
- ``z-score mean``: w x z(dlib) + (1 - w) x z(FaceNet), each similarity z-scored by the mean and spread of
  different-person pairs' distances;
- ``scaled distance mean``: w x dlib / t(dlib) + (1 - w) x FaceNet / t(FaceNet), each distance over its own
  distance at FMR 1e-3;
- ``concatenated``: one 256-d template, [sqrt(w) x dlib, sqrt(1 - w) x FaceNet], each unit length (what a single
  index would hold);
- ``within-person whitened``: a scoring model fitted on the dev identities: templates (dlib's, FaceNet's, or both
  concatenated) whitened by the within-person covariance of the training folds' people (WCCN, shrunk towards its
  mean variance), then compared by cosine.

The weight ``w`` (0 to 1 by 0.05) and the normalisations are chosen out of fold: the identities are split into 5
folds, and each pair of faces from folds a and b is scored with what was fitted on the pairs of the other folds
only (maximising TAR at FMR 1e-4 plus TAR at FMR 1e-5). The held-out matrices are then measured as
``bench/identification.py`` measures templates: TAR at FMR 1e-3/1e-4/1e-5 over all pairs, closed-set rank-1 and
rank-10, and open-set FNIR at FPIR with the real distractors (the one-photo identities) only: the synthetic faces of
``bench/face_model.py`` model dlib's templates and cannot stand for FaceNet's or a fusion's.

    PYTHONPATH=src python -m bench.template_fusion [--json bench/results/template_fusion.json] [--shrink S]
    PYTHONPATH=src python -m bench.template_fusion --facenet-views 2   # FaceNet over the chip and its mirror
    PYTHONPATH=src python -m bench.template_fusion --dlib-views 1      # dlib's one view (cluster-cache-1view.json)
    PYTHONPATH=src python -m bench.template_fusion --facenet-views 2 --p-norms 1 3 4 6   # other p-norm fusions too
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from bench import facenet_templates
from bench.identification import (
    CACHE,
    FMRS,
    FPIRS,
    RANKS,
    Faces,
    OpenSetRow,
    Split,
    Verification,
    fnir_at_fpir,
    split,
)
from bench.verify_accuracy import default_dev_dir, load_cache, tar_at_far
from facesearch.core.settings import Settings

FOLDS = 5
WEIGHTS = tuple(round(0.05 * step, 2) for step in range(21))
FIT_FMRS = (1e-4, 1e-5)
Matrix = npt.NDArray[np.float32]
Floats = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Dataset:
    files: list[str]
    labels: npt.NDArray[np.str_]
    multi: npt.NDArray[np.bool_]
    dlib: Floats
    facenet: Floats
    dlib_only: int
    facenet_only: int


@dataclass(frozen=True)
class Report:
    method: str
    verification: list[Verification]
    closed_set: dict[int, float]
    open_set: list[OpenSetRow]
    weights: list[float]
    """The weight chosen on each of the fold pairs' training folds (empty when nothing is fitted)."""


def load_dataset(
    dev: Path,
    facenet_views: int = 1,
    dlib_views: int = 4,
    facenet_caches: tuple[Path, Path] = (facenet_templates.CACHE, facenet_templates.MIRROR_CACHE),
) -> Dataset:
    """The faces both pipelines find; with ``facenet_views`` 2, FaceNet's template is the unit mean of the chip's and
    its mirror image's (``facenet_templates --mirror``). ``facenet_caches``: the chip's and the mirror's caches."""
    files = facenet_templates.lfw_files(dev)
    dlib_cache = load_cache(Path(CACHE.format(views=dlib_views)), Settings(template_views=dlib_views))
    facenet_cache = facenet_templates.load_cache(facenet_caches[0])
    if facenet_views == 2:
        facenet_cache = two_views(facenet_cache, facenet_templates.load_cache(facenet_caches[1]))
    missing = [name for name in files if name not in dlib_cache or name not in facenet_cache]
    if missing:
        raise SystemExit(
            f"{len(missing)} photos are not embedded yet: run bench.identification --template-views {dlib_views} "
            "and bench.facenet_templates first"
        )
    has_dlib = {name for name in files if dlib_cache[name].embedding is not None}
    has_facenet = {name for name in files if facenet_cache[name] is not None}
    both = [name for name in files if name in has_dlib and name in has_facenet]
    labels = np.array([name.split("/")[0] for name in both])
    names, counts = np.unique(labels, return_counts=True)
    photos = dict(zip(names.tolist(), counts.tolist(), strict=True))
    return Dataset(
        files=both,
        labels=labels,
        multi=np.array([photos[label] >= 2 for label in labels]),
        dlib=np.vstack([dlib_cache[name].embedding for name in both]).astype(np.float32),  # type: ignore[misc]
        facenet=np.vstack([facenet_cache[name] for name in both]).astype(np.float32),  # type: ignore[misc]
        dlib_only=len(has_dlib - has_facenet),
        facenet_only=len(has_facenet - has_dlib),
    )


def two_views(first: dict[str, Floats | None], second: dict[str, Floats | None]) -> dict[str, Floats | None]:
    """Each photo's unit-length mean of its two views' templates (None where either view has none)."""
    return {
        name: None if vector is None or (other := second.get(name)) is None else _mean_of_units(vector, other)
        for name, vector in first.items()
    }


def _mean_of_units(first: Floats, second: Floats) -> Floats:
    mean = first / np.linalg.norm(first) + second / np.linalg.norm(second)
    result: Floats = (mean / np.linalg.norm(mean)).astype(np.float32)
    return result


def distances(vectors: Floats) -> Matrix:
    v = vectors.astype(np.float64)
    squared = (v**2).sum(axis=1)
    result: Matrix = np.sqrt(np.maximum(squared[:, None] + squared[None, :] - 2 * v @ v.T, 0.0)).astype(np.float32)
    return result


def unit(vectors: Floats) -> Floats:
    result: Floats = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return result


def identity_folds(labels: npt.NDArray[np.str_], folds: int = FOLDS, seed: int = 17) -> npt.NDArray[np.intp]:
    """Each face's fold: identities dealt at random into ``folds`` groups."""
    names = np.unique(labels)
    order = np.random.default_rng(seed).permutation(len(names))
    fold_of = {str(names[i]): rank % folds for rank, i in enumerate(order)}
    return np.array([fold_of[str(label)] for label in labels], dtype=np.intp)


# -- fusion rules: fit on training pairs, then score any pairs --------------------------------------


@dataclass(frozen=True)
class Fusion:
    name: str
    bases: tuple[str, ...]
    """Which base matrices it combines: "dlib", "facenet", "dlib_unit"."""
    normalise: Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]]
    """Training different-person distances -> the numbers ``combine`` needs."""
    combine: Callable[[Sequence[Matrix], Sequence[npt.NDArray[np.float64]], float], Matrix]


def _z_stats(impostors: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return np.array([impostors.mean(), impostors.std()])


def _z_mean(blocks: Sequence[Matrix], stats: Sequence[npt.NDArray[np.float64]], w: float) -> Matrix:
    """Minus the weighted mean of z-scored similarities (lower is more alike)."""
    (a, b), ((ma, sa), (mb, sb)) = blocks, stats
    result: Matrix = (w * (a - ma) / sa + (1 - w) * (b - mb) / sb).astype(np.float32)
    return result


def _scale_stats(impostors: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    k = math.floor(1e-3 * len(impostors))
    return np.array([np.partition(impostors, k)[k]])


def _scaled_mean(blocks: Sequence[Matrix], stats: Sequence[npt.NDArray[np.float64]], w: float) -> Matrix:
    (a, b), ((ta,), (tb,)) = blocks, stats
    result: Matrix = (w * a / ta + (1 - w) * b / tb).astype(np.float32)
    return result


def _concatenated(blocks: Sequence[Matrix], stats: Sequence[npt.NDArray[np.float64]], w: float) -> Matrix:
    """Distance between [sqrt(w) a, sqrt(1 - w) b] of unit templates, from each part's own distances."""
    a, b = blocks
    result: Matrix = np.sqrt(w * a.astype(np.float64) ** 2 + (1 - w) * b.astype(np.float64) ** 2).astype(np.float32)
    return result


FUSIONS = (
    Fusion("z-score mean", ("dlib", "facenet"), _z_stats, _z_mean),
    Fusion("scaled distance mean", ("dlib", "facenet"), _scale_stats, _scaled_mean),
    Fusion("concatenated", ("dlib_unit", "facenet"), lambda _: np.zeros(0), _concatenated),
)


def p_norm(p: float) -> Fusion:
    """(w a^p + (1 - w) b^p)^(1/p) of the unit templates' distances; p = 2 is the concatenation."""

    def combine(blocks: Sequence[Matrix], _stats: Sequence[npt.NDArray[np.float64]], w: float) -> Matrix:
        a, b = (block.astype(np.float64) for block in blocks)
        result: Matrix = ((w * a**p + (1 - w) * b**p) ** (1 / p)).astype(np.float32)
        return result

    return Fusion(f"p-norm {p:g}", ("dlib_unit", "facenet"), lambda _: np.zeros(0), combine)


def person_numbers(labels: npt.NDArray[np.str_]) -> npt.NDArray[np.intp]:
    """A number per person (pairs are compared by number: millions of string pairs would take gigabytes)."""
    numbers: npt.NDArray[np.intp] = np.unique(labels, return_inverse=True)[1]
    return numbers


def _pair_mask(rows: npt.NDArray[np.bool_]) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    chosen = np.flatnonzero(rows)
    upper = np.triu_indices(len(chosen), k=1)
    return chosen[upper[0]], chosen[upper[1]]


def _fit_score(fused: npt.NDArray[np.float32], same: npt.NDArray[np.bool_]) -> float:
    impostors = fused[~same]
    genuine = fused[same]
    total = 0.0
    for fmr in FIT_FMRS:
        k = math.floor(fmr * len(impostors))
        limit = np.partition(impostors, k)[k]
        total += float(np.mean(genuine < limit))
    return total


def held_out(
    fusion: Fusion, bases: dict[str, Matrix], data: Dataset, folds: npt.NDArray[np.intp]
) -> tuple[Matrix, list[float]]:
    """The fused distance matrix, each block (fold a, fold b) scored by what was fitted without folds a and b."""
    n = len(data.files)
    fused = np.zeros((n, n), dtype=np.float32)
    chosen: list[float] = []
    people = person_numbers(data.labels)
    for a in range(FOLDS):
        for b in range(a, FOLDS):
            train = data.multi & (folds != a) & (folds != b)
            i, j = _pair_mask(train)
            same = people[i] == people[j]
            pairs = [bases[name][i, j] for name in fusion.bases]
            stats = [fusion.normalise(pair[~same].astype(np.float64)) for pair in pairs]
            scores = {w: _fit_score(fusion.combine(pairs, stats, w), same) for w in WEIGHTS}
            best = max(WEIGHTS, key=lambda w: (scores[w], -abs(w - 0.5)))
            chosen.append(best)
            rows, cols = np.flatnonzero(folds == a), np.flatnonzero(folds == b)
            block = fusion.combine([bases[name][np.ix_(rows, cols)] for name in fusion.bases], stats, best)
            fused[np.ix_(rows, cols)] = block
            fused[np.ix_(cols, rows)] = block.T
    return fused, chosen


def within_whitening(train: Floats, labels: npt.NDArray[np.str_], shrink: float) -> tuple[Floats, Floats]:
    """The mean and the matrix that whiten the within-person scatter of ``train`` (WCCN), the covariance shrunk
    towards its average variance by ``shrink``: x -> (x - mean) @ matrix."""
    x = train.astype(np.float64)
    residuals = np.empty_like(x)
    for label in np.unique(labels):
        rows = labels == label
        residuals[rows] = x[rows] - x[rows].mean(axis=0)
    within = residuals.T @ residuals / len(x)
    within += shrink * np.trace(within) / len(within) * np.eye(len(within))
    values, vectors = np.linalg.eigh(within)
    return x.mean(axis=0).astype(np.float32), (vectors / np.sqrt(values)).astype(np.float32)


def held_out_whitened(
    vectors: Floats, data: Dataset, folds: npt.NDArray[np.intp], shrink: float = 0.1
) -> tuple[Matrix, list[float]]:
    """Distances between unit-length whitened templates, each block (fold a, fold b) whitened by what was fitted
    on the other folds' people with two or more photos."""
    n = len(data.files)
    fused = np.zeros((n, n), dtype=np.float32)
    for a in range(FOLDS):
        for b in range(a, FOLDS):
            train = data.multi & (folds != a) & (folds != b)
            mean, matrix = within_whitening(vectors[train], data.labels[train], shrink)
            rows = np.flatnonzero((folds == a) | (folds == b))
            whitened = unit(((vectors[rows] - mean) @ matrix).astype(np.float32))
            block = distances(whitened)
            in_a, in_b = folds[rows] == a, folds[rows] == b
            fused[np.ix_(rows[in_a], rows[in_b])] = block[np.ix_(in_a, in_b)]
            fused[np.ix_(rows[in_b], rows[in_a])] = block[np.ix_(in_b, in_a)]
    return fused, []


# -- measures on a distance matrix ----------------------------------------------------------------


def verification(matrix: Matrix, data: Dataset, fmrs: Sequence[float] = FMRS) -> list[Verification]:
    i, j = _pair_mask(data.multi)
    people = person_numbers(data.labels)
    pair_distances = matrix[i, j].astype(np.float64)
    same = people[i] == people[j]
    rows = []
    for fmr in fmrs:
        result = tar_at_far(pair_distances, same, fmr)
        rows.append(Verification(fmr, result.tar, result.threshold, int(same.sum()), int((~same).sum())))
    return rows


def closed_set(matrix: Matrix, parts: Split, ranks: Sequence[int] = RANKS) -> dict[int, float]:
    block = matrix[np.ix_(parts.probes, parts.enrolled)]
    mate = block[np.arange(len(parts.probes)), parts.mates]
    better = (block < mate[:, None]).sum(axis=1)  # enrolled faces strictly nearer than the mate
    return {rank: float(np.mean(better < rank)) for rank in ranks}


def open_set(matrix: Matrix, parts: Split, fpirs: Sequence[float] = FPIRS) -> list[OpenSetRow]:
    gallery = np.concatenate([parts.enrolled, parts.distractors])
    block = matrix[np.ix_(parts.probes, gallery)].astype(np.float64)
    rows = np.arange(len(parts.probes))
    mate = block[rows, parts.mates].copy()
    block[rows, parts.mates] = np.inf
    return fnir_at_fpir(mate, block.min(axis=1), 0, len(gallery), fpirs)


def measure(method: str, matrix: Matrix, data: Dataset, parts: Split, weights: list[float]) -> Report:
    return Report(method, verification(matrix, data), closed_set(matrix, parts), open_set(matrix, parts), weights)


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def render(reports: list[Report], data: Dataset, parts: Split) -> str:
    lines = [
        f"Dev LFW faces found by both pipelines: {len(data.files)} ({len(parts.enrolled)} people with 2+ photos, "
        f"{len(parts.probes)} probes, {len(parts.distractors)} one-photo people as the only distractors; "
        f"{data.dlib_only} faces found by dlib only, {data.facenet_only} by YuNet only, left out).",
        "",
        "| templates | TAR@1e-3 | TAR@1e-4 | TAR@1e-5 | rank-1 | rank-10 | FNIR@FPIR 1e-1 | FNIR@FPIR 1e-2 "
        "| FNIR@FPIR 1e-3 | weight w (per fold pair) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for report in reports:
        tars = " | ".join(_figure(check.tar) for check in report.verification)
        fnirs = " | ".join(_figure(row.fnir) for row in report.open_set)
        weights = ", ".join(f"{w:g}" for w in sorted(set(report.weights))) or "-"
        lines.append(
            f"| {report.method} | {tars} | {report.closed_set[1]:.3f} | {report.closed_set[10]:.3f} | {fnirs} "
            f"| {weights} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=default_dev_dir())
    parser.add_argument("--json", type=Path)
    parser.add_argument("--facenet-views", type=int, default=1, choices=(1, 2))
    parser.add_argument(
        "--dlib-views", type=int, default=4, choices=(1, 4), help="1: bench.identification --template-views 1 first"
    )
    parser.add_argument("--shrink", type=float, default=0.1, help="whitening's shrinkage towards the mean variance")
    parser.add_argument(
        "--p-norms", type=float, nargs="*", default=[], help="p-norm fusions to try too (2: concatenated)"
    )
    args = parser.parse_args(argv)
    data = load_dataset(args.data, args.facenet_views, args.dlib_views)
    dlib = "dlib, four views (today's default)" if args.dlib_views == 4 else "dlib, one view"
    facenet = "FaceNet" if args.facenet_views == 1 else "FaceNet (two views)"
    parts = split(Faces(data.dlib, data.labels, data.multi))
    folds = identity_folds(data.labels)
    bases = {"dlib": distances(data.dlib), "facenet": distances(data.facenet), "dlib_unit": distances(unit(data.dlib))}
    reports = [
        measure(dlib, bases["dlib"], data, parts, []),
        measure(facenet, bases["facenet"], data, parts, []),
    ]
    for fusion in (*FUSIONS, *(p_norm(p) for p in args.p_norms)):
        fused, weights = held_out(fusion, bases, data, folds)
        reports.append(measure(f"dlib + {facenet}, {fusion.name}", fused, data, parts, weights))
        del fused
        print(f"{fusion.name}: done", file=sys.stderr)
    concatenated = np.hstack([unit(data.dlib), unit(data.facenet)])
    for name, vectors in (
        (dlib, data.dlib),
        (facenet, data.facenet),
        (f"dlib + {facenet} concatenated", concatenated),
    ):
        fused, weights = held_out_whitened(vectors, data, folds, args.shrink)
        reports.append(measure(f"{name}, within-person whitened (shrink {args.shrink:g})", fused, data, parts, weights))
        del fused
        print(f"{name} whitened: done", file=sys.stderr)
    print(render(reports, data, parts))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps([asdict(report) for report in reports], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
