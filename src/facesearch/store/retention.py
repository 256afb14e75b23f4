"""Retention: every image held past its collection's retention period is removed, faces, vectors and
catalog rows, and each removal is recorded in the audit log with the cutoff it applied."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from facesearch.core.results import PurgeReport
from facesearch.safeguards.audit import Actor, Event, PurgeEvent
from facesearch.store.catalog.store import Catalog
from facesearch.store.consistency import CollectionIndexes


def purge_expired(
    catalog: Catalog, indexes: CollectionIndexes, actor: Actor, now: datetime, *, automatic: bool
) -> PurgeReport:
    """Remove what is past retention at ``now`` from the catalog, then from the indexes, and shred the
    deleted rows' bytes; the caller sweeps the uploads the removed images leave behind."""
    report = PurgeReport(at=now)
    for collection_id, name in sorted(catalog.collection_names().items()):
        expired, cutoff = catalog.expired_image_ids(collection_id, now)
        if not expired:
            continue
        indexes.index(collection_id)
        removal = catalog.remove_images(collection_id, expired, _purge_event(actor, name, cutoff, automatic))
        indexes.remove(collection_id, removal.face_ids, removal.generation)
        report.by_collection[name] = (removal.images_removed, len(removal.face_ids))
    if report.by_collection:
        indexes.save()
        catalog.shred_deleted_bytes()
    return report


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
