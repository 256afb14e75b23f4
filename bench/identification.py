"""Verification and identification on the dev set's LFW faces, as a gallery of millions would see them.

Every face of the dev LFW identities is embedded once with ``facesearch.embed_faces`` (largest face; cached in
``bench/results/cluster-cache-{1,4}view.json``, shared with ``bench/cluster_quality.py``). Reported:

- **Verification over all pairs** of the identities with two or more photos: TAR at FMR 1e-3, 1e-4 and 1e-5
  (every same-person pair against every different-person pair, about 5.5 million).
- **Closed-set identification**: one photo of each such person enrolled (the first by name), every other photo of
  them a probe; rank-1 and rank-10.
- **Open-set identification (1:N)**: the same enrolled photos plus distractors: the faces of the one-photo
  identities, and synthetic faces from the fitted face model (``bench/face_model.py``) up to a million. Each probe
  is searched twice, as the standard protocol does: with its mate enrolled (a miss is the mate not returned first
  within the threshold) and without it (a false positive is any face returned within the threshold). Reported:
  the missed-match rate (FNIR) at false-positive identification rates (FPIR) 1e-1, 1e-2 and 1e-3, each
  threshold chosen from the non-mated searches of that gallery size.

Nothing here is fitted on the dev faces, so no cross-validation is needed; a scoring model tuned on them must be
measured out of fold (folds split by identity) before it is compared with these figures.

    python -m bench.identification                        # default templates, up to 1M synthetic distractors
    python -m bench.identification --distractors 0 10000  # quicker
    python -m bench.identification --json bench/results/identification.json
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import faiss
import numpy as np
import numpy.typing as npt

from bench.face_model import MODELS, FaceModel
from bench.verify_accuracy import default_dev_dir, embed_images, load_cache, load_models, save_cache, tar_at_far
from facesearch.core.settings import DEFAULT_TEMPLATE_VIEWS, TEMPLATE_VIEWS, Settings

CACHE = "bench/results/cluster-cache-{views}view.json"
LFW_SOURCE = "lfw_muxspace"
FMRS = (1e-3, 1e-4, 1e-5)
FPIRS = (1e-1, 1e-2, 1e-3)
RANKS = (1, 10)
DISTRACTORS = (0, 10_000, 100_000, 1_000_000)
Floats = npt.NDArray[np.float32]
Labels = npt.NDArray[np.str_]


@dataclass(frozen=True)
class Faces:
    """Templates with their identity; ``multi`` marks the faces of identities with two or more photos."""

    vectors: Floats
    labels: Labels
    multi: npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Verification:
    fmr: float
    tar: float | None
    threshold: float | None
    same_pairs: int
    different_pairs: int


@dataclass(frozen=True)
class OpenSetRow:
    distractors: int
    """Synthetic faces added to the gallery (the one-photo identities are always in it)."""
    gallery: int
    fpir: float
    fnir: float | None
    threshold: float | None
    false_positives_allowed: int


@dataclass(frozen=True)
class Split:
    enrolled: npt.NDArray[np.intp]
    """One face per identity with two or more photos."""
    probes: npt.NDArray[np.intp]
    """Every other face of those identities."""
    mates: npt.NDArray[np.intp]
    """For each probe, the position of its identity's enrolled face in ``enrolled``."""
    distractors: npt.NDArray[np.intp]
    """The faces of the one-photo identities."""


def split(faces: Faces) -> Split:
    """The first face of each multi-photo identity enrolled (faces are in name order), the rest probes."""
    enrolled: dict[str, int] = {}
    probes: list[int] = []
    for position, (label, multi) in enumerate(zip(faces.labels, faces.multi, strict=True)):
        if not multi:
            continue
        if label in enrolled:
            probes.append(position)
        else:
            enrolled[str(label)] = position
    order = {label: rank for rank, label in enumerate(enrolled)}
    return Split(
        enrolled=np.array(list(enrolled.values()), dtype=np.intp),
        probes=np.array(probes, dtype=np.intp),
        mates=np.array([order[str(faces.labels[p])] for p in probes], dtype=np.intp),
        distractors=np.flatnonzero(~faces.multi).astype(np.intp),
    )


def verification(faces: Faces, fmrs: Sequence[float] = FMRS) -> list[Verification]:
    """TAR at each FMR over every pair of faces of the multi-photo identities."""
    vectors = faces.vectors[faces.multi].astype(np.float64)
    labels = faces.labels[faces.multi]
    squared = (vectors**2).sum(axis=1)
    distances = np.sqrt(np.maximum(squared[:, None] + squared[None, :] - 2 * vectors @ vectors.T, 0.0))
    upper = np.triu_indices(len(vectors), k=1)
    pair_distances = distances[upper]
    same = labels[upper[0]] == labels[upper[1]]
    rows = []
    for fmr in fmrs:
        result = tar_at_far(pair_distances, same, fmr)
        rows.append(Verification(fmr, result.tar, result.threshold, int(same.sum()), int((~same).sum())))
    return rows


def closed_set(faces: Faces, parts: Split, ranks: Sequence[int] = RANKS) -> dict[int, float]:
    """Share of probes whose mate is among the ``rank`` nearest enrolled faces."""
    index = faiss.IndexFlatL2(faces.vectors.shape[1])
    index.add(faces.vectors[parts.enrolled])
    _, found = index.search(faces.vectors[parts.probes], max(ranks))
    hit_rank = np.where(found == parts.mates[:, None], np.arange(found.shape[1])[None, :], found.shape[1]).min(axis=1)
    return {rank: float(np.mean(hit_rank < rank)) for rank in ranks}


def nearest_non_mate(faces: Faces, parts: Split, synthetic: Floats) -> tuple[npt.NDArray[np.float64], int]:
    """For each probe, its distance to the nearest gallery face that is not its mate (other enrolled people, the
    one-photo identities, the synthetic faces), and the gallery's size."""
    dimension = faces.vectors.shape[1]
    real = faces.vectors[np.concatenate([parts.enrolled, parts.distractors])]
    probes = faces.vectors[parts.probes]
    index = faiss.IndexFlatL2(dimension)
    index.add(real)
    squared, found = index.search(probes, 2)  # the nearest may be the probe's own mate
    own = found[:, 0] == parts.mates
    nearest = np.where(own, squared[:, 1], squared[:, 0]).astype(np.float64)
    if len(synthetic):
        fake = faiss.IndexFlatL2(dimension)
        fake.add(synthetic)
        fake_squared, _ = fake.search(probes, 1)
        nearest = np.minimum(nearest, fake_squared[:, 0])
    return np.sqrt(np.maximum(nearest, 0.0)), len(real) + len(synthetic)


def open_set(faces: Faces, parts: Split, synthetic: Floats, fpirs: Sequence[float] = FPIRS) -> list[OpenSetRow]:
    """FNIR at each FPIR: a threshold that lets at most ``fpir`` of the non-mated searches return anyone, and
    the share of mated searches whose mate is not returned first within it."""
    mate = np.linalg.norm(faces.vectors[parts.probes] - faces.vectors[parts.enrolled[parts.mates]], axis=1)
    rival, gallery = nearest_non_mate(faces, parts, synthetic)
    return fnir_at_fpir(mate.astype(np.float64), rival, len(synthetic), gallery, fpirs)


def fnir_at_fpir(
    mate: npt.NDArray[np.float64],
    rival: npt.NDArray[np.float64],
    synthetic: int,
    gallery: int,
    fpirs: Sequence[float] = FPIRS,
) -> list[OpenSetRow]:
    """The open-set rows from each probe's distance to its mate and to the nearest gallery face that is not."""
    ordered = np.sort(rival)
    rows = []
    for fpir in fpirs:
        allowed = math.floor(fpir * len(ordered) + 1e-9)
        if allowed < 1:
            rows.append(OpenSetRow(synthetic, gallery, fpir, None, None, allowed))
            continue
        limit = float(ordered[allowed])  # accept strictly under the (allowed+1)-th smallest non-mated distance
        found = (mate < limit) & (mate < rival)
        rows.append(OpenSetRow(synthetic, gallery, fpir, float(1 - found.mean()), limit, allowed))
    return rows


def dev_faces(dev: Path, settings: Settings) -> tuple[Faces, int]:
    """Every dev LFW face with its identity (largest face of each photo), and how many photos had none."""
    with (dev / "identities.csv").open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["sources"] == LFW_SOURCE]
    multi = {row["identity"] for row in rows if int(row["n_images"]) >= 2}
    files = [
        f"{row['identity']}/{path.name}"
        for row in rows
        for path in sorted((dev / row["identity"]).iterdir())
        if path.is_file()
    ]
    load_models()
    cache = Path(CACHE.format(views=settings.template_views))
    known = load_cache(cache, settings)
    print(f"embedding {len([f for f in files if f not in known])} images ...", file=sys.stderr)
    images = embed_images(dev, files, settings=settings, known=known)
    save_cache(cache, settings, images)
    kept = [f for f in files if images[f].embedding is not None]
    labels = np.array([f.split("/")[0] for f in kept])
    vectors = np.vstack([images[f].embedding for f in kept]).astype(np.float32)  # type: ignore[misc]
    return Faces(vectors, labels, np.array([label in multi for label in labels])), len(files) - len(kept)


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def render(
    faces: Faces, missing: int, views: int, checks: list[Verification], ranks: dict[int, float], rows: list[OpenSetRow]
) -> str:
    parts = split(faces)
    lines = [
        f"Dev LFW faces: {len(faces.vectors)} ({len(parts.enrolled)} people with 2+ photos, "
        f"{len(parts.distractors)} one-photo people; {missing} photos without a face), {views}-view templates.",
        "",
        "| FMR | TAR | threshold | same pairs | different pairs |",
        "|---:|---:|---:|---:|---:|",
        *(
            f"| {c.fmr:g} | {_figure(c.tar)} | {_figure(c.threshold)} | {c.same_pairs:,} | {c.different_pairs:,} |"
            for c in checks
        ),
        "",
        f"Closed set ({len(parts.probes)} probes, {len(parts.enrolled)} enrolled): "
        + ", ".join(f"rank-{rank} {share:.3f}" for rank, share in ranks.items()),
        "",
        "| synthetic distractors | gallery | FPIR | FNIR (missed) | threshold | false positives allowed |",
        "|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {r.distractors:,} | {r.gallery:,} | {r.fpir:g} | {_figure(r.fnir)} | {_figure(r.threshold)} "
            f"| {r.false_positives_allowed} |"
            for r in rows
        ),
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=default_dev_dir())
    parser.add_argument("--template-views", type=int, default=DEFAULT_TEMPLATE_VIEWS, choices=TEMPLATE_VIEWS)
    parser.add_argument("--distractors", type=int, nargs="+", default=list(DISTRACTORS))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    settings = Settings(template_views=args.template_views)
    faces, missing = dev_faces(args.data, settings)
    parts = split(faces)
    checks = verification(faces)
    ranks = closed_set(faces, parts)
    model = FaceModel.load(MODELS[args.template_views])
    rows: list[OpenSetRow] = []
    for count in args.distractors:
        started = time.perf_counter()
        synthetic = model.faces(count, seed=count)[0] if count else np.zeros((0, faces.vectors.shape[1]), np.float32)
        rows += open_set(faces, parts, synthetic)
        print(f"{count:,} distractors: {time.perf_counter() - started:.1f} s", file=sys.stderr)
    print(render(faces, missing, args.template_views, checks, ranks, rows))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        report = {
            "verification": [asdict(c) for c in checks],
            "closed_set": ranks,
            "open_set": [asdict(r) for r in rows],
        }
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
