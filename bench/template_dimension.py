"""What a template's dimension costs an exact search: facesearch's flat index over 128-d templates (dlib's recipes)
against 256-d ones (the fused recipes, the default), side by side.

Unit vectors, seeded (an exact search's time does not depend on where the vectors lie), ``--faces`` per index; each
of ``--queries`` probes searched alone for its 10 nearest, as the service sends them, the two dimensions alternated
query by query; p50 and p99 in milliseconds, and the bytes per face of the serialized index.

    PYTHONPATH=src python -m bench.template_dimension [--faces 1000000] [--queries 200]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from facesearch.store.index.flat import FlatIndex

DIMENSIONS = (128, 256)


def unit_vectors(count: int, dimension: int, seed: int) -> npt.NDArray[np.float32]:
    vectors = np.random.default_rng(seed).normal(size=(count, dimension)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--faces", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args(argv)
    indexes, probes = {}, {}
    for dimension in DIMENSIONS:
        index = FlatIndex(dimension)
        for start in range(0, args.faces, 100_000):  # in slices: one copy of the vectors at a time
            count = min(100_000, args.faces - start)
            ids = np.arange(start, start + count, dtype=np.int64)
            index.add(ids, unit_vectors(count, dimension, seed=start))
        indexes[dimension], probes[dimension] = index, unit_vectors(args.queries, dimension, seed=-1 % 2**32)
    times: dict[int, list[float]] = {dimension: [] for dimension in DIMENSIONS}
    for number in range(args.queries):
        for dimension in DIMENSIONS if number % 2 == 0 else reversed(DIMENSIONS):
            started = time.perf_counter()
            indexes[dimension].search(probes[dimension][number : number + 1], 10)
            times[dimension].append((time.perf_counter() - started) * 1000)
    print(f"| dimension | faces | p50 ms | p99 ms | bytes per face | p50 vs {DIMENSIONS[0]}-d |")
    print("|---|---:|---:|---:|---:|---:|")
    base = statistics.median(times[DIMENSIONS[0]])
    for dimension in DIMENSIONS:
        ordered = sorted(times[dimension])
        p50, p99 = statistics.median(ordered), ordered[int(0.99 * (len(ordered) - 1))]
        size = len(indexes[dimension].serialize()) / args.faces
        print(f"| {dimension} | {args.faces:,} | {p50:.1f} | {p99:.1f} | {size:.0f} | {p50 / base:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
