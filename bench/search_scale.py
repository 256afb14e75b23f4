"""Search at scale: facesearch's exact and IVF indexes against brute-force numpy (what face_recognition's
``compare_faces`` does), on synthetic faces that behave like real ones (bench/face_model.py).

    python -m bench.search_scale                                # 100k and 1M faces
    python -m bench.search_scale --sizes 100000 1000000 10000000 --nprobe 16 32 64

For each size it measures what a face search needs, side by side in one run:
- range recall: of the gallery faces within the match threshold (0.6) of a probe, found by exact search,
  the share the index returns (a person is owed all their photos, not the ten nearest);
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

from bench.face_model import FaceModel
from facesearch.index.flat import FlatIndex
from facesearch.index.ivf import IvfIndex

THRESHOLD = 0.6
K = 10
TRUTH_K = 100
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
    recall_at_10: float


def truth(vectors: Floats, probes: Floats) -> tuple[list[set[int]], npt.NDArray[np.int64]]:
    """Exact answers: ids within THRESHOLD of each probe, and the top-10 ids."""
    squared, ids = faiss.knn(probes, vectors, TRUTH_K)
    distances = np.sqrt(np.maximum(squared, 0))
    within = [set(row[d <= THRESHOLD].tolist()) for row, d in zip(ids, distances, strict=True)]
    if any(len(found) == TRUTH_K for found in within):
        print("warning: some probes have more than TRUTH_K faces within the threshold", file=sys.stderr)
    return within, ids[:, :K]


def latencies(search: Callable[[Floats], tuple[Floats, npt.NDArray[np.int64]]], probes: Floats) -> list[float]:
    times = []
    for probe in probes:
        started = time.perf_counter()
        search(probe[None, :])
        times.append((time.perf_counter() - started) * 1000)
    return times


def score(
    faces: int,
    method: str,
    build_s: float,
    size: int,
    search: Callable[[Floats], tuple[Floats, npt.NDArray[np.int64]]],
    probes: Floats,
    within: list[set[int]],
    top: npt.NDArray[np.int64],
    timed: int,
) -> Row:
    times = latencies(search, probes[:timed])
    distances, ids = search(probes)
    found = [set(row[d <= THRESHOLD].tolist()) for row, d in zip(ids, distances, strict=True)]
    wanted = sum(len(w) for w in within)
    hit = sum(len(w & f) for w, f in zip(within, found, strict=True))
    at_10 = float(np.mean([len(set(a) & set(b[:K])) / K for a, b in zip(top, ids, strict=True)]))
    return Row(
        faces=faces,
        method=method,
        build_s=round(build_s, 1),
        bytes_per_face=round(size / faces, 1),
        p50_ms=round(float(np.percentile(times, 50)), 3),
        p99_ms=round(float(np.percentile(times, 99)), 3),
        range_recall=round(hit / max(wanted, 1), 4),
        recall_at_10=round(at_10, 4),
    )


def brute_force(vectors: Floats) -> Callable[[Floats], tuple[Floats, npt.NDArray[np.int64]]]:
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


def run_size(faces: int, model: FaceModel, nprobes: Sequence[int], queries: int, timed: int) -> list[Row]:
    print(f"\n== {faces:,} faces: generating ...", flush=True)
    vectors, _ = model.faces(faces, seed=faces)
    probes = model.probes(vectors, queries)
    within, top = truth(vectors, probes)
    per_probe = np.mean([len(w) for w in within])
    print(f"   {per_probe:.1f} gallery faces within {THRESHOLD} per probe (exact)", flush=True)
    ids = np.arange(faces, dtype=np.int64)
    rows = []

    slow = brute_force(vectors)
    brute_timed = max(3, min(timed, 20_000_000 // faces))
    rows.append(
        score(faces, "numpy brute force", 0.0, vectors.nbytes, slow, probes[:brute_timed], within, top, brute_timed)
    )
    print(f"   {rows[-1]}", flush=True)

    started = time.perf_counter()
    exact = FlatIndex(128)
    exact.add(ids, vectors)
    built = time.perf_counter() - started
    rows.append(
        score(
            faces,
            "facesearch exact (faiss flat)",
            built,
            faces * 520,
            lambda q: exact.search(q, TRUTH_K),
            probes,
            within,
            top,
            timed,
        )
    )
    print(f"   {rows[-1]}", flush=True)
    del exact

    started = time.perf_counter()
    approximate = IvfIndex.trained(vectors, 128, nprobes[0])
    approximate.add(ids, vectors)
    built = time.perf_counter() - started
    size = len(approximate.serialize()) if faces <= 2_000_000 else faces * 520 + approximate.cells * 512
    for nprobe in nprobes:
        approximate.nprobe = nprobe
        method = f"facesearch IVF ({approximate.cells} cells, nprobe {nprobe})"
        rows.append(
            score(faces, method, built, size, lambda q: approximate.search(q, TRUTH_K), probes, within, top, timed)
        )
        print(f"   {rows[-1]}", flush=True)
    return rows


def markdown(rows: list[Row]) -> str:
    lines = [
        "| faces | method | build s | bytes/face | p50 ms | p99 ms | range recall | recall@10 |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.faces:,} | {r.method} | {r.build_s} | {r.bytes_per_face} | {r.p50_ms} | {r.p99_ms} | "
            f"{r.range_recall} | {r.recall_at_10} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--nprobe", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--queries", type=int, default=1000, help="probes for recall")
    parser.add_argument("--timed", type=int, default=300, help="probes timed one by one")
    args = parser.parse_args(argv)
    model = FaceModel.load()
    print(f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads")
    rows = [row for size in args.sizes for row in run_size(size, model, args.nprobe, args.queries, args.timed)]
    RESULTS.mkdir(parents=True, exist_ok=True)
    table = markdown(rows)
    (RESULTS / "search_scale.md").write_text(table + "\n")
    (RESULTS / "search_scale.json").write_text(json.dumps([asdict(r) for r in rows], indent=2))
    print("\n" + table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
