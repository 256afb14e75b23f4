"""The false-match curve and score calibration that searches use, fitted on the dev set's LFW faces.

Writes ``src/facesearch/vision/models/calibration/<recipe>.json`` (``facesearch.vision.calibration`` reads it):

- **The false-match curve**: FMR as a function of distance, from every different-person pair of the dev LFW faces
  (one-photo people included). A search of N faces that accepts distances up to d expects N x FMR(d) wrong
  people per probe face, so a search's threshold is where that equals the wanted number. Below the curve's
  resolution (fewer than ``MIN_PAIRS`` different pairs) log10 FMR is extrapolated along a straight line through
  the last resolved point, with the slowest fall the measured tail shows over any decade above it: a tail that
  bends downwards (log-concave, as a Gaussian's does) falls faster still, so the line over-states FMR there and
  the threshold it gives is lower, not higher, than the truth.
- **The calibration**: a logistic fit of distance to "same person", with same and different pairs weighted to a
  stated prior of 0.5 (a pair as likely to be one person as two, before its distance is known).

Out of fold (identities split in two halves, each half's faces checked with the other half's fit): the observed
wrong matches per probe face at gallery sizes 1k to 1M (the held-out half's real faces, then synthetic distractors
from ``bench/face_model.py``; and the real faces' rate alone scaled to each size, since synthetic faces hold fewer
look-alikes than real ones), how many probes found their mate within the threshold, and the calibration's
reliability on held-out pairs.

    python -m bench.calibration                      # the default recipe (needs bench.facenet_int8's caches)
    python -m bench.calibration --sizes 1000 10000   # quicker check
    python -m bench.calibration --recipe dlib-4view-v1   # dlib's four views, checked up to 1M faces (minutes)
    python -m bench.calibration --recipe dlib4view+facenet2view-v1   # FaceNet in 32 bits (bench.facenet_templates)

A fused recipe's faces are those both pipelines found (``bench/template_fusion.py``: dlib's four-view cache and
FaceNet's chip and mirror caches, ``bench/facenet_templates.py`` in 32 bits or ``bench/facenet_int8.py`` in 8), fused
exactly as ``vision/recipes.py`` fuses them. The face
model's synthetic distractors model dlib's templates only, so for the fused recipe the out-of-fold checks beyond the
real faces report the real faces' rate scaled to the gallery size (``observed`` is then that figure).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt

from bench import facenet_templates
from bench.face_model import MODELS, FaceModel
from bench.identification import Faces, dev_faces
from bench.template_fusion import load_dataset
from bench.verify_accuracy import default_dev_dir
from facesearch.core.settings import DEFAULT_TEMPLATE_RECIPE, TEMPLATE_RECIPES, Settings
from facesearch.vision.calibration import CALIBRATION_DIR, PRIOR, Calibration, calibration_file
from facesearch.vision.recipes import fused_templates, recipe_named

EDGES = np.round(np.arange(0.0, 1.6005, 0.001), 3)
"""Histogram bins of distance (every pair is counted in one)."""
MIN_PAIRS = 10
"""Different pairs below which the curve is not read but extrapolated."""
TAIL_TOP = 1e-4
"""The extrapolation's slope is read from the resolved curve from its end up to this FMR."""
CURVE_STEP = 0.005
SIZES = (1_000, 10_000, 100_000, 1_000_000)
WANTED = (0.1, 1.0)
"""Expected wrong matches per probe face checked out of fold."""
CHUNK = 100_000
Floats = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Histograms:
    same: Floats
    different: Floats


def pair_histograms(vectors: npt.NDArray[np.float32], labels: npt.NDArray[np.str_]) -> Histograms:
    """Counts of same- and different-person pairs in each distance bin, over every pair of faces."""
    data = vectors.astype(np.float64)
    squared = (data**2).sum(axis=1)
    same = np.zeros(len(EDGES) - 1)
    different = np.zeros(len(EDGES) - 1)
    block = 256
    for start in range(0, len(data), block):
        stop = min(len(data), start + block)
        d = np.sqrt(
            np.maximum(squared[start:stop, None] + squared[None, start:] - 2 * data[start:stop] @ data[start:].T, 0)
        )
        rows = np.arange(start, stop)[:, None]
        upper = np.arange(start, len(data))[None, :] > rows
        is_same = labels[start:stop, None] == labels[None, start:]
        same += np.histogram(d[upper & is_same], EDGES)[0]
        different += np.histogram(d[upper & ~is_same], EDGES)[0]
    return Histograms(same, different)


def fit_curve(different: Floats) -> dict[str, Any]:
    """The resolved false-match curve (thinned to ``CURVE_STEP``) and its conservative tail below."""
    cumulative = np.cumsum(different)
    total = float(cumulative[-1])
    distances = EDGES[1:]
    fmr = cumulative / total
    resolved = np.flatnonzero(cumulative >= MIN_PAIRS)
    first = int(resolved[0])
    on_step = np.isclose(np.round(distances / CURVE_STEP) * CURVE_STEP, distances)
    keep = [first] + [int(i) for i in resolved[1:] if on_step[i] and distances[i] <= 1.2]
    d0, y0 = float(distances[first]), math.log10(fmr[first])
    # The slowest fall of the measured tail: the least slope of a line from the first resolved point to any
    # point a decade or more above it (up to TAIL_TOP).
    tail = [i for i in resolved if math.log10(fmr[i]) - y0 >= 1 and fmr[i] <= TAIL_TOP]
    slope = min((math.log10(fmr[i]) - y0) / (distances[i] - d0) for i in tail)
    return {
        "different_pairs": int(total),
        "distance": [round(float(distances[i]), 3) for i in keep],
        "fmr": [float(f"{fmr[i]:.4g}") for i in keep],
        "tail": {
            "distance": round(d0, 3),
            "log10_fmr": round(y0, 4),
            "slope": round(slope, 3),
            "note": (
                f"below {d0:.3f} fewer than {MIN_PAIRS} different pairs: log10 FMR extrapolated along this line, "
                "whose slope is the slowest fall of the measured curve over a decade or more above that point (up "
                f"to FMR {TAIL_TOP:g}); assuming the unmeasured tail falls no faster keeps the FMR it predicts high "
                "and the thresholds read from it low"
            ),
        },
    }


def fit_logistic(hist: Histograms, prior: float = PRIOR) -> tuple[float, float]:
    """Intercept and slope of logit P(same | distance), same and different pairs weighted to ``prior``."""
    x = (EDGES[:-1] + EDGES[1:]) / 2
    w_same = hist.same * prior / hist.same.sum()
    w_diff = hist.different * (1 - prior) / hist.different.sum()
    keep = (w_same + w_diff) > 0
    x, w_same, w_diff = x[keep], w_same[keep], w_diff[keep]
    weights = w_same + w_diff
    target = w_same / weights
    design = np.column_stack([np.ones_like(x), x])
    beta = np.array([0.0, 0.0])
    for _ in range(50):
        p = 1 / (1 + np.exp(-(design @ beta)))
        gradient = design.T @ (weights * (target - p))
        hessian = design.T @ (design * (weights * p * (1 - p))[:, None])
        step = np.linalg.solve(hessian, gradient)
        beta = beta + step
        if np.abs(step).max() < 1e-10:
            break
    return float(beta[0]), float(beta[1])


def fit(faces: Faces, recipe: str) -> dict[str, Any]:
    hist = pair_histograms(faces.vectors, faces.labels)
    intercept, slope = fit_logistic(hist)
    return {
        "recipe": recipe,
        "source": (
            f"dev set LFW faces: {len(faces.vectors):,} faces of {len(set(faces.labels.tolist())):,} people, "
            f"{int(hist.same.sum()):,} same-person and {int(hist.different.sum()):,} different-person pairs "
            "(bench/calibration.py)"
        ),
        "false_match_curve": fit_curve(hist.different),
        "same_person": {
            "model": "logistic on distance",
            "prior": PRIOR,
            "intercept": round(intercept, 4),
            "slope": round(slope, 4),
            "same_pairs": int(hist.same.sum()),
        },
    }


def subset(faces: Faces, keep: npt.NDArray[np.bool_]) -> Faces:
    return Faces(faces.vectors[keep], faces.labels[keep], faces.multi[keep])


def wrong_matches(
    probes: npt.NDArray[np.float32], gallery: npt.NDArray[np.float32], threshold: float
) -> npt.NDArray[np.int64]:
    """For each probe, how many gallery faces lie within ``threshold``."""
    index = faiss.IndexFlatL2(gallery.shape[1])
    index.add(gallery)
    lims, _, _ = index.range_search(probes, threshold**2)
    counts: npt.NDArray[np.int64] = np.diff(lims).astype(np.int64)
    return counts


def check_fold(
    train: Faces, test: Faces, model: FaceModel | None, sizes: Sequence[int], fold: int
) -> list[dict[str, Any]]:
    """Held-out identities searched at each gallery size with the thresholds fitted on the other half; past the
    real faces, with ``model``'s synthetic distractors (without a model, the real faces' rate scaled)."""
    calibration = Calibration.from_dict(fit(train, "fold"))
    seen: set[str] = set()
    enrolled_mask = np.zeros(len(test.labels), dtype=bool)
    for position, label in enumerate(test.labels.tolist()):
        if label not in seen:
            seen.add(label)
            enrolled_mask[position] = True
    probe_mask = ~enrolled_mask  # later photos of multi-photo people; their first photo is in the gallery
    probes = test.vectors[probe_mask]
    probe_labels = test.labels[probe_mask]
    real = test.vectors[enrolled_mask]
    real_labels = test.labels[enrolled_mask]
    mate = {label: position for position, label in enumerate(real_labels.tolist())}
    mate_distance = np.linalg.norm(probes - real[[mate[str(label)] for label in probe_labels]], axis=1)
    rng = np.random.default_rng(fold)
    rows = []
    for size in sizes:
        for wanted in WANTED:
            threshold = calibration.threshold(wanted, size)
            chosen = np.arange(len(real)) if size >= len(real) else np.sort(rng.choice(len(real), size, replace=False))
            mate_held = np.isin([mate[str(label)] for label in probe_labels], chosen)
            own = mate_held & (mate_distance <= threshold)
            # Wrong matches: every face within the threshold but the probe's own first photo.
            within = wrong_matches(probes, real[chosen], threshold) - own.astype(np.int64)
            # Real look-alikes are rarer among synthetic faces: the real faces' rate, scaled to the gallery, too.
            real_scaled = float(within.mean()) * size / len(chosen)
            for start in range(0, max(0, size - len(chosen)) if model else 0, CHUNK):
                assert model is not None
                count = min(CHUNK, size - len(chosen) - start)
                synthetic = model.faces(count, seed=1000 * (fold + 1) + start // CHUNK)[0]
                within += wrong_matches(probes, synthetic, threshold)
            rows.append(
                {
                    "fold": fold,
                    "gallery": size,
                    "wanted": wanted,
                    "threshold": round(threshold, 4),
                    "extrapolated": calibration.extrapolated(wanted, size),
                    "probes": len(probes),
                    "observed": float(within.mean()) if model or size <= len(chosen) else real_scaled,
                    "observed_real_scaled": real_scaled,
                    "mates_found": float(own[mate_held].mean()),
                }
            )
            print(json.dumps(rows[-1]), file=sys.stderr)
    return rows


def reliability(train: Faces, test: Faces) -> dict[str, Any]:
    """Held-out pairs, weighted to the prior, binned by the score fitted on the other half."""
    calibration = Calibration.from_dict(fit(train, "fold"))
    hist = pair_histograms(test.vectors, test.labels)
    centres = (EDGES[:-1] + EDGES[1:]) / 2
    predicted = np.array([calibration.likelihood(float(c)) for c in centres])
    w_same = hist.same * PRIOR / hist.same.sum()
    w_diff = hist.different * (1 - PRIOR) / hist.different.sum()
    bins = np.minimum((predicted * 10).astype(int), 9)
    rows = []
    error = 0.0
    for b in range(10):
        chosen = bins == b
        weight = float((w_same + w_diff)[chosen].sum())
        if weight == 0:
            continue
        observed = float(w_same[chosen].sum() / weight)
        mean_predicted = float(((w_same + w_diff) * predicted)[chosen].sum() / weight)
        error += weight * abs(observed - mean_predicted)
        rows.append({"predicted": round(mean_predicted, 3), "observed": round(observed, 3), "weight": round(weight, 4)})
    return {"bins": rows, "expected_calibration_error": round(error, 4)}


def recipe_faces(dev: Path, name: str) -> Faces:
    """The dev LFW faces' templates as ``name`` makes them."""
    recipe = recipe_named(name)
    if not recipe.facenet_views:
        return dev_faces(dev, Settings(template_views=recipe.dlib_views))[0]
    data = load_dataset(
        dev,
        facenet_views=recipe.facenet_views,
        dlib_views=recipe.dlib_views,
        facenet_caches=facenet_templates.recipe_caches(recipe),
    )
    return Faces(fused_templates(data.dlib, data.facenet, recipe.scale), data.labels, data.multi)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=default_dev_dir())
    parser.add_argument("--recipe", default=DEFAULT_TEMPLATE_RECIPE, choices=TEMPLATE_RECIPES)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--out-dir", type=Path, default=CALIBRATION_DIR)
    args = parser.parse_args(argv)
    recipe = recipe_named(args.recipe)
    faces = recipe_faces(args.data, args.recipe)
    report = fit(faces, recipe.name)
    people = np.array(sorted(set(faces.labels.tolist())))
    halves = np.random.default_rng(0).permutation(len(people)) % 2
    model = None if recipe.facenet_views else FaceModel.load(MODELS[recipe.dlib_views])
    checks: list[dict[str, Any]] = []
    calibration_checks = []
    for fold in (0, 1):
        held = np.isin(faces.labels, people[halves == fold])
        train, test = subset(faces, ~held), subset(faces, held)
        checks += check_fold(train, test, model, args.sizes, fold)
        calibration_checks.append(reliability(train, test))
    report["out_of_fold"] = {
        "split": "identities in two halves (seed 0); each half searched with the other half's fit",
        "wrong_matches_per_probe_face": checks,
        "calibration": calibration_checks,
    }
    path = args.out_dir / calibration_file(recipe.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {path}")
    for row in checks:
        print(
            f"fold {row['fold']} gallery {row['gallery']:>9,} wanted {row['wanted']:<4} "
            f"threshold {row['threshold']:.4f}"
            f"{' (extrapolated)' if row['extrapolated'] else ''}: observed {row['observed']:.3f} wrong matches per "
            f"probe face ({row['observed_real_scaled']:.3f} scaled from the real faces alone), "
            f"mates found {row['mates_found']:.3f}"
        )
    for fold, check in enumerate(calibration_checks):
        print(f"fold {fold} calibration error {check['expected_calibration_error']}: {check['bins']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
