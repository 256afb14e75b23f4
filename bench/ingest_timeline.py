"""When an ingest's results arrive: the workers' start, the steady part and the end, on the dev images.

Ingests the images ``bench/ingest_throughput.py`` chooses (``--images``, default 200) into a fresh data folder
``--repeats`` times with ``--workers`` workers, and prints, from ``Progress.start``: the first and the tenth
result, the last result, and what follows it (the last batch's write, the index file, the workers' exit).

    python -m bench.ingest_timeline --images 200 --repeats 3
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

from bench.ingest_throughput import default_dev_dir, select_images, timed_ingest
from facesearch.ingest import Progress
from facesearch.vault import generate_master_key


class TimedProgress(Progress):
    """Seconds since ``start`` of each result and of ``finish``."""

    def __init__(self) -> None:
        self.started = 0.0
        self.results: list[float] = []
        self.finished = 0.0

    def start(self, total: int) -> None:
        self.started = time.perf_counter()

    def advance(self, path: Path) -> None:
        self.results.append(time.perf_counter() - self.started)

    def finish(self) -> None:
        self.finished = time.perf_counter() - self.started


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--data", type=Path, default=None, help="the dev set (default: ../shared/faces/dev)")
    args = parser.parse_args(argv)
    paths, _ = select_images(args.data or default_dev_dir(), args.images)
    key = generate_master_key()
    print("| ingest | first result | 10th result | last result | after the last result | whole ingest |")
    print("|---:|---:|---:|---:|---:|---:|")
    for repeat in range(1, args.repeats + 1):
        progress = TimedProgress()
        _, total = timed_ingest(paths, args.workers, key, progress=progress)
        times = progress.results
        print(
            f"| {repeat} | {times[0]:.2f} s | {times[min(9, len(times) - 1)]:.2f} s | {times[-1]:.2f} s | "
            f"{progress.finished - times[-1]:.2f} s | {total:.2f} s |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
