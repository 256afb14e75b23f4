"""Ingest's worker side: each file is read, checked, decoded and analysed in a worker process, with at most a
few tasks per worker in flight, so memory stays bounded whatever the folder's size (``engine/folders.py`` feeds
the tasks and writes the results). Workers import this module and nothing above it."""

from __future__ import annotations

import os
from collections.abc import Generator, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from facesearch.core.errors import FacesearchError, UnsupportedFormatError
from facesearch.core.paths import path_text
from facesearch.core.records import NewImage
from facesearch.core.settings import EmbedderChoice, Settings
from facesearch.engine.lean_spawn import LeanSpawnContext
from facesearch.engine.worker_lifetime import StopRequest, die_with_parent, stop_signals
from facesearch.vision.imaging import decode_image, read_image_file
from facesearch.vision.models.registry import configured_models
from facesearch.vision.pipeline import AnalysisOptions, analyse_image

IN_FLIGHT_PER_WORKER = 4
STOP_CHECK_SECONDS = 0.5
"""How long the ingest waits on its workers before it looks again for a stop signal."""


@dataclass(frozen=True)
class FileTask:
    path: Path
    max_bytes: int
    max_pixels: int
    max_side: int
    analysis: AnalysisOptions
    embedder: EmbedderChoice


@dataclass(frozen=True)
class FileOutcome:
    path: Path
    image: NewImage | None
    error: str | None
    unsupported: str | None = None
    """The format's name when the file's content is an image format facesearch does not read (skipped)."""


def task_for(path: Path, settings: Settings, workers: int = 1) -> FileTask:
    """The work for one file; each worker embeds with ``threads_per_worker`` threads, else its share of the
    cores."""
    threads = settings.threads_per_worker or (None if workers <= 1 else max(1, (os.cpu_count() or 1) // workers))
    return FileTask(
        path=path,
        max_bytes=settings.max_file_bytes,
        max_pixels=settings.max_image_pixels,
        max_side=settings.detect_max_side,
        analysis=AnalysisOptions.from_settings(settings),
        embedder=settings.embedder_choice(threads),
    )


def analyse_file(task: FileTask, data: bytes | None = None, source_path: str | None = None) -> FileOutcome:
    """Decode, detect, embed one file; never raises for a bad file (the reason is in ``error``). ``data`` and
    ``source_path`` are the file's bytes and resolved path when the caller read it (a Ray node need not see the
    file: ``engine/ray_cluster.py``); else they are read and resolved here."""
    try:
        if data is None:
            data = read_image_file(task.path, task.max_bytes)
        # decode_image hashes the bytes again, though the main process hashed the file to skip known content:
        # the file may have changed since, and the stored content id must be that of the bytes analysed
        # (sha256 costs about 0.65 ms per MB here).
        loaded = decode_image(data, name=path_text(task.path), max_pixels=task.max_pixels, max_side=task.max_side)
        models = configured_models(task.embedder)
        faces = analyse_image(loaded, models, task.analysis)
        source_path = source_path or path_text(task.path.resolve())  # valid UTF-8 whatever the name (core/paths.py)
    except UnsupportedFormatError as problem:
        return FileOutcome(task.path, None, problem.message, problem.image_format)
    except FacesearchError as problem:
        return FileOutcome(task.path, None, problem.message)
    except Exception as exc:  # one bad file must not stop the others; the reason is reported
        return FileOutcome(task.path, None, f"{path_text(task.path)}: unexpected error while analysing ({exc!r})")
    image = NewImage(
        content_id=loaded.content_id,
        source_path=source_path,
        width=loaded.width,
        height=loaded.height,
        format=loaded.format,
        byte_size=loaded.byte_size,
        faces=faces,
        embedder=task.analysis.recipe,
    )
    return FileOutcome(task.path, image, None)


def run_tasks(tasks: Iterable[FileTask], workers: int) -> Generator[FileOutcome, None, None]:
    """Outcomes of ``tasks`` (in completion order), in this process or in ``workers`` processes. A SIGTERM or
    SIGINT stops it between files with ``StoppedError`` (``worker_lifetime.py``); the caller closes it when it
    stops early, so that the workers end and the signal handlers return at once."""
    with stop_signals() as stop:
        if workers <= 1:
            for task in tasks:
                stop.check()
                yield analyse_file(task)
            return
        yield from _run_in_pool(tasks, workers, stop)


def _run_in_pool(tasks: Iterable[FileTask], workers: int, stop: StopRequest) -> Iterator[FileOutcome]:
    # spawn, not fork: forking a process that holds faiss/OpenMP threads can deadlock the child; and a lean
    # spawn, whose workers do not re-import the parent's main module (lean_spawn.py). Each worker dies with
    # this process, however it ends (worker_lifetime.py).
    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=LeanSpawnContext(),
        initializer=die_with_parent,
        initargs=(os.getpid(),),
    )
    pending: set[Future[FileOutcome]] = set()
    finished = False

    def completed() -> Iterator[FileOutcome]:
        nonlocal pending
        done, pending = wait(pending, timeout=STOP_CHECK_SECONDS, return_when=FIRST_COMPLETED)
        stop.check()
        return (future.result() for future in done)

    try:
        for task in tasks:
            while len(pending) >= workers * IN_FLIGHT_PER_WORKER:
                yield from completed()
            stop.check()
            pending.add(pool.submit(analyse_file, task))
        while pending:
            yield from completed()
        finished = True
    finally:
        if not finished:  # stopped, failed or abandoned: do not wait for the files the workers are analysing
            for future in pending:
                future.cancel()
            _terminate_workers(pool)
        pool.shutdown(wait=True, cancel_futures=True)


def _terminate_workers(pool: ProcessPoolExecutor) -> None:
    # ProcessPoolExecutor.terminate_workers() arrives in Python 3.14; until then its process table.
    for process in list((pool._processes or {}).values()):
        process.terminate()


class Progress:
    """What ingest reports while it runs; the CLI draws a bar from it. The default reports nothing."""

    def start(self, total: int) -> None:
        """Called once with the number of files found."""

    def advance(self, path: Path) -> None:
        """Called once per file, whatever happened to it."""

    def finish(self) -> None:
        """Called once at the end, also after an error."""
