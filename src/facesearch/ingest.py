"""Ingest: find files, skip content already held, analyse the rest in worker processes, write in batches.

Memory stays bounded whatever the folder's size: files are found lazily, at most a few tasks per
worker are in flight, and results are written every ``ingest_batch_size`` images. Every batch is
committed before the next is collected, so an interrupted ingest keeps what it wrote and a re-run
skips it (content ids are checked before any work is done).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt

from facesearch.distance import face_distance
from facesearch.errors import FacesearchError
from facesearch.imaging import decode_image, read_image_file
from facesearch.lean_spawn import LeanSpawnContext
from facesearch.models.registry import EmbedderChoice, configured_models
from facesearch.pipeline import AnalysisOptions, analyse_image
from facesearch.records import NewImage
from facesearch.settings import Settings
from facesearch.templates import template_recipe

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
        loaded = decode_image(data, name=str(task.path), max_pixels=task.max_pixels, max_side=task.max_side)
        models = configured_models(task.embedder)
        faces = analyse_image(loaded, models, task.analysis)
    except FacesearchError as problem:
        return FileOutcome(task.path, None, problem.message)
    except Exception as exc:  # one bad file must not stop the others; the reason is reported
        return FileOutcome(task.path, None, f"{task.path}: unexpected error while analysing ({exc!r})")
    image = NewImage(
        content_id=loaded.content_id,
        source_path=str(task.path.resolve()),
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


def without_objectors(
    batch: Sequence[NewImage], protected: npt.NDArray[np.float32], threshold: float
) -> tuple[list[NewImage], list[tuple[str, int]]]:
    """The batch without faces that match a protected template, and (source, faces skipped) per image."""
    if not len(protected):
        return list(batch), []
    kept: list[NewImage] = []
    skips: list[tuple[str, int]] = []
    for image in batch:
        faces = [face for face in image.faces if not (face_distance(protected, face.embedding) <= threshold).any()]
        if len(faces) < len(image.faces):
            skips.append((image.source_path, len(image.faces) - len(faces)))
        kept.append(replace(image, faces=faces) if len(faces) < len(image.faces) else image)
    return kept, skips
