"""When an ingest's results arrive: the workers' start, the steady part and the end, on the dev images.

Ingests the images ``bench/ingest_throughput.py`` chooses (``--images``, default 200) into a fresh data folder
``--repeats`` times for each count of ``--workers`` (alternating the order from one repeat to the next), and
prints, from ``Progress.start``: the first and the tenth result, the last result, what follows it (the last
batch's write, the index file, the workers' exit), the whole ingest, and the steady pace: results per second
from the first result to the last. With 1 and 2 workers it also prints, per repeat, how much faster 2 workers
are, on the whole ingest and on the steady part. ``--threads-per-worker 1`` gives each worker one core (how the
workers' scaling is read); the default shares the cores out. The models are loaded once before any timing, so
a 1-worker ingest starts with them while 2 workers load their own (their start is in the first result).

    python -m bench.ingest_timeline --images 200 --repeats 3
    python -m bench.ingest_timeline --images 1000 --repeats 3 --workers 1 2 --threads-per-worker 1
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Sequence
from pathlib import Path

from bench.ingest_throughput import TimedProgress, default_dev_dir, select_images, timed_ingest, warm_up
from facesearch.safeguards.vault import generate_master_key


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[2], help="worker counts to run (default 2)")
    parser.add_argument("--threads-per-worker", type=int, default=0, help="0 (default) shares the cores out")
    parser.add_argument("--data", type=Path, default=None, help="the dev set (default: ../shared/faces/dev)")
    args = parser.parse_args(argv)
    paths, _ = select_images(args.data or default_dev_dir(), args.images)
    key = generate_master_key()
    warm_up(paths, key, args.threads_per_worker)
    print(
        "| repeat | workers | first result | 10th result | last result | after the last result | whole ingest "
        "| steady results/s |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    whole: dict[tuple[int, int], float] = {}
    steady: dict[tuple[int, int], float] = {}
    for repeat in range(1, args.repeats + 1):
        for workers in args.workers if repeat % 2 else list(reversed(args.workers)):
            progress = TimedProgress()
            _, total = timed_ingest(paths, workers, key, threads=args.threads_per_worker, progress=progress)
            times = progress.results
            whole[(repeat, workers)], steady[(repeat, workers)] = total, progress.steady_rate
            print(
                f"| {repeat} | {workers} | {times[0]:.2f} s | {times[min(9, len(times) - 1)]:.2f} s | "
                f"{times[-1]:.2f} s | {progress.finished - times[-1]:.2f} s | {total:.2f} s | "
                f"{progress.steady_rate:.1f} |",
                flush=True,
            )
    if {1, 2} <= set(args.workers):
        repeats = range(1, args.repeats + 1)
        whole_ratios = [whole[(r, 1)] / whole[(r, 2)] for r in repeats]
        steady_ratios = [steady[(r, 2)] / steady[(r, 1)] for r in repeats]
        print()
        print("| 2 workers against 1 | per repeat | median |")
        print("|---|---|---:|")
        for label, ratios in (("whole ingest", whole_ratios), ("steady part", steady_ratios)):
            print(f"| {label} | {', '.join(f'{x:.2f}x' for x in ratios)} | {statistics.median(ratios):.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
