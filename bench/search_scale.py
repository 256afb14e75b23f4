"""Search at scale: facesearch's exact and IVF indexes against brute-force numpy (what face_recognition's
``compare_faces`` does), on synthetic faces that behave like real ones (bench/face_model.py).

    python -m bench.search_scale                                # 100k and 1M faces
    python -m bench.search_scale --sizes 100000 1000000 10000000 --nprobe 16 64 256
    python -m bench.search_scale --sizes 1000000 --hnsw-ef 64 128 256   # also faiss HNSW, for comparison
    python -m bench.search_scale --template-views 1             # faces like one-view templates (figures before
                                                                # 2026-11-26's last bench/README section)

For each size it measures what a face search needs, side by side in one run:
- range recall: of the gallery faces within the match threshold (0.6) of a probe, found by exact search,
  the share the index returns (a person is owed all their photos, not the ten nearest);
- same-person recall: the same, counting only the probe's own person's faces (at millions of faces many
  other people also fall within 0.6 of a probe: dlib's threshold was set on pairs, not galleries);
- recall@10 against exact top-10;
- single-query latency p50/p99 (queries one at a time, as the service sends them);
- build time and bytes per face of the serialized index.
Probes are new photos of gallery people (fresh within-person noise), so each has real matches.
Results go to bench/results/search_scale.md (and .json).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import faiss
import numpy as np
import numpy.typing as npt

from bench.face_model import MODELS, FaceModel
from facesearch.core.settings import DEFAULT_TEMPLATE_VIEWS
from facesearch.store.index.flat import FlatIndex
from facesearch.store.index.ivf import IvfIndex

THRESHOLD = 0.6
K = 10
TRUTH_K = 1000
RESULTS = Path("bench/results")
Floats = npt.NDArray[np.float32]


@dataclass
class Row:
    faces: int
    method: str
    build_s: float
    bytes_per_face: float
    p50_ms: float
    p99_ms: float
    range_recall: float
    same_person_recall: float
    recall_at_10: float


@dataclass(frozen=True)
class Truth:
    within: list[set[int]]
    """Gallery ids within THRESHOLD of each probe (exact search)."""
    same_person: list[set[int]]
    """Of those, the ones of the probe's own person."""
    top: npt.NDArray[np.int64]
    """Exact top-10 ids."""

    def first(self, count: int) -> Truth:
        return Truth(self.within[:count], self.same_person[:count], self.top[:count])


Search = Callable[[Floats], tuple[Floats, npt.NDArray[np.int64]]]


def truth(vectors: Floats, labels: npt.NDArray[np.int64], probes: Floats, people: npt.NDArray[np.int64]) -> Truth:
    squared, ids = faiss.knn(probes, vectors, TRUTH_K)
    distances = np.sqrt(np.maximum(squared, 0))
    within = [set(row[d <= THRESHOLD].tolist()) for row, d in zip(ids, distances, strict=True)]
    if any(len(found) == TRUTH_K for found in within):
        print("warning: some probes have more than TRUTH_K faces within the threshold", file=sys.stderr)
    same = [{i for i in found if labels[i] == person} for found, person in zip(within, people, strict=True)]
    return Truth(within, same, ids[:, :K])


def latencies(search: Search, probes: Floats) -> list[float]:
    times = []
    for probe in probes:
        started = time.perf_counter()
        search(probe[None, :])
        times.append((time.perf_counter() - started) * 1000)
    return times


def recall(wanted: list[set[int]], found: list[set[int]]) -> float:
    hits = sum(len(w & f) for w, f in zip(wanted, found, strict=True))
    return round(hits / max(1, sum(len(w) for w in wanted)), 4)


def score(faces: int, method: str, build_s: float, size: int, search: Search, probes: Floats, exact: Truth) -> Row:
    """Recall over every probe given; latency over each of them searched alone."""
    times = latencies(search, probes)
    distances, ids = search(probes)
    found = [set(row[d <= THRESHOLD].tolist()) for row, d in zip(ids, distances, strict=True)]
    at_10 = float(np.mean([len(set(a) & set(b[:K])) / K for a, b in zip(exact.top, ids, strict=True)]))
    return Row(
        faces=faces,
        method=method,
        build_s=round(build_s, 1),
        bytes_per_face=round(size / faces, 1),
        p50_ms=round(float(np.percentile(times, 50)), 3),
        p99_ms=round(float(np.percentile(times, 99)), 3),
        range_recall=recall(exact.within, found),
        same_person_recall=recall(exact.same_person, found),
        recall_at_10=round(at_10, 4),
    )


def brute_force(vectors: Floats) -> Search:
    """face_recognition's way: the distance to every known face, in numpy, then the nearest."""

    def search(queries: Floats) -> tuple[Floats, npt.NDArray[np.int64]]:
        rows_d, rows_i = [], []
        for query in queries:
            distances = np.linalg.norm(vectors - query, axis=1)
            nearest = np.argpartition(distances, TRUTH_K)[:TRUTH_K]
            order = nearest[np.argsort(distances[nearest])]
            rows_d.append(distances[order])
            rows_i.append(order)
        return np.array(rows_d, dtype=np.float32), np.array(rows_i, dtype=np.int64)

    return search


def exact_row(faces: int, vectors: Floats, probes: Floats, exact: Truth) -> Row:
    started = time.perf_counter()
    index = FlatIndex(128)
    index.add(np.arange(faces, dtype=np.int64), vectors)
    built = time.perf_counter() - started

    def search(queries: Floats) -> tuple[Floats, npt.NDArray[np.int64]]:
        return index.search(queries, TRUTH_K)

    return score(faces, "facesearch exact (faiss flat)", built, faces * 520, search, probes, exact)


def ivf_rows(faces: int, vectors: Floats, probes: Floats, exact: Truth, nprobes: Sequence[int]) -> list[Row]:
    started = time.perf_counter()
    index = IvfIndex.trained(vectors, 128, nprobes[0])
    index.add(np.arange(faces, dtype=np.int64), vectors)
    built = time.perf_counter() - started
    size = faces * 520 + index.cells * 512  # vectors and ids, plus the centroids

    def search(queries: Floats) -> tuple[Floats, npt.NDArray[np.int64]]:
        return index.search(queries, TRUTH_K)

    rows = []
    for nprobe in nprobes:
        index.nprobe = nprobe
        method = f"facesearch IVF ({index.cells} cells, nprobe {nprobe})"
        rows.append(score(faces, method, built, size, search, probes, exact))
        print(f"   {rows[-1]}", flush=True)
    return rows


HNSW_LINKS = 32
HNSW_BUILD_EF = 40
HNSW_K = 100
"""Neighbours an HNSW search returns (its ef must be at least this): the range and same-person recalls are
bounded by it, as they are by TRUTH_K for the other methods."""


def hnsw_rows(faces: int, vectors: Floats, probes: Floats, exact: Truth, efs: Sequence[int]) -> list[Row]:
    """faiss's HNSW (not a facesearch backend: it cannot delete), to see whether a graph index would meet the
    10M target on face-like data."""
    started = time.perf_counter()
    index = faiss.IndexHNSWFlat(128, HNSW_LINKS)
    index.hnsw.efConstruction = HNSW_BUILD_EF
    index.add(vectors)
    built = time.perf_counter() - started
    size = faces * (512 + 2 * HNSW_LINKS * 4)  # vectors and the base layer's links

    def search(queries: Floats) -> tuple[Floats, npt.NDArray[np.int64]]:
        squared, ids = index.search(queries, HNSW_K)
        return np.sqrt(np.maximum(squared, 0)).astype(np.float32), ids.astype(np.int64)

    rows = []
    for ef in efs:
        index.hnsw.efSearch = max(ef, HNSW_K)
        method = f"faiss HNSW (M {HNSW_LINKS}, efConstruction {HNSW_BUILD_EF}, ef {ef}, k {HNSW_K})"
        rows.append(score(faces, method, built, size, search, probes, exact))
        print(f"   {rows[-1]}", flush=True)
    return rows


@dataclass(frozen=True)
class Workload:
    """A gallery of synthetic faces, probes of its people and the exact answers, shared by every method."""

    faces: int
    vectors: Floats
    probes: Floats
    exact: Truth


def workload(faces: int, model: FaceModel, queries: int) -> Workload:
    print(f"\n== {faces:,} faces: generating ...", flush=True)
    vectors, labels = model.faces(faces, seed=faces)
    probes, sources = model.probes(vectors, queries)
    exact = truth(vectors, labels, probes, labels[sources])
    print(
        f"   per probe, within {THRESHOLD}: {np.mean([len(w) for w in exact.within]):.1f} gallery faces, "
        f"{np.mean([len(w) for w in exact.same_person]):.1f} of them the probe's own person",
        flush=True,
    )
    return Workload(faces, vectors, probes, exact)


def baseline_rows(work: Workload, nprobes: Sequence[int]) -> list[Row]:
    """numpy brute force, facesearch's exact index and its IVF index at each ``nprobe``."""
    faces, vectors, probes, exact = work.faces, work.vectors, work.probes, work.exact
    brute_count = max(3, min(len(probes), 20_000_000 // faces))  # numpy takes ~1 s a query at 10M
    rows = [
        score(
            faces,
            "numpy brute force",
            0.0,
            vectors.nbytes,
            brute_force(vectors),
            probes[:brute_count],
            exact.first(brute_count),
        )
    ]
    print(f"   {rows[-1]}", flush=True)
    rows.append(exact_row(faces, vectors, probes, exact))
    print(f"   {rows[-1]}", flush=True)
    rows.extend(ivf_rows(faces, vectors, probes, exact, nprobes))
    return rows


def run_size(faces: int, model: FaceModel, nprobes: Sequence[int], queries: int, efs: Sequence[int]) -> list[Row]:
    work = workload(faces, model, queries)
    rows = baseline_rows(work, nprobes)
    if efs:
        rows += hnsw_rows(faces, work.vectors, work.probes, work.exact, efs)
    return rows


def markdown(rows: list[Row]) -> str:
    lines = [
        "| faces | method | build s | bytes/face | p50 ms | p99 ms | range recall | same-person recall | recall@10 |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.faces:,} | {r.method} | {r.build_s} | {r.bytes_per_face} | {r.p50_ms} | {r.p99_ms} | "
            f"{r.range_recall} | {r.same_person_recall} | {r.recall_at_10} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--nprobe", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--queries", type=int, default=300, help="probes, each timed alone and scored")
    parser.add_argument("--hnsw-ef", type=int, nargs="*", default=[], help="also faiss HNSW at these ef")
    parser.add_argument(
        "--template-views",
        type=int,
        choices=sorted(MODELS),
        default=DEFAULT_TEMPLATE_VIEWS,
        help=f"the templates the synthetic faces model (default {DEFAULT_TEMPLATE_VIEWS}, facesearch's default)",
    )
    args = parser.parse_args(argv)
    path = MODELS[args.template_views]
    model = FaceModel.load(path)
    print(f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads, faces modelled on {path.name}")
    rows = [row for size in args.sizes for row in run_size(size, model, args.nprobe, args.queries, args.hnsw_ef)]
    RESULTS.mkdir(parents=True, exist_ok=True)
    table = markdown(rows)
    (RESULTS / "search_scale.md").write_text(table + "\n")
    (RESULTS / "search_scale.json").write_text(json.dumps([asdict(r) for r in rows], indent=2))
    print("\n" + table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
