"""The one object the library, the CLI, the HTTP service and background jobs share: built from settings, it
owns the catalog, the keys, the vector indexes and the models, and records every action in the audit log.

Each of its jobs is a module of this package (opening a data folder, ingest from folders and from uploads,
batches, search); retention and uploads live beside their store (``store/retention.py``, ``store/uploads.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from facesearch.core.errors import ImageError, InvalidValueError
from facesearch.core.records import AnalysedFace
from facesearch.core.results import (
    CollectionInfo,
    CollectionStats,
    DetectionResult,
    IngestReport,
    OperatingPoint,
    ProbeResult,
    PurgeReport,
    ReindexReport,
    SearchResult,
    Stats,
    UploadReport,
    Verification,
)
from facesearch.core.settings import Settings
from facesearch.engine.batches import BatchWriter
from facesearch.engine.ciphers import Ciphers
from facesearch.engine.folders import ingest_folders
from facesearch.engine.ingest import Progress
from facesearch.engine.opening import create_catalog, open_catalog, recorded_views
from facesearch.engine.reindex import reindex_collection
from facesearch.engine.search import AnalysedProbe, find_matches
from facesearch.engine.uploads import PreparedUploads, prepare_uploads, write_uploads
from facesearch.safeguards.audit import (
    RETENTION_ACTOR,
    Actor,
    ConfigurationEvent,
    ErasureEvent,
    SearchEvent,
    VerifyEvent,
)
from facesearch.safeguards.governance import PURPOSE_FLAG, CollectionSpec, require_purpose
from facesearch.safeguards.vault import CollectionCipher, MasterKey
from facesearch.store.catalog.database import redact
from facesearch.store.catalog.store import Catalog
from facesearch.store.consistency import CollectionIndexes
from facesearch.store.index.milvus import MilvusServer
from facesearch.store.index.policy import IndexPolicy
from facesearch.store.milvus_indexes import MilvusIndexes
from facesearch.store.retention import purge_expired
from facesearch.store.uploads import UploadStore, is_upload
from facesearch.vision.analysis import FaceAnalyser, ImageSource
from facesearch.vision.calibration import load_calibration, operating_point
from facesearch.vision.imaging import read_image_file
from facesearch.vision.models.registry import configured_models
from facesearch.vision.recipes import recipe_named

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def collection_indexes(settings: Settings, catalog: Catalog, ciphers: Ciphers) -> CollectionIndexes:
    """The collections' vector indexes: faiss files in the data folder, or a Milvus server (``vector_store``)."""
    policy = IndexPolicy.from_settings(settings)
    address = settings.milvus_address
    if address is None:
        return CollectionIndexes(catalog, settings.index_dir, catalog.collection_recipe, ciphers, policy)
    server = MilvusServer(*address)
    return MilvusIndexes(catalog, settings.index_dir, catalog.collection_recipe, ciphers, policy, server)


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
        # Ingest workers load their own models; these analyse probes, pairs and uploads in this process.
        self.models = configured_models(settings.embedder_choice(settings.threads_per_request or None))
        self.analyser = FaceAnalyser(settings, self.models)
        self.ciphers = Ciphers(catalog, master_key)
        self.indexes = collection_indexes(settings, catalog, self.ciphers)
        self.uploads = UploadStore(settings.data_dir / "uploads")

    # -- lifecycle ---------------------------------------------------------------------------------

    @classmethod
    def init(cls, settings: Settings, *, clock: Clock = utc_now) -> Engine:
        """Create (or open) the data folder and its catalog, bound to the configured master key."""
        return cls._ready(settings, *create_catalog(settings), clock)

    @classmethod
    def open(cls, settings: Settings, *, clock: Clock = utc_now) -> Engine:
        """Open an initialised data folder; fails, changing nothing, without the right master key."""
        return cls._ready(settings, *open_catalog(settings), clock)

    @classmethod
    def _ready(cls, settings: Settings, catalog: Catalog, master_key: MasterKey, clock: Clock) -> Engine:
        settings = settings.replace(template_views=recorded_views(catalog, settings))
        engine = cls(settings, catalog, master_key, clock=clock)
        engine.purge(RETENTION_ACTOR, automatic=True)  # retention is enforced whenever the data is opened
        engine.sweep_uploads()
        return engine

    def close(self) -> None:
        self.indexes.save()
        self.indexes.close()
        self.catalog.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def cipher(self, collection_id: int) -> CollectionCipher:
        """The collection's cipher (its key unwrapped by the master key on first use)."""
        return self.ciphers(collection_id)

    # -- collections -------------------------------------------------------------------------------

    def create_collection(self, spec: CollectionSpec, actor: Actor) -> CollectionInfo:
        fields = {key: str(value) for key, value in asdict(spec).items()}
        event = ConfigurationEvent(actor=actor, collection=spec.name, change="collection-created", fields=fields)
        key = self.master_key.new_collection_key(spec.name)
        return self.catalog.create_collection(spec, key, event, self.settings.recipe)

    def delete_collection(self, name: str, actor: Actor, reason: str) -> None:
        """Delete a collection and destroy its key: whatever was encrypted under it is unreadable."""
        event = ConfigurationEvent(actor=actor, purpose=reason, collection=name, change="collection-deleted")
        collection_id = self.catalog.delete_collection(name, event)
        self.ciphers.forget(collection_id)
        self.indexes.drop(collection_id)
        self.catalog.shred_deleted_bytes()
        self.sweep_uploads()

    def set_people_allowed(
        self, name: str, allowed: bool, actor: Actor, reason: str, *, asked_as: str = "--reason"
    ) -> CollectionInfo:
        """Record whether the collection's purpose allows grouping faces into people. Withdrawing it
        deletes the people (and names) made under it."""
        stated = require_purpose(reason, "change of a collection's purpose", asked_as=asked_as)
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
        ray_address: str | None = None,
    ) -> IngestReport:
        """Index every image under ``paths`` into ``collection``; see ``engine/folders.py``. ``ray_address`` (else
        the setting) names a Ray cluster to analyse on instead of local workers (``engine/ray_cluster.py``)."""
        report = IngestReport(collection=collection)
        writer = self._writer(collection, actor, report)
        # Templates of the collection's recipe, whatever the settings say for new collections.
        settings = self.settings.replace(template_recipe=self.catalog.collection_recipe(writer.collection_id))
        try:
            workers = workers or settings.worker_count
            settings = settings.replace(ray_address=ray_address) if ray_address else settings
            return ingest_folders(settings, self.catalog, writer, report, paths, workers, progress or Progress())
        finally:
            self.indexes.save()

    def prepare_uploads(
        self,
        collection: str,
        uploads: Sequence[tuple[str, bytes]],
        *,
        subject_id: int | None = None,
        strict: bool = False,
        only_face_above: float | None = None,
    ) -> PreparedUploads:
        """Check and analyse uploads for ``ingest_uploads``, writing nothing (the service does this before
        taking its lock). With ``subject_id`` and ``only_face_above`` (a detection score), each example must show
        exactly one face scoring above it (``engine/uploads.py``: ``example_face``)."""
        return prepare_uploads(
            self.settings,
            self.catalog,
            self.analyser,
            collection,
            uploads,
            subject_id=subject_id,
            strict=strict,
            only_face_above=only_face_above,
        )

    def ingest_uploads(
        self,
        collection: str,
        uploads: Sequence[tuple[str, bytes]] | PreparedUploads,
        actor: Actor,
        *,
        subject_id: int | None = None,
        strict: bool = False,
    ) -> UploadReport:
        """Index uploaded images (name as sent, bytes) into ``collection``, keeping an encrypted copy of each
        so that matches can be shown. With ``subject_id`` each upload is an enrolment example: it must show a
        face, and only its largest face is kept and linked to the subject. ``strict`` raises the first bad
        upload's error instead of listing it as failed. ``uploads`` may come from ``prepare_uploads`` (with the
        same ``subject_id`` and ``strict``)."""
        prepared = (
            uploads
            if isinstance(uploads, PreparedUploads)
            else self.prepare_uploads(collection, uploads, subject_id=subject_id, strict=strict)
        )
        writer = self._writer(prepared.collection, actor, prepared.report)
        result = write_uploads(self.catalog, self.uploads, self.ciphers, writer, prepared, strict=strict)
        self.indexes.save()
        return result

    def _writer(self, collection: str, actor: Actor, report: IngestReport) -> BatchWriter:
        threshold = self.settings.match_threshold
        return BatchWriter(self.catalog, self.indexes, self.ciphers, threshold, collection, actor, report)

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

    def reindex(
        self,
        actor: Actor,
        *,
        recipe: str | None = None,
        collections: Sequence[str] | None = None,
        progress: Progress | None = None,
    ) -> list[ReindexReport]:
        """Re-embed every face of ``collections`` (default: all) with ``recipe`` (default: the settings'), each
        collection switched whole when all its faces were re-embedded; see ``engine/reindex.py``."""
        target = recipe_named(recipe or self.settings.recipe).name
        names = list(collections) if collections else sorted(self.catalog.collection_names().values())
        reports = []
        for name in names:
            cipher = self.cipher(self.catalog.collection_id(name))
            reports.append(
                reindex_collection(
                    self.catalog,
                    self.indexes,
                    self.analyser,
                    cipher,
                    self.image_bytes,
                    name,
                    target,
                    actor,
                    progress or Progress(),
                    self.settings.ingest_batch_size,
                )
            )
        return reports

    # -- retention ---------------------------------------------------------------------------------

    def purge(self, actor: Actor, *, automatic: bool = False) -> PurgeReport:
        """Remove every image and face held past its collection's retention period, and record it."""
        report = purge_expired(self.catalog, self.indexes, actor, self.clock(), automatic=automatic)
        if report.by_collection:
            self.sweep_uploads()
        return report

    # -- single images -----------------------------------------------------------------------------

    def detect(self, image: ImageSource, name: str | None = None) -> DetectionResult:
        return self.analyser.detect(image, name)

    def verify(
        self,
        a: ImageSource,
        b: ImageSource,
        actor: Actor,
        purpose: str,
        *,
        threshold: float | None = None,
        asked_as: str = PURPOSE_FLAG,
    ) -> Verification:
        """Whether the largest faces of ``a`` and ``b`` are the same person: a biometric comparison, so refused
        without a stated purpose (``asked_as`` names where the caller states it); audited with both hashes."""
        stated = require_purpose(purpose, "verification", asked_as=asked_as)
        result = self.analyser.verify(a, b, threshold=threshold)
        self.catalog.audit.record(
            VerifyEvent(
                actor=actor,
                purpose=stated,
                a_sha256=result.a_sha256,
                b_sha256=result.b_sha256,
                distance=result.distance,
                match=result.match,
            )
        )
        return result

    # -- search ------------------------------------------------------------------------------------

    def analyse_probe(self, probe: ImageSource, timings: dict[str, float] | None = None) -> AnalysedProbe:
        """A probe's faces (an image without one is an error), ready for ``search``: the service analyses
        probes before taking its lock, so that searches run side by side. Each face is embedded once per
        recipe the collections hold (detected once), so that it is compared only with templates of its kind;
        ``timings`` receives the seconds each stage took."""
        needed = sorted(set(self.catalog.collection_recipes().values())) or [self.settings.recipe]
        loaded, faces = self.analyser.analyse_or_fail(probe, recipe=needed[0], also=needed[1:], timings=timings)
        return AnalysedProbe(loaded, faces, str(probe) if isinstance(probe, Path) else "uploaded image")

    def search(
        self,
        probe: ImageSource | AnalysedProbe,
        actor: Actor,
        purpose: str,
        *,
        top_k: int | None = None,
        threshold: float | None = None,
        face: int | None = None,
        collections: Sequence[str] | None = None,
        asked_as: str = PURPOSE_FLAG,
    ) -> SearchResult:
        """Gallery faces within the operating point's threshold of each face in ``probe`` (or only face number
        ``face``): ``threshold`` if given, else the one at which a search of this many faces expects
        ``search_false_matches`` wrong people per probe face (``vision/calibration.py``).

        Refused without a purpose; recorded in the audit log with the probe's hash, the matches' ids and the
        operating point.
        """
        stated = require_purpose(purpose, "search", asked_as=asked_as)
        top_k = self.settings.search_top_k if top_k is None else top_k
        if top_k <= 0:
            raise InvalidValueError(f"top-k must be a positive number, got {top_k}")
        if threshold is not None:
            self.analyser.threshold(threshold)  # checked before the probe is analysed
        analysed = probe if isinstance(probe, AnalysedProbe) else self.analyse_probe(probe)
        faces = analysed.faces
        if face is not None and not 0 <= face < len(faces):
            raise InvalidValueError(f"face {face} does not exist: the probe has {len(faces)} faces, numbered from 0")
        chosen = [face] if face is not None else list(range(len(faces)))
        names = self.catalog.collection_names()
        wanted = [self.catalog.collection_id(name) for name in collections] if collections else sorted(names)
        point = self.operating_point(wanted, threshold)
        threshold = point.threshold
        results = self.find(faces, chosen, wanted, top_k, threshold)
        match_ids = sorted({m.face_id for r in results for m in r.matches})
        self.catalog.audit.record(
            SearchEvent(
                actor=actor,
                purpose=stated,
                probe_sha256=analysed.image.content_id,
                collections=[names[c] for c in wanted],
                threshold=threshold,
                top_k=top_k,
                match_count=len(match_ids),
                match_face_ids=match_ids,
                operating_point=asdict(point),
            )
        )
        return SearchResult(
            probe=analysed.described_as,
            threshold=threshold,
            top_k=top_k,
            faces_in_probe=len(faces),
            results=results,
            operating_point=point,
        )

    def operating_point(self, collection_ids: Sequence[int], threshold: float | None = None) -> OperatingPoint:
        """The threshold a search of these collections uses (``threshold`` if given) and what it implies: with
        collections of several template recipes, the strictest of their recipes' thresholds."""
        gallery_size = sum(len(self.indexes.index(collection_id)) for collection_id in collection_ids)
        recipes = sorted({self.catalog.collection_recipe(c) for c in collection_ids}) or [self.settings.recipe]
        points = [
            operating_point(
                recipe,
                gallery_size,
                self.settings.search_false_matches,
                self.settings.match_threshold,
                override=threshold,
            )
            for recipe in recipes
        ]
        return min(points, key=lambda point: point.threshold)

    @staticmethod
    def same_person(distance: float, recipe: str) -> float | None:
        """The calibrated score of a match at ``distance`` between templates of ``recipe`` (None when the recipe
        has no calibration)."""
        calibration = load_calibration(recipe)
        return None if calibration is None else calibration.likelihood(distance)

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
        """The matches of each chosen face (no audit: callers record what they did with them); see
        ``engine/search.py``."""
        return find_matches(
            self.catalog,
            self.indexes,
            faces,
            chosen,
            collection_ids,
            top_k,
            threshold,
            exhaustive=exhaustive,
            same_person=self.same_person,
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
            catalog_url=redact(self.settings.catalog_url),
            collections=per_collection,
            images=images,
            faces=faces,
            data_bytes=data_bytes,
            template_views=self.settings.template_views,
            template_recipes=self.catalog.template_recipes(),
        )
