"""Face verification accuracy on the dev set's pair protocols (LFW practice), as facesearch's API computes it.

Each distinct image of the chosen pairs is embedded once with ``facesearch.embed_faces`` (the largest face
by box area is kept); a pair whose image shows no face is predicted "different". Reported per protocol:
accuracy at the default threshold, the best threshold of a 0.40-0.75 sweep, a plateau table, 10-fold
cross-validated accuracy (threshold chosen on nine folds, tested on the tenth), TAR at fixed FARs and the
time per image. Markdown goes to stdout, progress to stderr.

    python bench/verify_accuracy.py                       # all lfw_view1_devtrain pairs
    python bench/verify_accuracy.py --protocol all --json bench/results/verify.json
    python bench/verify_accuracy.py --limit 600 --sample-seed 7
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

import facesearch
from facesearch.core.errors import FacesearchError
from facesearch.core.records import AnalysedFace, Embedding
from facesearch.core.settings import DEFAULT_MATCH_THRESHOLD, Settings
from facesearch.vision.models.registry import shared_models
from facesearch.vision.templates import VIEW_SCALE

DEFAULT_PROTOCOL = "lfw_view1_devtrain"
SWEEP = tuple(round(0.40 + 0.01 * i, 2) for i in range(36))
"""Thresholds searched for the best one: 0.40 to 0.75, step 0.01."""
PLATEAU = tuple(round(0.50 + 0.02 * i, 2) for i in range(11))
"""Thresholds of the plateau table: 0.50 to 0.70, step 0.02."""
FARS = (0.1, 0.01, 0.001)
FOLDS = 10
DistanceArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def default_dev_dir() -> Path:
    """``FACESEARCH_DEV_DATA``, else ``shared/faces/dev`` beside the repository."""
    override = os.environ.get("FACESEARCH_DEV_DATA")
    return Path(override) if override else Path(__file__).resolve().parents[2] / "shared" / "faces" / "dev"


# -- pairs -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pair:
    a: str
    """Path relative to the dev folder."""
    b: str
    same: bool
    protocol: str


def read_pairs(dev: Path) -> list[Pair]:
    """Every pair of ``pairs.csv``, in file order."""
    with (dev / "pairs.csv").open(newline="") as handle:
        return [Pair(row["a"], row["b"], row["same"].strip() == "1", row["protocol"]) for row in csv.DictReader(handle)]


def protocols(pairs: Sequence[Pair]) -> list[str]:
    """Protocol names in order of first appearance, the LFW one first."""
    names = list(dict.fromkeys(p.protocol for p in pairs))
    return sorted(names, key=lambda name: (name != DEFAULT_PROTOCOL, names.index(name)))


def sample_pairs(pairs: Sequence[Pair], limit: int | None, seed: int) -> list[Pair]:
    """At most ``limit`` pairs, half same and half different (as far as each class allows), drawn with
    ``seed`` and returned in their original order; all of them when ``limit`` is None."""
    if limit is None or limit >= len(pairs):
        return list(pairs)
    rng = random.Random(seed)
    indexed = list(enumerate(pairs))
    same = [item for item in indexed if item[1].same]
    different = [item for item in indexed if not item[1].same]
    want_same = min(len(same), limit // 2)
    want_different = min(len(different), limit - want_same)
    want_same = min(len(same), limit - want_different)
    chosen = rng.sample(same, want_same) + rng.sample(different, want_different)
    return [pair for _, pair in sorted(chosen, key=lambda item: item[0])]


# -- embedding -------------------------------------------------------------------------------------


@dataclass
class ImageResult:
    """The largest face's template of one image (None without a face), and what it took."""

    embedding: Embedding | None
    faces: int
    seconds: float
    error: str | None = None
    face: AnalysedFace | None = field(default=None, repr=False)
    """The largest face itself (box, landmarks, rotation); not kept in --cache files."""


def load_models() -> None:
    """Load the process's models now, so that their loading is not timed as the first image's work."""
    models = shared_models()
    _ = (models.detector, models.landmarks, models.embedder)


def embed_largest(path: Path, settings: Settings | None = None) -> ImageResult:
    """``facesearch.embed_faces`` on ``path``, keeping the largest face by box area."""
    started = time.perf_counter()
    try:
        faces = facesearch.embed_faces(path, settings)
    except FacesearchError as problem:
        return ImageResult(None, 0, time.perf_counter() - started, problem.message)
    seconds = time.perf_counter() - started
    if not faces:
        return ImageResult(None, 0, seconds)
    largest = max(faces, key=lambda face: face.detection.box.area)
    return ImageResult(largest.embedding, len(faces), seconds, face=largest)


def embed_images(
    dev: Path,
    relative_paths: Sequence[str],
    *,
    settings: Settings | None = None,
    known: dict[str, ImageResult] | None = None,
    progress: Callable[[int, int, float], None] | None = None,
) -> dict[str, ImageResult]:
    """Each distinct image embedded once (those in ``known`` are reused, not re-embedded)."""
    results = dict(known or {})
    todo = [p for p in dict.fromkeys(relative_paths) if p not in results]
    started = time.perf_counter()
    for done, relative in enumerate(todo, start=1):
        results[relative] = embed_largest(dev / relative, settings)
        if progress is not None:
            progress(done, len(todo), time.perf_counter() - started)
    return results


def pair_distances(pairs: Sequence[Pair], images: dict[str, ImageResult]) -> DistanceArray:
    """Euclidean distance of each pair; +inf where either image has no face (never a match)."""
    distances = np.full(len(pairs), np.inf, dtype=np.float64)
    for i, pair in enumerate(pairs):
        a, b = images[pair.a].embedding, images[pair.b].embedding
        if a is not None and b is not None:
            distances[i] = float(facesearch.face_distance(a, b)[0])
    return distances


# -- metrics ---------------------------------------------------------------------------------------


def accuracy_at(distances: DistanceArray, same: BoolArray, threshold: float) -> float:
    """Share of pairs decided right when "same" means distance at or under ``threshold``."""
    if len(distances) == 0:
        return math.nan
    return float(np.mean((distances <= threshold) == same))


def best_threshold(
    distances: DistanceArray, same: BoolArray, candidates: Sequence[float] = SWEEP
) -> tuple[float, float, list[float]]:
    """The threshold with the highest accuracy (the middle one when several tie), its accuracy, and the ties."""
    scores = [accuracy_at(distances, same, t) for t in candidates]
    top = max(scores)
    tied = [t for t, s in zip(candidates, scores, strict=True) if s == top]
    return tied[(len(tied) - 1) // 2], top, tied


def stratified_folds(same: BoolArray, folds: int = FOLDS) -> list[npt.NDArray[np.intp]]:
    """Fold membership: the same pairs cut into ``folds`` contiguous runs (in file order), likewise the
    different pairs, run k of each forming fold k. Pairs files list pairs by name, so contiguous runs keep
    most identities within one fold, as LFW's own folds do."""
    positives = np.flatnonzero(same)
    negatives = np.flatnonzero(~same)
    return [
        np.sort(np.concatenate([p, n]))
        for p, n in zip(np.array_split(positives, folds), np.array_split(negatives, folds), strict=True)
    ]


@dataclass
class CrossValidation:
    folds: int
    accuracy_mean: float
    accuracy_std: float
    fold_accuracies: list[float]
    fold_thresholds: list[float]
    default_accuracy_mean: float
    """The default threshold's accuracy on the same test folds, for comparison."""


def cross_validate(
    distances: DistanceArray, same: BoolArray, folds: int = FOLDS, default: float = DEFAULT_MATCH_THRESHOLD
) -> CrossValidation | None:
    """Choose the threshold on ``folds - 1`` folds, measure it on the remaining one, for each fold."""
    if min(int(same.sum()), int((~same).sum())) < folds:
        return None
    membership = stratified_folds(same, folds)
    accuracies: list[float] = []
    chosen: list[float] = []
    at_default: list[float] = []
    for k, test in enumerate(membership):
        train = np.concatenate([m for j, m in enumerate(membership) if j != k])
        threshold, _, _ = best_threshold(distances[train], same[train])
        chosen.append(threshold)
        accuracies.append(accuracy_at(distances[test], same[test], threshold))
        at_default.append(accuracy_at(distances[test], same[test], default))
    return CrossValidation(
        folds=folds,
        accuracy_mean=statistics.fmean(accuracies),
        accuracy_std=statistics.stdev(accuracies),
        fold_accuracies=accuracies,
        fold_thresholds=chosen,
        default_accuracy_mean=statistics.fmean(at_default),
    )


@dataclass
class TarAtFar:
    far: float
    tar: float | None
    """None when there are too few different pairs for this FAR to mean anything."""
    threshold: float | None
    false_accepts_allowed: int


def tar_at_far(distances: DistanceArray, same: BoolArray, far: float) -> TarAtFar:
    """Share of same pairs accepted at the loosest threshold that accepts at most ``far`` of the different
    pairs (distance strictly under the (k+1)-th smallest impostor distance, k = floor(far x impostors)).
    Reported only when at least one false accept is allowed, i.e. with 1/far or more different pairs."""
    impostors = np.sort(distances[~same])
    allowed = math.floor(far * len(impostors) + 1e-9)
    if allowed < 1:
        return TarAtFar(far, None, None, allowed)
    limit = float(impostors[allowed]) if allowed < len(impostors) else math.inf
    tar = float(np.mean(distances[same] < limit)) if same.any() else math.nan
    return TarAtFar(far, tar, None if math.isinf(limit) else limit, allowed)


@dataclass
class PlateauRow:
    threshold: float
    accuracy: float
    tar: float
    """Same pairs accepted."""
    far: float
    """Different pairs accepted."""
    errors: int


def plateau(distances: DistanceArray, same: BoolArray, thresholds: Sequence[float] = PLATEAU) -> list[PlateauRow]:
    rows = []
    for t in thresholds:
        accepted = distances <= t
        rows.append(
            PlateauRow(
                threshold=t,
                accuracy=accuracy_at(distances, same, t),
                tar=float(accepted[same].mean()) if same.any() else math.nan,
                far=float(accepted[~same].mean()) if (~same).any() else math.nan,
                errors=int(np.sum(accepted != same)),
            )
        )
    return rows


# -- one protocol ----------------------------------------------------------------------------------


@dataclass
class ProtocolReport:
    protocol: str
    pairs: int
    same_pairs: int
    different_pairs: int
    images: int
    images_without_face: list[str]
    images_with_several_faces: int
    image_errors: dict[str, str]
    pairs_without_face: int
    default_threshold: float
    default_accuracy: float
    default_errors: int
    best_threshold: float
    best_accuracy: float
    best_tied: list[float]
    cross_validation: CrossValidation | None
    tar_at_far: list[TarAtFar]
    plateau: list[PlateauRow]
    distance_same_median: float
    distance_different_median: float
    seconds_per_image_mean: float | None
    seconds_per_image_median: float | None
    seconds_per_image_p95: float | None
    images_timed: int
    extra: dict[str, Any] = field(default_factory=dict)


def evaluate(
    protocol: str, pairs: Sequence[Pair], images: dict[str, ImageResult], timed: set[str] | None = None
) -> ProtocolReport:
    """Every figure of the report for ``pairs``; ``timed`` names the images embedded in this run."""
    same = np.array([p.same for p in pairs], dtype=np.bool_)
    distances = pair_distances(pairs, images)
    used = list(dict.fromkeys(path for p in pairs for path in (p.a, p.b)))
    without = [path for path in used if images[path].embedding is None]
    best, best_accuracy, tied = best_threshold(distances, same)
    seconds = [images[path].seconds for path in used if timed is None or path in timed]
    finite_same = distances[same & np.isfinite(distances)]
    finite_different = distances[~same & np.isfinite(distances)]
    return ProtocolReport(
        protocol=protocol,
        pairs=len(pairs),
        same_pairs=int(same.sum()),
        different_pairs=int((~same).sum()),
        images=len(used),
        images_without_face=without,
        images_with_several_faces=sum(1 for path in used if images[path].faces > 1),
        image_errors={path: images[path].error or "" for path in used if images[path].error},
        pairs_without_face=int(np.sum(~np.isfinite(distances))),
        default_threshold=DEFAULT_MATCH_THRESHOLD,
        default_accuracy=accuracy_at(distances, same, DEFAULT_MATCH_THRESHOLD),
        default_errors=int(np.sum((distances <= DEFAULT_MATCH_THRESHOLD) != same)),
        best_threshold=best,
        best_accuracy=best_accuracy,
        best_tied=tied,
        cross_validation=cross_validate(distances, same),
        tar_at_far=[tar_at_far(distances, same, far) for far in FARS],
        plateau=plateau(distances, same),
        distance_same_median=float(np.median(finite_same)) if len(finite_same) else math.nan,
        distance_different_median=float(np.median(finite_different)) if len(finite_different) else math.nan,
        seconds_per_image_mean=statistics.fmean(seconds) if seconds else None,
        seconds_per_image_median=statistics.median(seconds) if seconds else None,
        seconds_per_image_p95=float(np.percentile(seconds, 95)) if seconds else None,
        images_timed=len(seconds),
    )


# -- report ----------------------------------------------------------------------------------------


def _ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1000:.0f} ms"


def _ties(tied: Sequence[float]) -> str:
    return f"{tied[0]:.2f}" if len(tied) == 1 else f"{tied[0]:.2f}-{tied[-1]:.2f} ({len(tied)} thresholds tie)"


def render_protocol(report: ProtocolReport) -> str:
    r = report
    lines = [
        f"## {r.protocol}",
        "",
        f"{r.pairs} pairs ({r.same_pairs} same / {r.different_pairs} different), {r.images} distinct images; "
        f"{len(r.images_without_face)} images without a detected face -> {r.pairs_without_face} pairs predicted "
        f'"different"; {r.images_with_several_faces} images with several faces (largest kept).',
        "",
        "| measure | value |",
        "|---|---|",
        f"| accuracy at the default threshold {r.default_threshold:.2f} | **{r.default_accuracy:.4f}** "
        f"({r.pairs - r.default_errors}/{r.pairs} right) |",
        f"| best threshold, sweep {SWEEP[0]:.2f}-{SWEEP[-1]:.2f} step 0.01 | **{r.best_threshold:.2f}** "
        f"(accuracy {r.best_accuracy:.4f}; best: {_ties(r.best_tied)}) |",
    ]
    cv = r.cross_validation
    if cv is None:
        lines.append(f"| {FOLDS}-fold cross-validated accuracy | n/a (fewer than {FOLDS} pairs of a class) |")
    else:
        lines += [
            f"| {cv.folds}-fold cross-validated accuracy (threshold chosen on {cv.folds - 1} folds) | "
            f"**{cv.accuracy_mean:.4f} +- {cv.accuracy_std:.4f}** |",
            f"| thresholds chosen per fold | {min(cv.fold_thresholds):.2f}-{max(cv.fold_thresholds):.2f} "
            f"(mean {statistics.fmean(cv.fold_thresholds):.3f}) |",
            f"| default {r.default_threshold:.2f} on the same test folds | {cv.default_accuracy_mean:.4f} |",
        ]
    for item in r.tar_at_far:
        if item.tar is None:
            value = f"n/a (needs >= {math.ceil(1 / item.far)} different pairs)"
        else:
            limit = "any" if item.threshold is None else f"< {item.threshold:.3f}"
            value = f"{item.tar:.4f} (distance {limit}; {item.false_accepts_allowed} false accepts allowed)"
        lines.append(f"| TAR @ FAR={item.far:g} | {value} |")
    lines += [
        f"| median distance, same / different pairs | {r.distance_same_median:.3f} / "
        f"{r.distance_different_median:.3f} |",
        f"| time per image (embed_faces, decode to template; {r.images_timed} images timed) | "
        f"mean {_ms(r.seconds_per_image_mean)}, median {_ms(r.seconds_per_image_median)}, "
        f"p95 {_ms(r.seconds_per_image_p95)} |",
        "",
        "| threshold | accuracy | same accepted (TAR) | different accepted (FAR) | errors |",
        "|---|---|---|---|---|",
    ]
    for row in r.plateau:
        mark = " (default)" if math.isclose(row.threshold, r.default_threshold) else ""
        lines.append(
            f"| {row.threshold:.2f}{mark} | {row.accuracy:.4f} | {row.tar:.4f} | {row.far:.4f} | {row.errors} |"
        )
    if r.images_without_face:
        shown = ", ".join(r.images_without_face[:10])
        more = f" and {len(r.images_without_face) - 10} more" if len(r.images_without_face) > 10 else ""
        lines += ["", f"Images without a detected face: {shown}{more}."]
    if r.image_errors:
        lines += ["", "Images that could not be read: " + "; ".join(f"{k}: {v}" for k, v in r.image_errors.items())]
    return "\n".join(lines)


def render(reports: Sequence[ProtocolReport], header: dict[str, Any]) -> str:
    lines = [
        "# facesearch verification accuracy (dev set)",
        "",
        f"facesearch {header['facesearch']} - embedder {header['embedder']} - default threshold "
        f"{header['default_threshold']:.2f} - data {header['dev']} - {header['date']} - "
        f"python {header['python']} on {header['machine']} ({header['cpus']} CPUs)",
        "",
        'A pair is "same" when the distance of the largest faces is at or under the threshold; a pair with an '
        'image without a detected face is "different".',
    ]
    if header.get("cached"):
        lines += [
            "",
            f"{header['cached']} templates came from --cache; their times are those measured when they were cached.",
        ]
    if header.get("sample"):
        lines += ["", f"Sample: {header['sample']}"]
    if len(reports) > 1:
        lines += [
            "",
            "| protocol | pairs | acc @ default | best threshold (acc) | 10-fold CV acc | images w/o face |",
            "|---|---|---|---|---|---|",
        ]
        for r in reports:
            cv = "n/a" if r.cross_validation is None else f"{r.cross_validation.accuracy_mean:.4f}"
            lines.append(
                f"| {r.protocol} | {r.pairs} | {r.default_accuracy:.4f} | {r.best_threshold:.2f} "
                f"({r.best_accuracy:.4f}) | {cv} | {len(r.images_without_face)} |"
            )
    for r in reports:
        lines += ["", render_protocol(r)]
    return "\n".join(lines) + "\n"


# -- cache -----------------------------------------------------------------------------------------


def _fingerprint(settings: Settings) -> dict[str, Any]:
    return {
        "facesearch": facesearch.__version__,
        "upsample_max_pixels": settings.upsample_max_pixels,
        "upsample_target_side": settings.upsample_target_side,
        "pipeline": "adaptive-upsample, tight-crop retry v2",
        "detect_max_side": settings.detect_max_side,
        "detection_threshold": settings.detection_threshold,
        "try_rotations": settings.try_rotations,
        "template_views": settings.template_views,
        "template_scale": VIEW_SCALE[settings.template_views],
    }


def load_cache(path: Path, settings: Settings) -> dict[str, ImageResult]:
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    if data.get("fingerprint") != _fingerprint(settings):
        print(f"cache {path} was made with other settings; ignoring it", file=sys.stderr)
        return {}
    return {
        key: ImageResult(
            None if item["embedding"] is None else np.asarray(item["embedding"], dtype=np.float32),
            item["faces"],
            item["seconds"],
            item.get("error"),
        )
        for key, item in data["images"].items()
    }


def save_cache(path: Path, settings: Settings, images: dict[str, ImageResult]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "fingerprint": _fingerprint(settings),
        "images": {
            key: {
                "embedding": None if r.embedding is None else [float(v) for v in r.embedding],
                "faces": r.faces,
                "seconds": r.seconds,
                "error": r.error,
            }
            for key, r in images.items()
        },
    }
    path.write_text(json.dumps(data))


# -- main ------------------------------------------------------------------------------------------


def _progress(quiet: bool) -> Callable[[int, int, float], None] | None:
    if quiet:
        return None

    def report(done: int, total: int, elapsed: float) -> None:
        if done == total or done % 100 == 0:
            left = elapsed / done * (total - done)
            print(f"  embedded {done}/{total} images, {elapsed:.0f} s, ~{left:.0f} s left", file=sys.stderr)

    return report


def _plain(value: Any) -> Any:
    """JSON-ready copy (dataclasses, numpy scalars, inf/nan as None)."""
    if hasattr(value, "__dataclass_fields__"):
        return _plain(asdict(value))
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float | np.floating):
        return None if not math.isfinite(float(value)) else float(value)
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--protocol",
        default=DEFAULT_PROTOCOL,
        help=f"pair protocol of pairs.csv, or 'all' (default {DEFAULT_PROTOCOL})",
    )
    parser.add_argument("--limit", type=int, help="at most N pairs per protocol, half same / half different")
    parser.add_argument("--sample-seed", type=int, default=0, help="seed of the --limit sample (default 0)")
    parser.add_argument(
        "--data", type=Path, default=None, help="dev set folder (default: FACESEARCH_DEV_DATA or ../shared/faces/dev)"
    )
    parser.add_argument("--json", type=Path, help="also write every figure as JSON to this file")
    parser.add_argument(
        "--cache",
        type=Path,
        help="reuse/save templates in this JSON file (for re-rendering; times then cover only new images)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    dev: Path = args.data or default_dev_dir()
    if not (dev / "pairs.csv").is_file():
        print(f"dev set not found at {dev} (no pairs.csv); pass --data or set FACESEARCH_DEV_DATA", file=sys.stderr)
        return 2
    if args.limit is not None and args.limit < 2:
        print("--limit must be at least 2", file=sys.stderr)
        return 2
    all_pairs = read_pairs(dev)
    known = protocols(all_pairs)
    wanted = known if args.protocol == "all" else [args.protocol]
    unknown = [name for name in wanted if name not in known]
    if unknown:
        print(f"unknown protocol {unknown[0]!r}; pairs.csv has: {', '.join(known)}, or use 'all'", file=sys.stderr)
        return 2
    chosen = {
        name: sample_pairs([p for p in all_pairs if p.protocol == name], args.limit, args.sample_seed)
        for name in wanted
    }
    settings = Settings()
    cached = load_cache(args.cache, settings) if args.cache else {}
    paths = [path for pairs in chosen.values() for p in pairs for path in (p.a, p.b)]
    fresh = {path for path in dict.fromkeys(paths) if path not in cached}
    if not args.quiet:
        print(f"embedding {len(fresh)} images ({len(set(paths)) - len(fresh)} from cache)...", file=sys.stderr)
    load_models()
    images = embed_images(dev, paths, settings=settings, known=cached, progress=_progress(args.quiet))
    if args.cache:
        save_cache(args.cache, settings, images)
    reports = [evaluate(name, pairs, images) for name, pairs in chosen.items()]
    header = {
        "facesearch": facesearch.__version__,
        "embedder": "dlib-resnet-v1 (dlib HOG detector, 5-point alignment)",
        "default_threshold": DEFAULT_MATCH_THRESHOLD,
        "dev": str(dev),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "cached": len(set(paths)) - len(fresh),
        "sample": None
        if args.limit is None
        else f"at most {args.limit} pairs per protocol (balanced), seed {args.sample_seed}",
    }
    sys.stdout.write(render(reports, header))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(_plain({"header": header, "protocols": reports}), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
