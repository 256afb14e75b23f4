"""Ingest's worker side: each file is read, checked, decoded and analysed in a worker process, with at most a
few tasks per worker in flight, so memory stays bounded whatever the folder's size (``engine/folders.py`` feeds
the tasks and writes the results). Workers import this module and nothing above it."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from facesearch.core.errors import FacesearchError, UnsupportedFormatError
from facesearch.core.paths import path_text
from facesearch.core.records import NewImage
from facesearch.core.settings import EmbedderChoice, Settings
from facesearch.engine.lean_spawn import LeanSpawnContext
from facesearch.vision.imaging import decode_image, read_image_file
from facesearch.vision.models.registry import configured_models
from facesearch.vision.pipeline import AnalysisOptions, analyse_image
from facesearch.vision.templates import template_recipe

IN_FLIGHT_PER_WORKER = 4


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


def analyse_file(task: FileTask) -> FileOutcome:
    """Decode, detect, embed one file; never raises for a bad file (the reason is in ``error``)."""
    try:
        data = read_image_file(task.path, task.max_bytes)
        # decode_image hashes the bytes again, though the main process hashed the file to skip known content:
        # the file may have changed since, and the stored content id must be that of the bytes analysed
        # (sha256 costs about 0.65 ms per MB here).
        loaded = decode_image(data, name=path_text(task.path), max_pixels=task.max_pixels, max_side=task.max_side)
        models = configured_models(task.embedder)
        faces = analyse_image(loaded, models, task.analysis)
        source_path = path_text(task.path.resolve())  # valid UTF-8 whatever the name (core/paths.py)
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
        embedder=template_recipe(models.embedder.name, task.analysis.template_views),
    )
    return FileOutcome(task.path, image, None)


def run_tasks(tasks: Iterable[FileTask], workers: int) -> Iterator[FileOutcome]:
    """Outcomes of ``tasks`` (in completion order), in this process or in ``workers`` processes."""
    if workers <= 1:
        yield from map(analyse_file, tasks)
        return
    # spawn, not fork: forking a process that holds faiss/OpenMP threads can deadlock the child; and a lean
    # spawn, whose workers do not re-import the parent's main module (lean_spawn.py).
    with ProcessPoolExecutor(max_workers=workers, mp_context=LeanSpawnContext()) as pool:
        pending: set[Future[FileOutcome]] = set()
        try:
            for task in tasks:
                if len(pending) >= workers * IN_FLIGHT_PER_WORKER:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    yield from (future.result() for future in done)
                pending.add(pool.submit(analyse_file, task))
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                yield from (future.result() for future in done)
        finally:
            for future in pending:
                future.cancel()


class Progress:
    """What ingest reports while it runs; the CLI draws a bar from it. The default reports nothing."""

    def start(self, total: int) -> None:
        """Called once with the number of files found."""

    def advance(self, path: Path) -> None:
        """Called once per file, whatever happened to it."""

    def finish(self) -> None:
        """Called once at the end, also after an error."""
