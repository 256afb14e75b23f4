"""The one object the library, the CLI (and later the API and jobs) share: built from settings, it owns
the catalog, the keys, the vector indexes and the models, and records every action in the audit log."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from types import TracebackType

import numpy as np
import numpy.typing as npt

from facesearch.analysis import FaceAnalyser, ImageSource
from facesearch.audit import (
    RETENTION_ACTOR,
    Actor,
    ConfigurationEvent,
    ErasureEvent,
    Event,
    IngestEvent,
    ObjectionSkipEvent,
    PurgeEvent,
    SearchEvent,
    VerifyEvent,
)
from facesearch.catalog.store import Catalog, peek_sqlite_meta
from facesearch.consistency import CollectionIndexes
from facesearch.distance import is_match
from facesearch.errors import (
    ConflictError,
    DataFolderError,
    FacesearchError,
    ImageError,
    InvalidValueError,
    RefusedError,
    TooLargeError,
)
from facesearch.files import count_image_files, iter_image_files
from facesearch.governance import CollectionSpec
from facesearch.imaging import content_id_of, read_image_file
from facesearch.index.policy import IndexPolicy
from facesearch.ingest import FileOutcome, FileTask, Progress, run_tasks, task_for, without_objectors
from facesearch.models.registry import configured_models
from facesearch.records import AnalysedFace, NewImage
from facesearch.results import (
    CollectionInfo,
    CollectionStats,
    DetectionResult,
    FailedFile,
    IngestReport,
    Match,
    ProbeResult,
    PurgeReport,
    SearchResult,
    Stats,
    UploadedImage,
    UploadReport,
    Verification,
)
from facesearch.settings import Settings
from facesearch.templates import template_recipe
from facesearch.uploads import UploadStore, is_upload, upload_source
from facesearch.vault import CollectionCipher, MasterKey

EMBEDDING_DIMENSION = 128
KEY_CHECK = "master_key_check"
OBJECTIONS_KEY = "objections_key"
TEMPLATE_VIEWS_KEY = "template_views"
"""The views each template of this data folder averages (``templates.py``), fixed when the folder is made."""
OBJECTIONS_COLLECTION_ID = 0
MIN_PURPOSE_LENGTH = 3
CONTENT_CHECK_CHUNK = 32
"""Files hashed before their content ids are looked up in the catalog together (one query, not one a file)."""
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def require_purpose(purpose: str, what: str) -> str:
    stated = purpose.strip()
    if len(stated) < MIN_PURPOSE_LENGTH:
        raise RefusedError(
            f"a {what} needs a stated purpose or case reference (--purpose, or FACESEARCH_PURPOSE); "
            "it is written to the audit log"
        )
    return stated


class Engine:
    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        master_key: MasterKey,
        *,
        clock: Clock = utc_now,
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self.master_key = master_key
        self.clock = clock
        self.models = configured_models(settings.embedder_choice())  # ingest workers load their own
        self.analyser = FaceAnalyser(settings, self.models)
        self.indexes = CollectionIndexes(
            catalog, settings.index_dir, EMBEDDING_DIMENSION, self.cipher, IndexPolicy.from_settings(settings)
        )
        self._ciphers: dict[int, CollectionCipher] = {}
        self.uploads = UploadStore(settings.data_dir / "uploads")

    # -- lifecycle ---------------------------------------------------------------------------------

    @classmethod
    def init(cls, settings: Settings, *, clock: Clock = utc_now) -> Engine:
        """Create (or open) the data folder and its catalog, bound to the configured master key."""
        master_key = MasterKey.load(settings.master_key, settings.master_key_file, settings.data_dir)
        _check_key_before_opening(settings, master_key)
        try:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            settings.index_dir.mkdir(exist_ok=True)
        except OSError as exc:
            raise DataFolderError(
                f"cannot create data folder {settings.data_dir} ({exc.strerror}); choose another"
            ) from None
        catalog = Catalog.create(settings.catalog_url)
        check = catalog.meta(KEY_CHECK)
        if check is None:
            catalog.set_meta(KEY_CHECK, check := master_key.key_check().hex())
            catalog.set_meta(TEMPLATE_VIEWS_KEY, str(settings.template_views))
        master_key.verify(bytes.fromhex(check))
        return cls._ready(settings, catalog, master_key, clock)

    @classmethod
    def open(cls, settings: Settings, *, clock: Clock = utc_now) -> Engine:
        """Open an initialised data folder; fails, changing nothing, without the right master key."""
        if not settings.database_url and not (settings.data_dir / "catalog.sqlite3").exists():
            raise DataFolderError(
                f"{settings.data_dir} is not a facesearch data folder; run 'facesearch init' "
                "or set FACESEARCH_DATA_DIR / --data-dir"
            )
        master_key = MasterKey.load(settings.master_key, settings.master_key_file, settings.data_dir)
        _check_key_before_opening(settings, master_key)
        catalog = Catalog.open(settings.catalog_url)
        check = catalog.meta(KEY_CHECK)
        if check is None:
            catalog.close()
            raise DataFolderError(f"{settings.data_dir} has no master key check; it was not made by 'facesearch init'")
        master_key.verify(bytes.fromhex(check))
        return cls._ready(settings, catalog, master_key, clock)

    @classmethod
    def _ready(cls, settings: Settings, catalog: Catalog, master_key: MasterKey, clock: Clock) -> Engine:
        settings = settings.replace(template_views=_recorded_views(catalog, settings))
        engine = cls(settings, catalog, master_key, clock=clock)
        engine.purge(RETENTION_ACTOR, automatic=True)  # retention is enforced whenever the data is opened
        engine.sweep_uploads()
        return engine

    def close(self) -> None:
        self.indexes.save()
        self.catalog.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def cipher(self, collection_id: int) -> CollectionCipher:
        """The collection's cipher (its key unwrapped by the master key on first use)."""
        if collection_id not in self._ciphers:
            if collection_id == OBJECTIONS_COLLECTION_ID:
                wrapped_hex = self.catalog.meta(OBJECTIONS_KEY)
                if wrapped_hex is None:
                    wrapped_hex = self.master_key.new_collection_key("__objections__").hex()
                    self.catalog.set_meta(OBJECTIONS_KEY, wrapped_hex)
                name, wrapped = "__objections__", bytes.fromhex(wrapped_hex)
            else:
                name, wrapped = self.catalog.collection_key(collection_id)
            self._ciphers[collection_id] = self.master_key.collection_cipher(collection_id, name, wrapped)
        return self._ciphers[collection_id]

    # -- collections -------------------------------------------------------------------------------

    def create_collection(self, spec: CollectionSpec, actor: Actor) -> CollectionInfo:
        fields = {key: str(value) for key, value in asdict(spec).items()}
        event = ConfigurationEvent(actor=actor, collection=spec.name, change="collection-created", fields=fields)
        return self.catalog.create_collection(spec, self.master_key.new_collection_key(spec.name), event)

    def delete_collection(self, name: str, actor: Actor, reason: str) -> None:
        """Delete a collection and destroy its key: whatever was encrypted under it is unreadable."""
        event = ConfigurationEvent(actor=actor, purpose=reason, collection=name, change="collection-deleted")
        collection_id = self.catalog.delete_collection(name, event)
        self._ciphers.pop(collection_id, None)
        self.indexes.drop(collection_id)
        self.catalog.shred_deleted_bytes()
        self.sweep_uploads()

    def set_people_allowed(self, name: str, allowed: bool, actor: Actor, reason: str) -> CollectionInfo:
        """Record whether the collection's purpose allows grouping faces into people. Withdrawing it
        deletes the people (and names) made under it."""
        stated = require_purpose(reason, "change of a collection's purpose")
        change = "people-grouping-allowed" if allowed else "people-grouping-withdrawn"
        event = ConfigurationEvent(actor=actor, purpose=stated, collection=name, change=change)
        self.catalog.set_people_allowed(name, allowed, event)
        return self.collection(name)

    def collections(self) -> list[CollectionInfo]:
        return self.catalog.collections()

    def collection(self, name: str) -> CollectionInfo:
        return self.catalog.collection_info(name)

    # -- ingest ------------------------------------------------------------------------------------

    def ingest(
        self,
        collection: str,
        paths: Sequence[Path],
        actor: Actor,
        *,
        workers: int | None = None,
        progress: Progress | None = None,
    ) -> IngestReport:
        """Index every image under ``paths`` into ``collection``; see ``facesearch.ingest``."""
        collection_id = self.catalog.collection_id(collection)
        self.indexes.index(collection_id)  # open (and reconcile) before the first write
        protected = self._protected_templates()
        progress = progress or Progress()
        report = IngestReport(collection=collection)
        started = time.perf_counter()
        progress.start(count_image_files(paths))
        seen: set[str] = set()
        worker_count = workers or self.settings.worker_count

        def hashed(chunk: list[Path]) -> list[tuple[Path, str]]:
            found = []
            for path in chunk:
                report.files_seen += 1
                try:
                    found.append((path, content_id_of(read_image_file(path, self.settings.max_file_bytes))))
                except ImageError as problem:
                    report.failed.append(FailedFile(str(path), problem.message))
                    progress.advance(path)
            return found

        def tasks() -> Iterator[FileTask]:
            files = iter_image_files(paths)
            while chunk := list(islice(files, CONTENT_CHECK_CHUNK)):
                contents = hashed(chunk)
                held = self.catalog.held_contents(collection_id, [content_id for _, content_id in contents])
                for path, content_id in contents:
                    if content_id in seen or content_id in held:
                        report.skipped_already_indexed += 1
                        progress.advance(path)
                        continue
                    seen.add(content_id)
                    yield task_for(path, self.settings, worker_count)

        batch: list[NewImage] = []
        audited_failures = 0
        try:
            for outcome in run_tasks(tasks(), worker_count):
                self._collect(outcome, batch, report)
                progress.advance(outcome.path)
                if len(batch) >= self.settings.ingest_batch_size:
                    self._write(collection_id, collection, batch, protected, report, actor, audited_failures)
                    audited_failures = len(report.failed)
            self._write(collection_id, collection, batch, protected, report, actor, audited_failures)
        finally:
            self.indexes.save()
            progress.finish()
            report.seconds = time.perf_counter() - started
        return report

    def ingest_uploads(
        self,
        collection: str,
        uploads: Sequence[tuple[str, bytes]],
        actor: Actor,
        *,
        subject_id: int | None = None,
        strict: bool = False,
    ) -> UploadReport:
        """Index uploaded images (name as sent, bytes) into ``collection``, keeping an encrypted copy of each
        so that matches can be shown. With ``subject_id`` each upload is an enrolment example: it must show a
        face, and only its largest face is kept and linked to the subject. ``strict`` raises the first bad
        upload's error instead of listing it as failed."""
        collection_id = self.catalog.collection_id(collection)
        self.indexes.index(collection_id)
        report = IngestReport(collection=collection, files_seen=len(uploads))
        started = time.perf_counter()
        batch: list[NewImage] = []
        names: dict[str, str] = {}
        # Content is checked before analysis, for every upload in one query: a photo already held costs a
        # hash, not a detection and an embedding.
        content_ids = [content_id_of(data) for _, data in uploads]
        held = self.catalog.held_contents(collection_id, content_ids)
        for (name, data), content_id in zip(uploads, content_ids, strict=True):
            if content_id in names or content_id in held:
                if strict:
                    raise ConflictError(f"{name} is already held in {collection}; send a different photo")
                report.skipped_already_indexed += 1
                names.setdefault(content_id, name)
                continue
            try:
                image = self._analyse_upload(name, data, subject_id)
            except FacesearchError as problem:
                if strict:
                    raise
                report.failed.append(FailedFile(name, problem.message))
                continue
            self.uploads.put(self.cipher(collection_id), image.content_id, data)
            batch.append(image)
            names[image.content_id] = name
        self._write(collection_id, collection, batch, self._protected_templates(), report, actor, 0)
        self.indexes.save()
        report.seconds = time.perf_counter() - started
        images = [
            UploadedImage(name, self.catalog.image_id_of(collection_id, content_id), content_id)
            for content_id, name in names.items()
        ]
        return UploadReport(report, images)

    def _analyse_upload(self, name: str, data: bytes, subject_id: int | None) -> NewImage:
        if len(data) > self.settings.max_file_bytes:
            raise TooLargeError(
                f"{name}: {len(data):,} bytes is over the {self.settings.max_file_bytes:,}-byte limit; "
                "send a smaller image (FACESEARCH_MAX_FILE_BYTES sets the limit)"
            )
        if subject_id is None:
            loaded, faces = self.analyser.analyse(data, name)
        else:
            loaded, faces = self.analyser.analyse_or_fail(data, name)
            faces = [max(faces, key=lambda f: f.detection.box.area)]
        return NewImage(
            content_id=loaded.content_id,
            source_path=upload_source(name),
            width=loaded.width,
            height=loaded.height,
            format=loaded.format,
            byte_size=loaded.byte_size,
            faces=faces,
            embedder=template_recipe(self.models.embedder.name, self.settings.template_views),
            subject_id=subject_id,
        )

    def image_bytes(self, image_id: int) -> bytes:
        """The bytes of a held image: the encrypted upload, or the file it was ingested from."""
        collection_id, source, content_id = self.catalog.image_source(image_id)
        if is_upload(source):
            return self.uploads.get(self.cipher(collection_id), content_id)
        try:
            return read_image_file(Path(source), self.settings.max_file_bytes)
        except ImageError:
            raise ImageError(f"image {image_id} was indexed from {source}, which can no longer be read there") from None

    def sweep_uploads(self) -> int:
        """Delete stored uploads whose image is no longer held (after any removal, and on open)."""
        if not self.uploads.root.exists():  # nothing was ever uploaded: skip the catalog query on every open
            return 0
        return self.uploads.sweep(self.catalog.uploaded_content_ids())

    def _collect(self, outcome: FileOutcome, batch: list[NewImage], report: IngestReport) -> None:
        if outcome.image is None:
            report.failed.append(FailedFile(str(outcome.path), outcome.error or "unknown error"))
        else:
            batch.append(outcome.image)

    def _write(
        self,
        collection_id: int,
        collection: str,
        batch: list[NewImage],
        protected: npt.NDArray[np.float32],
        report: IngestReport,
        actor: Actor,
        audited_failures: int,
    ) -> None:
        """Write a batch with its audit entries: failures since ``audited_failures`` are recorded with it."""
        failed = len(report.failed) - audited_failures
        if not batch and not failed:
            return
        kept, skips = without_objectors(batch, protected, self.settings.match_threshold)
        events: list[Event] = [
            ObjectionSkipEvent(actor=actor, collection=collection, source_path=path, faces_skipped=count)
            for path, count in skips
        ]
        faces = sum(len(image.faces) for image in kept)
        events.append(
            IngestEvent(
                actor=actor,
                collection=collection,
                files_seen=len(kept) + failed,
                images_added=len(kept),
                faces_added=faces,
                failed=failed,
            )
        )
        seal = self.cipher(collection_id).seal_template
        added = self.catalog.add_images(collection_id, kept, seal, events)
        self.indexes.add(collection_id, added.ids, added.embeddings, added.generation)
        report.images_added += len(kept)
        report.faces_added += len(added.ids)
        report.images_without_faces += sum(1 for image in kept if not image.faces)
        report.faces_skipped_by_objection += sum(count for _, count in skips)
        batch.clear()

    def _protected_templates(self) -> npt.NDArray[np.float32]:
        sealed = self.catalog.protected_templates()
        if not sealed:
            return np.zeros((0, EMBEDDING_DIMENSION), dtype=np.float32)
        cipher = self.cipher(OBJECTIONS_COLLECTION_ID)
        return np.vstack([cipher.open_template(blob) for blob in sealed])

    def remove_images(self, collection: str, image_ids: Sequence[int], actor: Actor, reason: str) -> int:
        """Delete images and their faces from the catalog, then their vectors; returns faces removed."""
        collection_id = self.catalog.collection_id(collection)
        removal = self.catalog.remove_images(
            collection_id,
            image_ids,
            lambda faces, images: ErasureEvent(
                actor=actor, purpose=reason, collection=collection, faces_removed=faces, images_removed=images
            ),
        )
        self.indexes.remove(collection_id, removal.face_ids, removal.generation)
        self.indexes.save()
        self.catalog.shred_deleted_bytes()
        self.sweep_uploads()
        return len(removal.face_ids)

    # -- retention ---------------------------------------------------------------------------------

    def purge(self, actor: Actor, *, automatic: bool = False) -> PurgeReport:
        """Remove every image and face held past its collection's retention period, and record it."""
        now = self.clock()
        report = PurgeReport(at=now)
        for collection_id, name in sorted(self.catalog.collection_names().items()):
            expired, cutoff = self.catalog.expired_image_ids(collection_id, now)
            if not expired:
                continue
            self.indexes.index(collection_id)
            removal = self.catalog.remove_images(collection_id, expired, _purge_event(actor, name, cutoff, automatic))
            self.indexes.remove(collection_id, removal.face_ids, removal.generation)
            report.by_collection[name] = (removal.images_removed, len(removal.face_ids))
        if report.by_collection:
            self.indexes.save()
            self.catalog.shred_deleted_bytes()
            self.sweep_uploads()
        return report

    # -- single images -----------------------------------------------------------------------------

    def detect(self, image: ImageSource, name: str | None = None) -> DetectionResult:
        return self.analyser.detect(image, name)

    def verify(
        self, a: ImageSource, b: ImageSource, actor: Actor, *, purpose: str = "", threshold: float | None = None
    ) -> Verification:
        result = self.analyser.verify(a, b, threshold=threshold)
        self.catalog.audit.record(
            VerifyEvent(
                actor=actor,
                purpose=purpose,
                a_sha256=result.a_sha256,
                b_sha256=result.b_sha256,
                distance=result.distance,
                match=result.match,
            )
        )
        return result

    # -- search ------------------------------------------------------------------------------------

    def search(
        self,
        probe: ImageSource,
        actor: Actor,
        purpose: str,
        *,
        top_k: int | None = None,
        threshold: float | None = None,
        face: int | None = None,
        collections: Sequence[str] | None = None,
    ) -> SearchResult:
        """Gallery faces within ``threshold`` of each face in ``probe`` (or only face number ``face``).

        Refused without a purpose; recorded in the audit log with the probe's hash and the matches' ids.
        """
        stated = require_purpose(purpose, "search")
        top_k = self.settings.search_top_k if top_k is None else top_k
        if top_k <= 0:
            raise InvalidValueError(f"top-k must be a positive number, got {top_k}")
        threshold = self.analyser.threshold(threshold)
        loaded, faces = self.analyser.analyse_or_fail(probe)
        if face is not None and not 0 <= face < len(faces):
            raise InvalidValueError(f"face {face} does not exist: the probe has {len(faces)} faces, numbered from 0")
        chosen = [face] if face is not None else list(range(len(faces)))
        names = self.catalog.collection_names()
        wanted = [self.catalog.collection_id(name) for name in collections] if collections else sorted(names)
        results = self.find(faces, chosen, wanted, top_k, threshold)
        match_ids = sorted({m.face_id for r in results for m in r.matches})
        self.catalog.audit.record(
            SearchEvent(
                actor=actor,
                purpose=stated,
                probe_sha256=loaded.content_id,
                collections=[names[c] for c in wanted],
                threshold=threshold,
                top_k=top_k,
                match_count=len(match_ids),
                match_face_ids=match_ids,
            )
        )
        return SearchResult(
            probe=str(probe) if isinstance(probe, Path) else "uploaded image",
            threshold=threshold,
            top_k=top_k,
            faces_in_probe=len(faces),
            results=results,
        )

    def find(
        self,
        faces: Sequence[AnalysedFace],
        chosen: Sequence[int],
        collection_ids: Sequence[int],
        top_k: int,
        threshold: float,
        *,
        exhaustive: bool = False,
    ) -> list[ProbeResult]:
        """The matches of each chosen face (no audit: callers record what they did with them); ``exhaustive``
        compares every face even in collections with an approximate index."""
        queries = np.vstack([faces[i].embedding for i in chosen])
        per_face: list[list[tuple[float, int]]] = [[] for _ in chosen]
        for collection_id in collection_ids:
            distances, ids = self.indexes.index(collection_id).search(queries, top_k, exhaustive=exhaustive)
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
                    image_id=details[face_id].image_id,
                    collection=details[face_id].collection,
                    image_path=details[face_id].image_path,
                    content_id=details[face_id].content_id,
                    box=details[face_id].box,
                    ingested_at=details[face_id].ingested_at,
                )
                for distance, face_id in hits
                if face_id in details
            ]
            detection = faces[position].detection
            results.append(ProbeResult(position, detection.box, matches, round(detection.score, 4)))
        return results

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
            template_views=self.settings.template_views,
            template_recipes=self.catalog.template_recipes(),
        )


def _purge_event(actor: Actor, collection: str, cutoff: datetime, automatic: bool) -> Callable[[int, int], Event]:
    def event(faces: int, images: int) -> Event:
        return PurgeEvent(
            actor=actor,
            purpose="retention period",
            collection=collection,
            cutoff=cutoff.isoformat(),
            images_removed=images,
            faces_removed=faces,
            automatic=automatic,
        )

    return event


def _recorded_views(catalog: Catalog, settings: Settings) -> int:
    """The data folder's template views. A folder made before templates had views holds dlib's one-view
    templates, and is recorded as such on first open."""
    recorded = catalog.meta(TEMPLATE_VIEWS_KEY)
    if recorded is None:
        catalog.set_meta(TEMPLATE_VIEWS_KEY, recorded := "1")
    views = int(recorded)
    if views != settings.template_views:
        logging.getLogger(__name__).info(
            "this data folder's templates average %d view(s), as it was made; template_views=%d applies to new "
            "data folders only",
            views,
            settings.template_views,
        )
    return views


def _check_key_before_opening(settings: Settings, master_key: MasterKey) -> None:
    """Check the master key against a SQLite catalog before opening it for writing, so that a wrong key
    leaves the data folder exactly as it was."""
    path = settings.data_dir / "catalog.sqlite3"
    if settings.database_url or not path.exists():
        return
    check = peek_sqlite_meta(path, KEY_CHECK)
    if check is not None:
        master_key.verify(bytes.fromhex(check))


def _redact(url: str) -> str:
    """A database URL without its password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        credentials, host = rest.rsplit("@", 1)
        user = credentials.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url
