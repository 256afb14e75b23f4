"""Peer benchmark: facesearch's ingest against the ``face_recognition`` command-line tool, on the same dev images.

Two questions, answered side by side in one run:

1. **Throughput** on ``--images`` dev images (default 200, chosen as ``bench/ingest_throughput.py`` chooses
   them), both on 2 CPU cores, each of ``--repeats`` (default 2) in alternating order, the median reported:

   * **facesearch**: ``Engine.init`` on a fresh temporary data folder, one collection,
     ``engine.ingest(name, paths, actor, workers=2)``; once with the defaults (YuNet proposes faces, HOG
     decides on each proposal, dlib's ResNet run by ONNX Runtime) and once with ``detection_proposals=False``
     (HOG scans each whole photo, as face_recognition does), so the gain from the proposals shows; and once
     each with dlib's four-view and one-view templates alone (``dlib-4view-v1``, ``dlib-1view-v1``: dlib's template
     as published), so the cost of the default recipe's FaceNet part and of the four views shows.
     Only the ``ingest`` call is timed (hashing, catalog writes, encryption, index, and the start of the two
     spawned workers with their model loading included);
   * **face_recognition**: its real CLI as a user runs it, ``face_recognition --cpus 2 KNOWN_DIR UNKNOWN_DIR``
     in a subprocess, KNOWN_DIR holding one known face and UNKNOWN_DIR symlinks to the images. The whole
     command is timed, and separately its startup (the same command with an empty UNKNOWN_DIR: interpreter,
     imports, model loading in the main process and in the forkserver, the known face's encoding); throughput
     is reported with and without that startup. Its stdout goes to a pseudo-terminal, as in a shell, so that
     each worker writes whole lines. Faces are counted from its output: one ``file,name`` line per face
     (``name`` is the known person or ``unknown_person``), ``file,no_persons_found`` for an image without one.

2. **Accuracy** on ``--pairs`` (default 600) ``lfw_view1_devtrain`` pairs of ``pairs.csv``: a balanced
   sample (half same, half different, seed ``--sample-seed``) drawn with ``verify_accuracy.sample_pairs``,
   as the dev-set tests do (the file lists the 1,005 same pairs first, so its first 600 pairs would all be
   "same"). A pair is "same" at distance <= 0.6, the default of both (face_recognition's ``tolerance``,
   facesearch's match threshold); a pair with an image without a face is "different". facesearch: each image
   through ``facesearch.embed_faces`` (largest face). face_recognition: ``load_image_file`` and
   ``face_encodings`` with its defaults (HOG detector upsampled once, 5-point landmarks, ``num_jitters=1``)
   on the largest face; the detection is made with ``api._raw_face_locations`` and handed to
   ``face_encodings`` unchanged, which is exactly what ``face_encodings(image)`` does inside, so the largest
   face can be picked. Its float64 templates are stored as float32 (facesearch's type; about 1e-7 of
   distance).

Markdown goes to stdout and to ``bench/results/peer_ingest.md`` (``--out``), progress to stderr. It needs
``face_recognition`` 1.3.0 in the environment and installs nothing (exit code 2 with the pip command if
it is missing).

    python -m bench.peer_ingest                                   # 200 images, 2 repeats, 600 pairs
    python -m bench.peer_ingest --images 100 --repeats 3 --pairs 300
"""

from __future__ import annotations

import argparse
import csv
import importlib
import importlib.metadata
import os
import platform
import pty
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tty
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

import facesearch
from bench.ingest_throughput import LFW_SOURCE, default_dev_dir, read_into_cache, select_images, timed_ingest
from bench.verify_accuracy import (
    DEFAULT_PROTOCOL,
    ImageResult,
    Pair,
    ProtocolReport,
    embed_images,
    evaluate,
    load_models,
    read_pairs,
    sample_pairs,
)
from facesearch.core.settings import DEFAULT_MATCH_THRESHOLD, DEFAULT_TEMPLATE_RECIPE
from facesearch.safeguards.vault import generate_master_key
from facesearch.vision.models.registry import shared_models

CORES = 2
FR_VERSION = "1.3.0"
INSTALL_COMMAND = f"{Path(sys.executable).parent / 'pip'} install --no-deps face_recognition=={FR_VERSION}"
CLI_NAME_PATTERN = (".jpg", ".jpeg", ".png")
"""Extensions the CLI picks up in a folder (``image_files_in_folder``); other images are linked as ``.png``."""
NO_FACE = "no_persons_found"
UNKNOWN = "unknown_person"
FS_AUTO = "facesearch-auto"
FS_WHOLE = "facesearch-whole-photo-hog"
FS_ONE_VIEW = "facesearch-one-view"
FS_FOUR_VIEWS = "facesearch-four-views"
CLI = "face_recognition-cli"
CLI_STARTUP = "face_recognition-startup"
CONFIGS = (FS_AUTO, FS_FOUR_VIEWS, FS_ONE_VIEW, FS_WHOLE, CLI, CLI_STARTUP)
FS_CONFIGS = {
    FS_AUTO: (True, DEFAULT_TEMPLATE_RECIPE),
    FS_FOUR_VIEWS: (True, "dlib-4view-v1"),
    FS_ONE_VIEW: (True, "dlib-1view-v1"),
    FS_WHOLE: (False, DEFAULT_TEMPLATE_RECIPE),
}
"""facesearch's runs: (YuNet proposals, template recipe)."""
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "peer_ingest.md"


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def load_face_recognition() -> ModuleType | None:
    """``face_recognition`` (untyped, so imported by name), or None when it is not installed."""
    try:
        return importlib.import_module("face_recognition")
    except ImportError:
        return None


def _load() -> str:
    return " / ".join(f"{v:.2f}" for v in os.getloadavg())


# -- face_recognition's CLI ------------------------------------------------------------------------


@dataclass
class CliOutput:
    """What the CLI printed, parsed."""

    images: set[str] = field(default_factory=set)
    """Files it reported on (each image gets at least one line)."""
    faces: int = 0
    images_without_face: int = 0
    matches: int = 0
    """Faces it called the known person (with one known face, at most one line per face)."""
    other_lines: list[str] = field(default_factory=list)


def parse_cli_output(lines: Sequence[str], unknown_dir: Path) -> CliOutput:
    """Parse ``file,name`` lines (``print_result`` without ``--show-distance``); warnings and blank lines
    go to ``other_lines``."""
    prefix = str(unknown_dir) + os.sep
    parsed = CliOutput()
    for line in lines:
        if not line.startswith(prefix) or "," not in line:
            if line.strip():
                parsed.other_lines.append(line)
            continue
        path, name = line.rsplit(",", 1)
        parsed.images.add(path)
        if name == NO_FACE:
            parsed.images_without_face += 1
        else:
            parsed.faces += 1
            parsed.matches += name != UNKNOWN
    return parsed


def cli_command(known_dir: Path, unknown_dir: Path) -> list[str]:
    """The console script of the environment, or the module when the script is missing."""
    script = Path(sys.executable).parent / "face_recognition"
    module = [sys.executable, "-m", "face_recognition.face_recognition_cli"]
    head = [str(script)] if script.is_file() else module
    return [*head, "--cpus", str(CORES), str(known_dir), str(unknown_dir)]


def _drain(fd: int, chunks: list[bytes]) -> None:
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: every writer of the terminal has closed it
            return
        if not chunk:
            return
        chunks.append(chunk)


def _line_buffered_env() -> dict[str, str]:
    """This environment without PYTHONUNBUFFERED: unbuffered, ``print`` writes a line and its newline
    separately, so the two workers' lines could interleave; on a terminal each line is one write."""
    return {name: value for name, value in os.environ.items() if name != "PYTHONUNBUFFERED"}


def run_on_terminal(command: Sequence[str]) -> tuple[float, list[str], str]:
    """Run ``command`` with stdout on a pseudo-terminal (line-buffered, as in a shell); seconds from start
    to exit, its stdout lines, its stderr."""
    master, slave = pty.openpty()
    tty.setraw(slave)  # no "\r\n" translation
    chunks: list[bytes] = []
    reader = threading.Thread(target=_drain, args=(master, chunks), daemon=True)
    reader.start()
    try:
        started = time.perf_counter()
        with subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=slave, stderr=subprocess.PIPE, env=_line_buffered_env()
        ) as process:
            os.close(slave)
            slave = -1
            _, stderr = process.communicate()
            seconds = time.perf_counter() - started
        reader.join(timeout=30)
    finally:
        if slave >= 0:
            os.close(slave)
        os.close(master)
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited with {process.returncode}: {stderr.decode()[-2000:]}")
    return seconds, b"".join(chunks).decode(errors="replace").splitlines(), stderr.decode(errors="replace")


def link_images(paths: Sequence[Path], folder: Path) -> None:
    """Symlinks to ``paths`` in ``folder``, numbered so that names never clash, with an extension the CLI reads."""
    folder.mkdir(parents=True, exist_ok=True)
    for number, path in enumerate(paths):
        suffix = path.suffix if path.suffix.lower() in CLI_NAME_PATTERN else path.suffix + ".png"
        (folder / f"{number:04d}_{path.stem}{suffix}").symlink_to(path.resolve())


def choose_known_face(dev: Path, taken: Sequence[Path]) -> Path:
    """The first LFW image of ``files.csv`` that is not among the images ingested."""
    used = {path.resolve() for path in taken}
    with (dev / "files.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            candidate = dev / row["file"]
            if row["source"] == LFW_SOURCE and candidate.resolve() not in used:
                return candidate
    raise RuntimeError("no LFW image left for the known face")


@dataclass
class CliFolders:
    known: Path
    unknown: Path
    empty: Path


def prepare_cli_folders(root: Path, paths: Sequence[Path], known_face: Path) -> CliFolders:
    folders = CliFolders(root / "known", root / "unknown", root / "empty")
    link_images([known_face], folders.known)
    link_images(paths, folders.unknown)
    folders.empty.mkdir()
    return folders


# -- timed runs ------------------------------------------------------------------------------------


@dataclass
class Measure:
    config: str
    repeat: int
    seconds: float
    images: int
    faces: int
    images_without_face: int
    load_average: str
    notes: str = ""


def ingest_once(paths: Sequence[Path], config: str, key: str, repeat: int) -> Measure:
    """``Engine.ingest`` of ``paths`` with 2 workers into a fresh data folder; only the ingest call is timed."""
    load = _load()
    proposals, recipe = FS_CONFIGS[config]
    report, seconds = timed_ingest(paths, CORES, key, proposals=proposals, template_recipe=recipe)
    notes = []
    if report.failed:
        notes.append(f"{len(report.failed)} failed")
    if report.skipped_already_indexed:
        notes.append(f"{report.skipped_already_indexed} skipped as duplicates")
    return Measure(
        config,
        repeat,
        seconds,
        report.images_added,
        report.faces_added,
        report.images_without_faces,
        load,
        "; ".join(notes),
    )


def cli_once(folders: CliFolders, startup_only: bool, repeat: int) -> Measure:
    """The CLI on the image folder (or the empty one), timed from start to exit."""
    load = _load()
    unknown = folders.empty if startup_only else folders.unknown
    seconds, lines, _ = run_on_terminal(cli_command(folders.known, unknown))
    parsed = parse_cli_output(lines, unknown)
    expected = sum(1 for _ in unknown.iterdir())
    notes = [] if len(parsed.images) == expected else [f"reported on {len(parsed.images)} of {expected} images"]
    if parsed.other_lines:
        notes.append(f"{len(parsed.other_lines)} other lines, e.g. {parsed.other_lines[0][:80]!r}")
    if parsed.matches:
        notes.append(f"{parsed.matches} faces matched the known face")
    return Measure(
        CLI_STARTUP if startup_only else CLI,
        repeat,
        seconds,
        len(parsed.images),
        parsed.faces,
        parsed.images_without_face,
        load,
        "; ".join(notes),
    )


def run_config(config: str, paths: Sequence[Path], folders: CliFolders, key: str, repeat: int) -> Measure:
    if config in FS_CONFIGS:
        return ingest_once(paths, config, key, repeat)
    return cli_once(folders, config == CLI_STARTUP, repeat)


def warm_up(paths: Sequence[Path], folders: CliFolders, key: str) -> None:
    """Files into the page cache, the ONNX graph converted and cached, both programs run once, untimed."""
    read_into_cache(paths)
    for config in FS_CONFIGS:
        ingest_once(paths[:2], config, key, -1)
    cli_once(folders, True, -1)


def run_throughput(paths: Sequence[Path], folders: CliFolders, repeats: int) -> list[Measure]:
    key = generate_master_key()
    _log("warming up (page cache, ONNX graph, one small ingest each, one CLI start)...")
    warm_up(paths, folders, key)
    measures: list[Measure] = []
    for repeat in range(repeats):
        order = CONFIGS if repeat % 2 == 0 else tuple(reversed(CONFIGS))
        for config in order:
            _log(f"repeat {repeat + 1}/{repeats}: {config} (load average {_load()})...")
            measure = run_config(config, paths, folders, key, repeat)
            _log(f"  {measure.seconds:.1f} s, {measure.images} images, {measure.faces} faces")
            measures.append(measure)
    return measures


# -- accuracy --------------------------------------------------------------------------------------


def fr_embed_largest(fr: ModuleType, path: Path) -> ImageResult:
    """face_recognition's template of the largest face of ``path``, as ``face_encodings(image)`` computes it."""
    api: Any = fr.api
    started = time.perf_counter()
    try:
        image = fr.load_image_file(str(path))
        rects = api._raw_face_locations(image)  # face_encodings' own detection: HOG, upsampled once
        encodings = fr.face_encodings(image, [api._rect_to_css(rect) for rect in rects])
    except (OSError, ValueError) as problem:
        return ImageResult(None, 0, time.perf_counter() - started, str(problem))
    seconds = time.perf_counter() - started
    if not encodings:
        return ImageResult(None, 0, seconds)
    largest = max(range(len(rects)), key=lambda i: int(rects[i].width()) * int(rects[i].height()))
    return ImageResult(np.asarray(encodings[largest], dtype=np.float32), len(encodings), seconds)


def _progress(label: str) -> Callable[[int, int, float], None]:
    def report(done: int, total: int, elapsed: float) -> None:
        if done == total or done % 100 == 0:
            left = elapsed / done * (total - done)
            _log(f"  {label}: {done}/{total} images, {elapsed:.0f} s, ~{left:.0f} s left")

    return report


def fr_embed_images(fr: ModuleType, dev: Path, relative_paths: Sequence[str]) -> dict[str, ImageResult]:
    todo = list(dict.fromkeys(relative_paths))
    progress = _progress("face_recognition")
    results: dict[str, ImageResult] = {}
    started = time.perf_counter()
    for done, relative in enumerate(todo, start=1):
        results[relative] = fr_embed_largest(fr, dev / relative)
        progress(done, len(todo), time.perf_counter() - started)
    return results


@dataclass
class Accuracy:
    pairs: list[Pair]
    facesearch: ProtocolReport
    face_recognition: ProtocolReport
    embedder: str


def run_accuracy(fr: ModuleType, dev: Path, count: int, seed: int) -> Accuracy:
    pairs = sample_pairs([p for p in read_pairs(dev) if p.protocol == DEFAULT_PROTOCOL], count, seed)
    paths = [path for pair in pairs for path in (pair.a, pair.b)]
    _log(f"accuracy: {len(pairs)} pairs, {len(set(paths))} distinct images, facesearch first...")
    load_models()
    fs_images = embed_images(dev, paths, progress=_progress("facesearch"))
    fr_images = fr_embed_images(fr, dev, paths)
    return Accuracy(
        pairs,
        evaluate(DEFAULT_PROTOCOL, pairs, fs_images),
        evaluate(DEFAULT_PROTOCOL, pairs, fr_images),
        type(shared_models().embedder).__name__,
    )


# -- report ----------------------------------------------------------------------------------------


@dataclass
class Row:
    label: str
    seconds: float
    images: int
    faces: int
    images_without_face: int

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds

    @property
    def faces_per_second(self) -> float:
        return self.faces / self.seconds


def summarise(measures: Sequence[Measure]) -> dict[str, Row]:
    """One row per run, median seconds of its repeats; the CLI also without its startup."""

    def row(config: str, label: str, seconds: float | None = None) -> Row:
        mine = [m for m in measures if m.config == config]
        median = statistics.median(m.seconds for m in mine) if seconds is None else seconds
        return Row(label, median, mine[0].images, mine[0].faces, mine[0].images_without_face)

    rows = {
        FS_AUTO: row(FS_AUTO, f"facesearch `Engine.ingest`, defaults (YuNet proposals), workers={CORES}"),
        FS_FOUR_VIEWS: row(FS_FOUR_VIEWS, f"facesearch `Engine.ingest`, dlib's four views alone, workers={CORES}"),
        FS_ONE_VIEW: row(FS_ONE_VIEW, f"facesearch `Engine.ingest`, dlib's one view alone, workers={CORES}"),
        FS_WHOLE: row(FS_WHOLE, f"facesearch `Engine.ingest`, whole-photo HOG, workers={CORES}"),
        CLI: row(CLI, f"face_recognition CLI `--cpus {CORES}`, whole command"),
    }
    startup = statistics.median(m.seconds for m in measures if m.config == CLI_STARTUP)
    rows["cli-net"] = row(CLI, "face_recognition CLI, excluding its startup", rows[CLI].seconds - startup)
    return rows


def _ratio(row: Row, rows: dict[str, Row]) -> str:
    if row is rows[CLI] or row is rows["cli-net"]:
        return "1 (reference)"
    whole = row.images_per_second / rows[CLI].images_per_second
    net = row.images_per_second / rows["cli-net"].images_per_second
    return f"**{whole:.2f}x** / {net:.2f}x"


def render_throughput(rows: dict[str, Row], measures: Sequence[Measure], kinds: dict[str, int]) -> list[str]:
    images = rows[FS_AUTO].images
    startup = statistics.median(m.seconds for m in measures if m.config == CLI_STARTUP)
    repeats = max(m.repeat for m in measures) + 1
    lines = [
        f"## Ingest throughput: {images} dev images, {CORES} CPU cores each",
        "",
        ", ".join(f"{v} {k}" for k, v in kinds.items())
        + f". Median of {repeats} repeats, order alternating. face_recognition's startup (same command, empty "
        f"folder): median {startup:.1f} s. Ratio: facesearch images/s over the CLI's, whole command / excluding "
        "startup. facesearch's times include the start of its 2 spawned workers and their model loading.",
        "",
        "| run | images | faces found | images without a face | seconds | images/s | faces/s | facesearch / "
        "face_recognition |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows.values():
        lines.append(
            f"| {row.label} | {row.images} | {row.faces} | {row.images_without_face} | {row.seconds:.1f} | "
            f"{row.images_per_second:.2f} | {row.faces_per_second:.2f} | {_ratio(row, rows)} |"
        )
    gain = rows[FS_WHOLE].seconds / rows[FS_AUTO].seconds
    facenet = rows[FS_AUTO].seconds / rows[FS_FOUR_VIEWS].seconds
    views = rows[FS_FOUR_VIEWS].seconds / rows[FS_ONE_VIEW].seconds
    lines += [
        "",
        f"Gain of YuNet's proposals over whole-photo HOG inside facesearch: **{gain:.2f}x**. "
        f"Cost of the default recipe ({DEFAULT_TEMPLATE_RECIPE}) over dlib's four views alone: **{facenet:.2f}x** "
        f"the time; of dlib's four views over its one view: **{views:.2f}x**.",
    ]
    return lines


def render_accuracy(accuracy: Accuracy, seed: int) -> list[str]:
    same = sum(p.same for p in accuracy.pairs)
    lines = [
        f"## Verification accuracy: {len(accuracy.pairs)} `{DEFAULT_PROTOCOL}` pairs",
        "",
        f"Balanced sample ({same} same / {len(accuracy.pairs) - same} different, seed {seed}), "
        f"{accuracy.facesearch.images} distinct images, threshold {DEFAULT_MATCH_THRESHOLD:.2f} for both; a pair "
        'with an image without a face counts as "different". Time per image: one process, decode to template '
        f"(facesearch: {accuracy.embedder}, ONNX Runtime's default threads; face_recognition single-threaded).",
        "",
        "| engine | accuracy @ 0.60 | right | images without a face | pairs lost to them | best threshold (acc) "
        "| 10-fold CV accuracy | time per image (median) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, report in (
        ("facesearch `embed_faces`", accuracy.facesearch),
        (f"face_recognition {importlib.metadata.version('face_recognition')}", accuracy.face_recognition),
    ):
        cv = report.cross_validation
        cv_text = "n/a" if cv is None else f"{cv.accuracy_mean:.4f} +- {cv.accuracy_std:.4f}"
        median = report.seconds_per_image_median
        lines.append(
            f"| {name} | **{report.default_accuracy:.4f}** | {report.pairs - report.default_errors}/{report.pairs} "
            f"| {len(report.images_without_face)} | {report.pairs_without_face} | {report.best_threshold:.2f} "
            f"({report.best_accuracy:.4f}) | {cv_text} | {'n/a' if median is None else f'{median * 1000:.0f} ms'} |"
        )
    for name, report in (("facesearch", accuracy.facesearch), ("face_recognition", accuracy.face_recognition)):
        if report.images_without_face:
            shown = ", ".join(report.images_without_face[:8])
            more = f" and {len(report.images_without_face) - 8} more" if len(report.images_without_face) > 8 else ""
            lines += ["", f"Images without a face for {name}: {shown}{more}."]
    return lines


def render_repeats(measures: Sequence[Measure]) -> list[str]:
    lines = [
        "## Every run, in the order run",
        "",
        "| repeat | run | seconds | images | faces | without a face | load average before (1/5/15 min) | notes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m in measures:
        lines.append(
            f"| {m.repeat + 1} | {m.config} | {m.seconds:.1f} | {m.images} | {m.faces} | {m.images_without_face} | "
            f"{m.load_average} | {m.notes} |"
        )
    return lines


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine_line(load_start: str) -> str:
    def version(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "?"

    usable = len(os.sched_getaffinity(0))
    return (
        f"Machine: {platform.machine()}, {os.cpu_count()} cores ({usable} usable), {cpu_model()}; load average "
        f"at start {load_start}, at end {_load()}. Python {platform.python_version()}, facesearch "
        f"{facesearch.__version__}, face_recognition {version('face_recognition')}, dlib-bin {version('dlib-bin')}, "
        f"onnxruntime {version('onnxruntime')}, numpy {version('numpy')}, pillow {version('pillow')}. "
        f"{time.strftime('%Y-%m-%d %H:%M')}."
    )


def render(measures: Sequence[Measure], kinds: dict[str, int], accuracy: Accuracy, seed: int, load_start: str) -> str:
    rows = summarise(measures)
    lines = [
        "# facesearch against face_recognition (dev set)",
        "",
        machine_line(load_start),
        "",
        *render_throughput(rows, measures, kinds),
        "",
        *render_accuracy(accuracy, seed),
        "",
        *render_repeats(measures),
    ]
    return "\n".join(lines) + "\n"


# -- main ------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200, help="dev images to ingest (default 200)")
    parser.add_argument("--repeats", type=int, default=2, help="repeats, order alternating (default 2)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the image selection (default 0)")
    parser.add_argument("--pairs", type=int, default=600, help="pairs for the accuracy (default 600)")
    parser.add_argument("--sample-seed", type=int, default=0, help="seed of the pair sample (default 0)")
    parser.add_argument(
        "--data", type=Path, help="dev set folder (default: FACESEARCH_DEV_DATA or ../shared/faces/dev)"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"markdown report (default {DEFAULT_OUT})")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    fr = load_face_recognition()
    if fr is None:
        _log("face_recognition is not installed; it installs on top of dlib-bin only without its dependencies:")
        _log(INSTALL_COMMAND)
        return 2
    dev: Path = args.data or default_dev_dir()
    if not (dev / "files.csv").is_file() or not (dev / "pairs.csv").is_file():
        _log(f"dev set not found at {dev} (no files.csv or pairs.csv); pass --data or set FACESEARCH_DEV_DATA")
        return 2
    if args.images < 1 or args.repeats < 1 or args.pairs < 2:
        _log("--images and --repeats must be at least 1, --pairs at least 2")
        return 2
    load_start = _load()
    paths, kinds = select_images(dev, args.images, args.seed)
    _log(f"{len(paths)} images: {kinds}; load average {load_start}")
    with tempfile.TemporaryDirectory(prefix="facesearch-peer-cli-") as tmp:
        folders = prepare_cli_folders(Path(tmp), paths, choose_known_face(dev, paths))
        measures = run_throughput(paths, folders, args.repeats)
    accuracy = run_accuracy(fr, dev, args.pairs, args.sample_seed)
    report = render(measures, kinds, accuracy, args.sample_seed, load_start)
    sys.stdout.write(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    _log(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
