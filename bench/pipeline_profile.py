"""Where an image's time goes: decode, face proposals, HOG, landmarks, embedding, with proposals on and off.

Analyses the images ``bench/ingest_throughput.py`` chooses (``--images``, default 200) in one process, once
with the defaults (YuNet proposes, HOG decides on each proposal) and once with whole-photo HOG, timing each
model call by wrapping it; "other" is alignment, fallback bookkeeping and Python around the calls.

    python -m bench.pipeline_profile --images 200
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.ingest_throughput import default_dev_dir, select_images
from facesearch.core.settings import Settings
from facesearch.vision.analysis import FaceAnalyser
from facesearch.vision.models.registry import ModelSet

STAGES = ("decode", "proposals", "HOG", "landmarks", "embedding", "other")


class StageClock:
    """Seconds and calls per stage, filled by wrapped methods."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    def wrap(self, owner: Any, method: str, stage: str) -> None:
        inner: Callable[..., Any] = getattr(owner, method)

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.seconds[stage] += time.perf_counter() - started
                self.calls[stage] += 1

        setattr(owner, method, timed)


def profile(paths: Sequence[Path], proposals: bool) -> tuple[StageClock, float, int]:
    analyser = FaceAnalyser(Settings(detection_proposals=proposals), ModelSet())
    analyser.analyse(paths[0])  # load the models outside the timing
    clock = StageClock()
    models = analyser.models
    clock.wrap(analyser, "load", "decode")
    clock.wrap(models.detector, "detect", "HOG")
    clock.wrap(models.landmarks, "landmarks", "landmarks")
    clock.wrap(models.embedder, "embed", "embedding")
    if proposals and models.proposer is not None:
        clock.wrap(models.proposer, "propose", "proposals")
    faces = 0
    started = time.perf_counter()
    for path in paths:
        faces += len(analyser.analyse(path)[1])
    total = time.perf_counter() - started
    clock.seconds["other"] = total - sum(clock.seconds.values())
    return clock, total, faces


def render(runs: dict[str, tuple[StageClock, float, int]], images: int) -> str:
    lines = [
        f"{images} images, one process, ms per image (share of the total; calls)",
        "",
        "| stage | " + " | ".join(runs) + " |",
        "|---|" + "---:|" * len(runs),
    ]
    for stage in STAGES:
        cells = []
        for clock, total, _ in runs.values():
            seconds = clock.seconds.get(stage, 0.0)
            calls = f"; {clock.calls[stage]}" if clock.calls.get(stage) else ""
            cells.append(f"{seconds / images * 1000:.1f} ({seconds / total:.0%}{calls})")
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    lines.append("| **total** | " + " | ".join(f"**{t / images * 1000:.1f}**" for _, t, _ in runs.values()) + " |")
    lines.append("| faces found | " + " | ".join(str(f) for _, _, f in runs.values()) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--data", type=Path, default=None, help="the dev set (default: ../shared/faces/dev)")
    args = parser.parse_args(argv)
    paths, _ = select_images(args.data or default_dev_dir(), args.images)
    runs = {}
    for label, proposals in (("YuNet proposals + HOG (default)", True), ("whole-photo HOG", False)):
        print(f"profiling: {label}...", file=sys.stderr)
        runs[label] = profile(paths, proposals)
    print(render(runs, len(paths)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
