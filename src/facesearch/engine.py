"""The one object the library, the CLI (and later the API and jobs) share: built from settings, it owns
the catalog, the vector indexes and the models."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from hashlib import sha256
from pathlib import Path
from types import TracebackType

import numpy as np

from facesearch.analysis import FaceAnalyser, ImageSource
from facesearch.catalog.store import Catalog, NewImage
from facesearch.consistency import CollectionIndexes
from facesearch.distance import is_match
from facesearch.errors import DataFolderError, ImageError, InvalidValueError
from facesearch.files import count_image_files, iter_image_files
from facesearch.governance import CollectionSpec
from facesearch.imaging import read_image_file
from facesearch.ingest import FileOutcome, FileTask, Progress, run_tasks, task_for
from facesearch.models.registry import ModelSet, shared_models
from facesearch.results import (
    CollectionInfo,
    CollectionStats,
    DetectionResult,
    FailedFile,
    IngestReport,
    Match,
    ProbeResult,
    SearchResult,
    Stats,
    Verification,
)
from facesearch.settings import Settings

EMBEDDING_DIMENSION = 128


class Engine:
    def __init__(self, settings: Settings, catalog: Catalog, models: ModelSet | None = None) -> None:
        self.settings = settings
        self.catalog = catalog
        self.models = models or shared_models()
        self.analyser = FaceAnalyser(settings, self.models)
        self.indexes = CollectionIndexes(catalog, settings.index_dir, EMBEDDING_DIMENSION)

    # -- lifecycle ---------------------------------------------------------------------------------

    @classmethod
    def init(cls, settings: Settings) -> Engine:
        """Create (or open) the data folder and its catalog."""
        try:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            settings.index_dir.mkdir(exist_ok=True)
        except OSError as exc:
            raise DataFolderError(
                f"cannot create data folder {settings.data_dir} ({exc.strerror}); choose another"
            ) from None
        return cls(settings, Catalog.create(settings.catalog_url))

    @classmethod
    def open(cls, settings: Settings) -> Engine:
        """Open an initialised data folder."""
        if (
            settings.catalog_url.startswith("sqlite:///")
            and not (settings.data_dir / "catalog.sqlite3").exists()
            and not settings.database_url
        ):
            raise DataFolderError(
                f"{settings.data_dir} is not a facesearch data folder; run 'facesearch init' "
                "or set FACESEARCH_DATA_DIR / --data-dir"
            )
        return cls(settings, Catalog.open(settings.catalog_url))

    def close(self) -> None:
        self.indexes.save()
        self.catalog.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    # -- collections -------------------------------------------------------------------------------

    def create_collection(self, spec: CollectionSpec) -> CollectionInfo:
        return self.catalog.create_collection(spec)

    def collections(self) -> list[CollectionInfo]:
        return self.catalog.collections()

    def collection(self, name: str) -> CollectionInfo:
        return self.catalog.collection_info(name)

    # -- ingest ------------------------------------------------------------------------------------

    def ingest(
        self, collection: str, paths: Sequence[Path], *, workers: int | None = None, progress: Progress | None = None
    ) -> IngestReport:
        """Index every image under ``paths`` into ``collection``; see ``facesearch.ingest``."""
        collection_id = self.catalog.collection_id(collection)
        self.indexes.index(collection_id)  # open (and reconcile) before the first write
        progress = progress or Progress()
        report = IngestReport(collection=collection)
        started = time.perf_counter()
        progress.start(count_image_files(paths))
        seen: set[str] = set()

        def tasks() -> Iterator[FileTask]:
            for path in iter_image_files(paths):
                report.files_seen += 1
                try:
                    content_id = sha256(read_image_file(path, self.settings.max_file_bytes)).hexdigest()
                except ImageError as problem:
                    report.failed.append(FailedFile(str(path), problem.message))
                    progress.advance(path)
                    continue
                if content_id in seen or self.catalog.has_content(collection_id, content_id):
                    report.skipped_already_indexed += 1
                    progress.advance(path)
                    continue
                seen.add(content_id)
                yield task_for(path, self.settings)

        batch: list[NewImage] = []
        try:
            for outcome in run_tasks(tasks(), workers or self.settings.worker_count):
                self._collect(outcome, batch, report)
                progress.advance(outcome.path)
                if len(batch) >= self.settings.ingest_batch_size:
                    self._write(collection_id, batch, report)
            self._write(collection_id, batch, report)
        finally:
            self.indexes.save()
            progress.finish()
            report.seconds = time.perf_counter() - started
        return report

    def _collect(self, outcome: FileOutcome, batch: list[NewImage], report: IngestReport) -> None:
        if outcome.image is None:
            report.failed.append(FailedFile(str(outcome.path), outcome.error or "unknown error"))
            return
        batch.append(outcome.image)

    def _write(self, collection_id: int, batch: list[NewImage], report: IngestReport) -> None:
        if not batch:
            return
        added = self.catalog.add_images(collection_id, batch, self.models.embedder.name)
        self.indexes.add(collection_id, added.ids, added.embeddings, added.generation)
        report.images_added += len(batch)
        report.faces_added += len(added.ids)
        report.images_without_faces += sum(1 for image in batch if not image.faces)
        batch.clear()

    def remove_images(self, collection: str, image_ids: Sequence[int]) -> int:
        """Delete images and their faces from the catalog, then their vectors; returns faces removed."""
        collection_id = self.catalog.collection_id(collection)
        removed, generation = self.catalog.remove_images(collection_id, image_ids)
        self.indexes.remove(collection_id, removed, generation)
        self.indexes.save()
        return len(removed)

    # -- single images (no data folder needed: see FaceAnalyser) ------------------------------------

    def detect(self, image: ImageSource, name: str | None = None) -> DetectionResult:
        return self.analyser.detect(image, name)

    def verify(self, a: ImageSource, b: ImageSource, *, threshold: float | None = None) -> Verification:
        return self.analyser.verify(a, b, threshold=threshold)

    # -- search ------------------------------------------------------------------------------------

    def search(
        self,
        probe: ImageSource,
        *,
        top_k: int | None = None,
        threshold: float | None = None,
        face: int | None = None,
        collections: Sequence[str] | None = None,
    ) -> SearchResult:
        """Gallery faces within ``threshold`` of each face in ``probe`` (or only face number ``face``)."""
        top_k = self.settings.search_top_k if top_k is None else top_k
        if top_k <= 0:
            raise InvalidValueError(f"top-k must be a positive number, got {top_k}")
        threshold = self.analyser.threshold(threshold)
        faces = self.analyser.faces_or_fail(probe)
        if face is not None and not 0 <= face < len(faces):
            raise InvalidValueError(f"face {face} does not exist: the probe has {len(faces)} faces, numbered from 0")
        chosen = [face] if face is not None else list(range(len(faces)))
        names = self.catalog.collection_names()
        wanted = [self.catalog.collection_id(name) for name in collections] if collections else sorted(names)
        queries = np.vstack([faces[i].embedding for i in chosen])
        per_face: list[list[tuple[float, int]]] = [[] for _ in chosen]
        for collection_id in wanted:
            distances, ids = self.indexes.index(collection_id).search(queries, top_k)
            for row, hits in enumerate(per_face):
                hits.extend(
                    (float(d), int(i))
                    for d, i in zip(distances[row], ids[row], strict=True)
                    if i >= 0 and is_match(float(d), threshold)
                )
        best = [sorted(hits)[:top_k] for hits in per_face]
        details = self.catalog.face_details(i for hits in best for _, i in hits)
        results = []
        for position, hits in zip(chosen, best, strict=True):
            matches = [
                Match(
                    probe_face=position,
                    distance=round(distance, 4),
                    face_id=face_id,
                    collection=details[face_id].collection,
                    image_path=details[face_id].image_path,
                    content_id=details[face_id].content_id,
                    box=details[face_id].box,
                    ingested_at=details[face_id].ingested_at,
                )
                for distance, face_id in hits
                if face_id in details
            ]
            results.append(ProbeResult(position, faces[position].detection.box, matches))
        return SearchResult(
            probe=str(probe) if isinstance(probe, Path) else "uploaded image",
            threshold=threshold,
            top_k=top_k,
            faces_in_probe=len(faces),
            results=results,
        )

    # -- overview ----------------------------------------------------------------------------------

    def stats(self) -> Stats:
        names = self.catalog.collection_names()
        infos = {info.name: info for info in self.catalog.collections()}
        per_collection = [
            CollectionStats(
                name=name,
                images=infos[name].image_count,
                faces=infos[name].face_count,
                indexed_vectors=len(self.indexes.index(collection_id)),
            )
            for collection_id, name in sorted(names.items(), key=lambda item: item[1])
        ]
        images, faces = self.catalog.counts()
        data_bytes = sum(p.stat().st_size for p in self.settings.data_dir.rglob("*") if p.is_file())
        return Stats(
            data_dir=str(self.settings.data_dir),
            catalog_url=_redact(self.settings.catalog_url),
            collections=per_collection,
            images=images,
            faces=faces,
            data_bytes=data_bytes,
        )


def _redact(url: str) -> str:
    """A database URL without its password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        credentials, host = rest.rsplit("@", 1)
        user = credentials.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url
