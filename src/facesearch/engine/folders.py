"""Ingest from folders: files are found lazily, content already held is skipped after one hash, worker
processes analyse the rest (``engine/ingest.py``), or a Ray cluster's nodes (``engine/ray_cluster.py``), and results
are written here every ``ingest_batch_size`` images. An interrupted ingest keeps what it committed; running it
again continues where it stopped."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from itertools import islice
from pathlib import Path

from facesearch.core.errors import ImageError
from facesearch.core.paths import path_text
from facesearch.core.records import NewImage
from facesearch.core.results import FailedFile, IngestReport, UnsupportedFile
from facesearch.core.settings import Settings
from facesearch.engine.batches import BatchWriter
from facesearch.engine.files import FoundFile, count_found_files, find_files
from facesearch.engine.ingest import FileTask, Progress, run_tasks, task_for
from facesearch.engine.ray_cluster import run_on_ray
from facesearch.store.catalog.store import Catalog
from facesearch.vision.imaging import content_id_of, read_image_file, unsupported_advice
from facesearch.vision.recipes import prepare_model_files

CONTENT_CHECK_CHUNK = 32
"""Files hashed before their content ids are looked up in the catalog together (one query, not one a file)."""


def ingest_folders(
    settings: Settings,
    catalog: Catalog,
    writer: BatchWriter,
    report: IngestReport,
    paths: Sequence[Path],
    workers: int,
    progress: Progress,
) -> IngestReport:
    """Index every image under ``paths`` through ``writer``, counting into ``report``."""
    started = time.perf_counter()
    progress.start(count_found_files(paths))
    seen: set[str] = set()

    def hashed(chunk: list[FoundFile]) -> list[tuple[Path, str]]:
        found = []
        for entry in chunk:
            report.files_seen += 1
            path = entry.path
            try:
                if entry.unsupported:
                    advice = unsupported_advice(entry.unsupported)
                    report.unsupported.append(UnsupportedFile(path_text(path), entry.unsupported, advice))
                elif entry.problem:
                    report.failed.append(FailedFile(path_text(path), entry.problem))
                else:
                    found.append((path, content_id_of(read_image_file(path, settings.max_file_bytes))))
                    continue
            except ImageError as problem:
                report.failed.append(FailedFile(path_text(path), problem.message))
            progress.advance(path)
        return found

    def tasks() -> Iterator[FileTask]:
        files = find_files(paths)
        while chunk := list(islice(files, CONTENT_CHECK_CHUNK)):
            contents = hashed(chunk)
            held = catalog.held_contents(writer.collection_id, [content_id for _, content_id in contents])
            for path, content_id in contents:
                if content_id in seen or content_id in held:
                    report.skipped_already_indexed += 1
                    progress.advance(path)
                    continue
                seen.add(content_id)
                yield task_for(path, settings, workers)

    batch: list[NewImage] = []
    if workers > 1 and not settings.ray_address:
        prepare_model_files(settings.recipe, settings.embedder_choice())
    outcomes = (
        run_on_ray(tasks(), settings.ray_address, settings.threads_per_worker or 1)
        if settings.ray_address
        else run_tasks(tasks(), workers)
    )
    try:
        for outcome in outcomes:
            if outcome.unsupported:
                advice = unsupported_advice(outcome.unsupported)
                report.unsupported.append(UnsupportedFile(path_text(outcome.path), outcome.unsupported, advice))
            elif outcome.image is None:
                report.failed.append(FailedFile(path_text(outcome.path), outcome.error or "unknown error"))
            else:
                batch.append(outcome.image)
            progress.advance(outcome.path)
            if len(batch) >= settings.ingest_batch_size:
                writer.write(batch)
        writer.write(batch)
    finally:
        outcomes.close()  # on an error, the workers end and the signal handlers return now, not when collected
        progress.finish()
        report.seconds = time.perf_counter() - started
    return report
