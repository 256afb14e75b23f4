"""Ingest throughput: facesearch's Engine.ingest against a bare loop of the same dlib calls, on dev images.

Runs, side by side in one process and in alternating order for each repeat:

* **bare loop**: PIL decode, ``convert("RGB")``, ``np.asarray``; dlib's HOG detector on the whole photo with
  facesearch's upsample rule (what facesearch does with ``FACESEARCH_DETECTION_PROPOSALS=false``; by default it
  runs YuNet first and HOG only on the proposed regions); the 5-point shape predictor; ``dlib.get_face_chip``
  and ``compute_face_descriptor`` with the ``face_recognition_models`` weights. When no upright face is
  confident it also makes facesearch's fallback decisions (black border, then turned 90, 270, 180 degrees)
  and times that part separately, so that both "bare without fallback" and "bare with the same fallback
  work" are reported;
* **facesearch, workers=1** and **workers=2**: ``Engine.init`` on a fresh temporary data folder, one
  collection, ``engine.ingest(name, paths, actor, workers=N)`` (hashing, catalog writes, template
  encryption, vector index included; for 2 workers also the start of the spawned worker processes). By
  default one worker embeds on every core (ONNX Runtime's threads), so the same two runs are also made with
  ``threads_per_worker=1``: one core per worker, which is how the parallel scaling of the workers is read.

Markdown goes to stdout, progress to stderr.

    python bench/ingest_throughput.py                     # 300 images, 2 repeats
    python bench/ingest_throughput.py --images 100 --repeats 3 --json bench/results/ingest.json
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import dlib
import face_recognition_models
import numpy as np
import numpy.typing as npt
from PIL import Image

import facesearch
from facesearch.core.results import IngestReport
from facesearch.core.settings import DEFAULT_TEMPLATE_VIEWS, Settings
from facesearch.engine.engine import Engine
from facesearch.engine.ingest import Progress
from facesearch.safeguards.audit import Actor
from facesearch.safeguards.governance import CollectionSpec
from facesearch.safeguards.vault import generate_master_key
from facesearch.vision.models.registry import shared_models
from facesearch.vision.pipeline import (
    CONFIDENT_SCORE,
    ROTATED_MIN_FACE_SHARE,
    ROTATED_MIN_SCORE,
    TIGHT_CROP_MIN_SIZE,
    TIGHT_CROP_PADDING,
    TIGHT_CROP_THRESHOLD,
    upsample_times,
)

ACTOR = Actor("ingest-throughput-bench")
COLLECTION = "bench"
PURPOSE = "Ingest throughput benchmark on the dev set"
CHIP_SIZE = 150
CHIP_PADDING = 0.25
FALLBACK_ATTEMPTS = ((0, True), (1, False), (3, False), (2, False))
"""(counter-clockwise quarter turns, padded) tried in this order when no upright face is confident, as facesearch."""
LFW_SOURCE = "lfw_muxspace"
LFW_SIDE = 350
MULTI_SHARE = 0.1
LARGE_SHARE = 0.1
RGB = npt.NDArray[np.uint8]


def default_dev_dir() -> Path:
    """``FACESEARCH_DEV_DATA``, else ``shared/faces/dev`` beside the repository."""
    override = os.environ.get("FACESEARCH_DEV_DATA")
    return Path(override) if override else Path(__file__).resolve().parents[2] / "shared" / "faces" / "dev"


# -- image selection -------------------------------------------------------------------------------


def select_images(dev: Path, count: int, seed: int = 0) -> tuple[list[Path], dict[str, int]]:
    """A fixed, mixed list of ``count`` distinct images (by content) and how many of each kind.

    Up to 10 % group photos from ``_multi/``, up to 10 % non-LFW identity photos larger than the
    350x350 LFW crops (camera and web photos), LFW crops for the rest; each kind drawn with ``seed`` from
    its files in name order, then the whole list shuffled with ``seed`` so the kinds are spread over the run.
    """
    with (dev / "files.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    seen: set[str] = set()
    multi: list[str] = []
    large: list[str] = []
    lfw: list[str] = []
    for row in sorted(rows, key=lambda r: r["file"]):
        name, digest = row["file"], row["sha256"]
        if digest in seen:
            continue
        if name.startswith("_multi/"):
            multi.append(name)
        elif name.startswith("_"):
            continue
        elif row["source"] == LFW_SOURCE:
            lfw.append(name)
        else:
            with Image.open(dev / name) as image:
                if image.width * image.height > LFW_SIDE * LFW_SIDE:
                    large.append(name)
                else:
                    continue
        seen.add(digest)
    rng = random.Random(seed)
    take_multi = min(len(multi), round(count * MULTI_SHARE))
    take_large = min(len(large), round(count * LARGE_SHARE))
    take_lfw = min(len(lfw), count - take_multi - take_large)
    chosen = (
        sorted(rng.sample(multi, take_multi))
        + sorted(rng.sample(large, take_large))
        + sorted(rng.sample(lfw, take_lfw))
    )
    rng.shuffle(chosen)
    kinds = {"_multi group photos": take_multi, "larger non-LFW photos": take_large, "LFW crops": take_lfw}
    return [dev / name for name in chosen], kinds


# -- bare loop -------------------------------------------------------------------------------------


class BareDlib:
    """The same dlib calls facesearch makes, with nothing around them."""

    def __init__(self) -> None:
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(face_recognition_models.pose_predictor_five_point_model_location())
        self.encoder = dlib.face_recognition_model_v1(face_recognition_models.face_recognition_model_location())
        settings = Settings()
        self.upsample_max_pixels = settings.upsample_max_pixels
        self.upsample_target_side = settings.upsample_target_side
        self.threshold = settings.detection_threshold

    def upsample(self, pixels: RGB, face_share: float | None = None) -> int:
        """facesearch's number of doublings for ``pixels``; for a fallback looking only for faces of at least
        ``face_share`` of the shorter side, no more than such a face needs."""
        height, width = pixels.shape[:2]
        return upsample_times(height, width, self.upsample_max_pixels, self.upsample_target_side, face_share)

    def detect(self, pixels: RGB, upsample: int, threshold: float | None = None) -> list[tuple[Any, float]]:
        """Rectangles and scores of dlib's HOG detector run on the whole of ``pixels``."""
        rects, scores, _ = self.detector.run(pixels, upsample, self.threshold if threshold is None else threshold)
        return list(zip(rects, scores, strict=True))

    def embed(self, pixels: RGB, rects: Sequence[Any]) -> int:
        shapes = [self.predictor(pixels, rect) for rect in rects]
        chips = [dlib.get_face_chip(pixels, shape, size=CHIP_SIZE, padding=CHIP_PADDING) for shape in shapes]
        return len(self.encoder.compute_face_descriptor(chips))

    def process(self, path: Path) -> tuple[int, int, float]:
        """(faces found upright, faces found by the fallback, seconds spent in the fallback) for one image.

        The fallback makes the same decisions as facesearch's pipeline (its constants are imported): it runs
        when no upright face scores CONFIDENT_SCORE, tries a black border with a lower threshold and a size
        floor, then the three turns, each of which must score ROTATED_MIN_SCORE and beat the best so far."""
        with Image.open(path) as image:
            pixels: RGB = np.asarray(image.convert("RGB"))
        found = self.detect(pixels, self.upsample(pixels))
        if found and max(score for _, score in found) >= CONFIDENT_SCORE:
            return self.embed(pixels, [rect for rect, _ in found]), 0, 0.0
        started = time.perf_counter()
        best: tuple[RGB, list[tuple[Any, float]], bool] | None = (pixels, found, False) if found else None
        for quarters, padded in FALLBACK_ATTEMPTS:
            if padded and best is not None:
                continue
            work: RGB = np.ascontiguousarray(np.rot90(pixels, quarters))
            if padded:
                pad = round(TIGHT_CROP_PADDING * max(work.shape[:2]))
                work = np.pad(work, ((pad, pad), (pad, pad), (0, 0)), mode="constant")
                smallest = TIGHT_CROP_MIN_SIZE * min(pixels.shape[:2])
                upsample = self.upsample(pixels, TIGHT_CROP_MIN_SIZE)
                candidates = [
                    (r, s) for r, s in self.detect(work, upsample, TIGHT_CROP_THRESHOLD) if r.width() >= smallest
                ]
            else:
                upsample = self.upsample(pixels, ROTATED_MIN_FACE_SHARE)
                candidates = [(r, s) for r, s in self.detect(work, upsample) if s >= ROTATED_MIN_SCORE]
            if candidates and (best is None or max(s for _, s in candidates) > max(s for _, s in best[1])):
                best = (work, candidates, True)
        if best is None:
            return 0, 0, time.perf_counter() - started
        work, candidates, by_fallback = best
        faces = self.embed(work, [rect for rect, _ in candidates])
        seconds = time.perf_counter() - started
        return (0, faces, seconds) if by_fallback else (faces, 0, seconds)


@dataclass
class Run:
    config: str
    repeat: int
    seconds: float
    images: int
    faces: int
    fallback_images: int = 0
    fallback_seconds: float = 0.0
    fallback_faces: int = 0
    failed: int = 0
    skipped: int = 0
    first_result: float = 0.0
    """Seconds from the start of the ingest to its first result (for 2 workers: their start)."""
    steady_rate: float = 0.0
    """Results per second from the first result to the last: the ingest's pace once its workers run."""


def run_bare(bare: BareDlib, paths: Sequence[Path], repeat: int) -> Run:
    upright_faces = fallback_faces = fallback_images = 0
    fallback_seconds = 0.0
    started = time.perf_counter()
    for path in paths:
        upright, extra, extra_seconds = bare.process(path)
        upright_faces += upright
        if not upright:
            fallback_images += 1
            fallback_faces += extra
            fallback_seconds += extra_seconds
    seconds = time.perf_counter() - started
    return Run(
        "bare",
        repeat,
        seconds,
        len(paths),
        upright_faces + fallback_faces,
        fallback_images=fallback_images,
        fallback_seconds=fallback_seconds,
        fallback_faces=fallback_faces,
    )


# -- facesearch ------------------------------------------------------------------------------------


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

    @property
    def steady_rate(self) -> float:
        """Results per second between the first result and the last (0 with fewer than two)."""
        if len(self.results) < 2 or self.results[-1] <= self.results[0]:
            return 0.0
        return (len(self.results) - 1) / (self.results[-1] - self.results[0])


def timed_ingest(
    paths: Sequence[Path],
    workers: int,
    key: str,
    embedder: str = "auto",
    proposals: bool = True,
    threads: int = 0,
    progress: Progress | None = None,
    template_views: int = DEFAULT_TEMPLATE_VIEWS,
    template_recipe: str = "",
) -> tuple[IngestReport, float]:
    """``Engine.ingest`` of ``paths`` into a fresh data folder: its report and the seconds of the ingest call
    alone (not the folder's set-up); ``progress`` is told of each file as the CLI's bar is."""
    with tempfile.TemporaryDirectory(prefix="facesearch-bench-") as tmp:
        settings = Settings(
            data_dir=Path(tmp) / "data",
            master_key=key,
            workers=workers,
            embedder=embedder,
            detection_proposals=proposals,
            threads_per_worker=threads,
            template_views=template_views,
            template_recipe=template_recipe,
        )
        engine = Engine.init(settings)
        try:
            spec = CollectionSpec.parse(
                COLLECTION, PURPOSE, "legitimate-interests", "substantial-public-interest", "30d"
            )
            engine.create_collection(spec, ACTOR)
            started = time.perf_counter()
            report = engine.ingest(COLLECTION, list(paths), ACTOR, workers=workers, progress=progress)
            return report, time.perf_counter() - started
        finally:
            engine.close()


def read_into_cache(paths: Sequence[Path]) -> str:
    """Read every file once, so that no timed run waits on the disk; the sha256 of their bytes, in order."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def warm_up(paths: Sequence[Path], key: str, threads: int = 0) -> str:
    """Before any timing: the files read (their sha256 returned), this process's models loaded, and one small
    ingest with 1 worker (``threads`` as the timed runs use)."""
    images_sha256 = read_into_cache(paths)
    models = shared_models()
    _ = (models.detector, models.landmarks, models.proposer, models.embedder)
    timed_ingest(paths[:2], 1, key, threads=threads)
    return images_sha256


def run_facesearch(paths: Sequence[Path], workers: int, repeat: int, key: str, threads: int = 0) -> Run:
    progress = TimedProgress()
    report, seconds = timed_ingest(paths, workers, key, threads=threads, progress=progress)
    return Run(
        f"facesearch-w{workers}" + ("-1core" if threads == 1 else ""),
        repeat,
        seconds,
        report.images_added,
        report.faces_added,
        failed=len(report.failed),
        skipped=report.skipped_already_indexed,
        first_result=progress.results[0] if progress.results else 0.0,
        steady_rate=progress.steady_rate,
    )


@dataclass
class FallbackCount:
    """Where facesearch's own fallback (padding, rotations) ran: images without an upright face."""

    images: list[str] = field(default_factory=list)
    found_by_fallback: dict[str, int] = field(default_factory=dict)
    """Image -> rotation (degrees) of the face the fallback found (0 = found on the padded image)."""


def count_facesearch_fallback(paths: Sequence[Path], dev: Path) -> FallbackCount:
    """Untimed: ``detect_faces`` with rotations off says which images have no upright face (so facesearch
    ran its fallback on them); with the defaults, what the fallback then found."""
    upright_only = Settings(try_rotations=False)
    count = FallbackCount()
    for path in paths:
        if facesearch.detect_faces(path, upright_only):
            continue
        name = str(path.relative_to(dev))
        count.images.append(name)
        faces = facesearch.detect_faces(path)
        if faces:
            count.found_by_fallback[name] = faces[0].rotation
    return count


# -- report ----------------------------------------------------------------------------------------


@dataclass
class Row:
    label: str
    best_seconds: float
    median_seconds: float
    images: int
    faces: int

    @property
    def images_per_second(self) -> float:
        return self.images / self.best_seconds

    @property
    def faces_per_second(self) -> float:
        return self.faces / self.best_seconds


def summarise(runs: Sequence[Run]) -> dict[str, Row]:
    def row(label: str, seconds: list[float], images: int, faces: int) -> Row:
        return Row(label, min(seconds), statistics.median(seconds), images, faces)

    bare = [r for r in runs if r.config == "bare"]
    rows = {
        "bare": row(
            "bare dlib loop, no fallback",
            [r.seconds - r.fallback_seconds for r in bare],
            bare[0].images,
            bare[0].faces - bare[0].fallback_faces,
        ),
        "bare+fallback": row(
            "bare dlib loop + the same fallback work", [r.seconds for r in bare], bare[0].images, bare[0].faces
        ),
    }
    for workers in (1, 2):
        for suffix, threads in (("", "cores shared out (default)"), ("-1core", "one core each")):
            mine = [r for r in runs if r.config == f"facesearch-w{workers}{suffix}"]
            rows[f"w{workers}{suffix}"] = row(
                f"facesearch Engine.ingest, workers={workers}, {threads}",
                [r.seconds for r in mine],
                mine[0].images,
                mine[0].faces,
            )
    return rows


def steady_speedups(runs: Sequence[Run], suffix: str) -> list[float]:
    """Per repeat, 2 workers' steady pace over 1 worker's (``suffix``: "" or "-1core"): how the workers scale
    once started, without their start (0.6-0.9 s here, paid once per ingest) or the 1-worker run's models,
    which the warm-up has already loaded in this process."""
    pace: dict[tuple[int, int], float] = {}
    for run in runs:
        for workers in (1, 2):
            if run.config == f"facesearch-w{workers}{suffix}":
                pace[(run.repeat, workers)] = run.steady_rate
    repeats = sorted({repeat for repeat, _ in pace})
    return [pace[(r, 2)] / pace[(r, 1)] for r in repeats if pace.get((r, 1)) and (r, 2) in pace]


def _median_and_range(values: Sequence[float]) -> str:
    return f"{statistics.median(values):.2f}x ({min(values):.2f}-{max(values):.2f})" if values else "-"


def render(
    rows: dict[str, Row], runs: Sequence[Run], fallback: FallbackCount, kinds: dict[str, int], header: dict[str, Any]
) -> str:
    bare, bare_fb, w1, w2 = rows["bare"], rows["bare+fallback"], rows["w1"], rows["w2"]
    w1_core, w2_core = rows["w1-1core"], rows["w2-1core"]
    first_bare = next(r for r in runs if r.config == "bare")
    lines = [
        "# facesearch ingest throughput (dev set)",
        "",
        f"facesearch {header['facesearch']} - {header['images']} images ("
        + ", ".join(f"{v} {k}" for k, v in kinds.items())
        + f") - {header['repeats']} repeats, order alternating - python {header['python']} on "
        f"{header['machine']} ({header['cpus']} CPUs, load average at start {header['load_average']}) - "
        f"{header['date']}",
        "",
        "Times are the best of the repeats (median in brackets); images/s and faces/s use the best time.",
        "",
        "| run | images | faces | seconds | images/s | faces/s |",
        "|---|---|---|---|---|---|",
    ]
    for item in (bare, bare_fb, w1, w2, w1_core, w2_core):
        lines.append(
            f"| {item.label} | {item.images} | {item.faces} | {item.best_seconds:.1f} ({item.median_seconds:.1f}) | "
            f"{item.images_per_second:.2f} | {item.faces_per_second:.2f} |"
        )
    overhead_fair = w1.best_seconds / bare_fb.best_seconds - 1
    overhead_plain = w1.best_seconds / bare.best_seconds - 1
    lines += [
        "",
        "| figure | value |",
        "|---|---|",
        f"| **overhead**, facesearch 1 worker / bare loop with the same fallback - 1 (goal < 10 %) | "
        f"**{overhead_fair:+.1%}** |",
        f"| overhead against the bare loop without fallback | {overhead_plain:+.1%} |",
        f"| **speed-up**, 2 workers vs 1, one core each | **{w1_core.best_seconds / w2_core.best_seconds:.2f}x** |",
        f"| speed-up, 2 workers vs 1, cores shared out (1 worker embeds on every core) | "
        f"{w1.best_seconds / w2.best_seconds:.2f}x |",
        "| **steady speed-up**, 2 workers vs 1, one core each: results per second from the first result to "
        f"the last, median of the repeats (range) | **{_median_and_range(steady_speedups(runs, '-1core'))}** |",
        "| steady speed-up, cores shared out | " + _median_and_range(steady_speedups(runs, "")) + " |",
        "| first result, one core each: 1 worker / 2 workers (their start), median | "
        + " / ".join(
            f"{statistics.median(r.first_result for r in runs if r.config == config):.2f} s"
            for config in ("facesearch-w1-1core", "facesearch-w2-1core")
        )
        + " |",
        f"| images where facesearch's fallback ran (no upright face) | {len(fallback.images)} "
        f"(the fallback found a face in {len(fallback.found_by_fallback)}) |",
        f"| images without an upright face in the bare loop | {first_bare.fallback_images} "
        f"(fallback found {first_bare.fallback_faces} faces; "
        f"{statistics.median(r.fallback_seconds for r in runs if r.config == 'bare'):.1f} s of its time) |",
        "",
        "Per repeat (in the order run):",
        "",
        "| repeat | run | seconds | faces | first result | steady results/s | notes |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        notes = []
        if r.config == "bare":
            notes.append(f"fallback {r.fallback_seconds:.1f} s on {r.fallback_images} images")
        if r.failed:
            notes.append(f"{r.failed} failed")
        if r.skipped:
            notes.append(f"{r.skipped} skipped as already indexed")
        steady = f"{r.first_result:.2f} s | {r.steady_rate:.1f}" if r.config != "bare" else "- | -"
        lines.append(f"| {r.repeat + 1} | {r.config} | {r.seconds:.1f} | {r.faces} | {steady} | {'; '.join(notes)} |")
    if fallback.images:
        shown = ", ".join(f"{name} ({_found(fallback, name)})" for name in fallback.images[:12])
        more = f" and {len(fallback.images) - 12} more" if len(fallback.images) > 12 else ""
        lines += ["", f"Images where facesearch's fallback ran: {shown}{more}."]
    return "\n".join(lines) + "\n"


def _found(fallback: FallbackCount, name: str) -> str:
    if name not in fallback.found_by_fallback:
        return "no face found"
    rotation = fallback.found_by_fallback[name]
    return "found on the padded image" if rotation == 0 else f"found turned {rotation} deg"


# -- main ------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=300, help="number of dev images (default 300)")
    parser.add_argument(
        "--repeats", type=int, default=2, help="repeats of the five runs, order alternating (default 2)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the image selection (default 0)")
    parser.add_argument(
        "--data", type=Path, help="dev set folder (default: FACESEARCH_DEV_DATA or ../shared/faces/dev)"
    )
    parser.add_argument("--json", type=Path, help="also write every figure as JSON to this file")
    return parser.parse_args(argv)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    dev: Path = args.data or default_dev_dir()
    if not (dev / "files.csv").is_file():
        _log(f"dev set not found at {dev} (no files.csv); pass --data or set FACESEARCH_DEV_DATA")
        return 2
    if args.images < 1 or args.repeats < 1:
        _log("--images and --repeats must be at least 1")
        return 2
    paths, kinds = select_images(dev, args.images, args.seed)
    header = {
        "facesearch": facesearch.__version__,
        "images": len(paths),
        "repeats": args.repeats,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_average": " / ".join(f"{v:.2f}" for v in os.getloadavg()),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    _log(f"{len(paths)} images: {kinds}; warming up (file cache, models, one small ingest)...")
    bare = BareDlib()
    key = generate_master_key()
    images_sha256 = warm_up(paths, key)
    _log("counting the images where facesearch's fallback runs (untimed)...")
    fallback = count_facesearch_fallback(paths, dev)
    # (run, workers, threads per worker: 0 shares the cores out)
    configs = [("bare", 0, 0), ("facesearch-w1", 1, 0), ("facesearch-w2", 2, 0)]
    configs += [("facesearch-w1-1core", 1, 1), ("facesearch-w2-1core", 2, 1)]
    runs: list[Run] = []
    for repeat in range(args.repeats):
        for config, workers, threads in configs if repeat % 2 == 0 else list(reversed(configs)):
            _log(f"repeat {repeat + 1}/{args.repeats}: {config}...")
            if config == "bare":
                run = run_bare(bare, paths, repeat)
            else:
                run = run_facesearch(paths, workers, repeat, key, threads)
            _log(f"  {run.seconds:.1f} s, {run.faces} faces")
            runs.append(run)
    rows = summarise(runs)
    sys.stdout.write(render(rows, runs, fallback, kinds, header))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "header": header,
            "kinds": kinds,
            "images": [str(p.relative_to(dev)) for p in paths],
            "images_sha256": images_sha256,
            "runs": [asdict(r) for r in runs],
            "summary": {
                key_: {
                    **asdict(row),
                    "images_per_second": row.images_per_second,
                    "faces_per_second": row.faces_per_second,
                }
                for key_, row in rows.items()
            },
            "overhead_vs_bare_with_fallback": rows["w1"].best_seconds / rows["bare+fallback"].best_seconds - 1,
            "overhead_vs_bare_without_fallback": rows["w1"].best_seconds / rows["bare"].best_seconds - 1,
            "speedup_2_vs_1_workers": rows["w1"].best_seconds / rows["w2"].best_seconds,
            "speedup_2_vs_1_workers_one_core_each": rows["w1-1core"].best_seconds / rows["w2-1core"].best_seconds,
            "steady_speedups_2_vs_1_workers": steady_speedups(runs, ""),
            "steady_speedups_2_vs_1_workers_one_core_each": steady_speedups(runs, "-1core"),
            "fallback": asdict(fallback),
        }
        args.json.write_text(json.dumps(data, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
