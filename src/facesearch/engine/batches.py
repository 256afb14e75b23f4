"""Analysed images reach the catalog and the vector index in batches, each with its audit entries, and faces
of people who objected (``accountability/rights.py``) are dropped before anything is written."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import numpy.typing as npt

from facesearch.core.records import NewImage
from facesearch.core.results import IngestReport
from facesearch.engine.ciphers import OBJECTIONS_COLLECTION_ID, Ciphers
from facesearch.safeguards.audit import Actor, Event, IngestEvent, ObjectionSkipEvent
from facesearch.store.catalog.store import Catalog
from facesearch.store.consistency import CollectionIndexes
from facesearch.vision.distance import face_distance


class BatchWriter:
    """Writes one ingest's batches into one collection, and counts them into its report."""

    def __init__(
        self,
        catalog: Catalog,
        indexes: CollectionIndexes,
        ciphers: Ciphers,
        match_threshold: float,
        collection: str,
        actor: Actor,
        report: IngestReport,
    ) -> None:
        self._catalog = catalog
        self._indexes = indexes
        self._ciphers = ciphers
        self._match_threshold = match_threshold
        self._collection = collection
        self._collection_id = catalog.collection_id(collection)
        self._actor = actor
        self._report = report
        self._protected = protected_templates(catalog, ciphers, catalog.collection_recipe(self._collection_id))
        self._audited_failures = 0
        indexes.index(self._collection_id)  # open (and reconcile) before the first write

    @property
    def collection_id(self) -> int:
        return self._collection_id

    def write(self, batch: list[NewImage]) -> None:
        """Write ``batch`` (then empty it) with its audit entries; the failures listed in the report since the
        last write are recorded with it."""
        report = self._report
        failed = len(report.failed) - self._audited_failures
        if not batch and not failed:
            return
        kept, skips = without_objectors(batch, self._protected, self._match_threshold)
        events: list[Event] = [
            ObjectionSkipEvent(actor=self._actor, collection=self._collection, source_path=path, faces_skipped=count)
            for path, count in skips
        ]
        events.append(
            IngestEvent(
                actor=self._actor,
                collection=self._collection,
                files_seen=len(kept) + failed,
                images_added=len(kept),
                faces_added=sum(len(image.faces) for image in kept),
                failed=failed,
            )
        )
        seal = self._ciphers(self._collection_id).seal_template
        added = self._catalog.add_images(self._collection_id, kept, seal, events)
        self._indexes.add(self._collection_id, added.ids, added.embeddings, added.generation)
        report.images_added += len(kept)
        report.faces_added += len(added.ids)
        report.images_without_faces += sum(1 for image in kept if not image.faces)
        report.faces_skipped_by_objection += sum(count for _, count in skips)
        self._audited_failures = len(report.failed)
        batch.clear()


def protected_templates(catalog: Catalog, ciphers: Ciphers, recipe: str) -> npt.NDArray[np.float32]:
    """The templates of ``recipe`` kept, protected, of the people who objected: their faces are never ingested
    again."""
    sealed = catalog.protected_templates(recipe)
    if not sealed:
        return np.zeros((0, 0), dtype=np.float32)
    cipher = ciphers(OBJECTIONS_COLLECTION_ID)
    return np.vstack([cipher.open_template(blob) for blob in sealed])


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
