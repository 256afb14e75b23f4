"""The catalog's side of a reindex: faces re-embedded with another recipe wait in ``reindex_templates`` until every
face of their collection has one; then one transaction replaces every template of the collection, its recipe and
its index generation, with its audit entry. A reindex killed at any point leaves the collection whole on its old
recipe (what it re-embedded is kept, so the next run goes on from there), and nothing is written twice."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Select, delete, func, insert, select, update

from facesearch.core.errors import NotFoundError
from facesearch.core.records import Box, Point
from facesearch.safeguards.audit import Event
from facesearch.store.catalog.schema import CollectionRow, FaceRow, ImageRow, ReindexTemplateRow
from facesearch.store.catalog.store import Catalog


@dataclass(frozen=True)
class FaceToReindex:
    face_id: int
    image_id: int
    source_path: str
    content_id: str
    box: Box
    landmarks: tuple[Point, ...]


def _waiting(collection_id: int, recipe: str) -> Select[int]:
    """The collection's faces without a re-embedded template of ``recipe``."""
    done = select(ReindexTemplateRow.face_id).where(ReindexTemplateRow.template_recipe == recipe)
    return select(FaceRow.id).where(FaceRow.collection_id == collection_id, FaceRow.id.not_in(done))


def start(catalog: Catalog, collection_id: int, recipe: str) -> int:
    """Drop what an earlier reindex of this collection to another recipe left; returns the faces already done."""
    faces = select(FaceRow.id).where(FaceRow.collection_id == collection_id)
    with catalog.sessions.begin() as session:
        session.execute(
            delete(ReindexTemplateRow).where(
                ReindexTemplateRow.face_id.in_(faces), ReindexTemplateRow.template_recipe != recipe
            )
        )
        return (
            session.scalar(
                select(func.count()).select_from(ReindexTemplateRow).where(ReindexTemplateRow.face_id.in_(faces))
            )
            or 0
        )


def waiting_count(catalog: Catalog, collection_id: int, recipe: str) -> int:
    with catalog.sessions() as session:
        return session.scalar(select(func.count()).select_from(_waiting(collection_id, recipe).subquery())) or 0


def waiting_faces(
    catalog: Catalog, collection_id: int, recipe: str, limit: int, after_image: int = 0
) -> list[FaceToReindex]:
    """Faces still to re-embed, whole images at a time, by image id from ``after_image`` (exclusive)."""
    waiting = _waiting(collection_id, recipe).subquery()
    images = (
        select(FaceRow.image_id)
        .where(FaceRow.id.in_(select(waiting)), FaceRow.image_id > after_image)
        .group_by(FaceRow.image_id)
        .order_by(FaceRow.image_id)
        .limit(limit)
    )
    query = (
        select(FaceRow, ImageRow.source_path, ImageRow.content_id)
        .join(ImageRow, FaceRow.image_id == ImageRow.id)
        .where(FaceRow.image_id.in_(images.scalar_subquery()), FaceRow.id.in_(select(waiting)))
        .order_by(FaceRow.image_id, FaceRow.id)
    )
    with catalog.sessions() as session:
        return [
            FaceToReindex(
                face.id,
                face.image_id,
                source,
                content_id,
                Box(face.left, face.top, face.right, face.bottom),
                tuple((float(x), float(y)) for x, y in face.landmarks),
            )
            for face, source, content_id in session.execute(query).all()
        ]


def keep_templates(catalog: Catalog, recipe: str, sealed: Sequence[tuple[int, bytes]]) -> int:
    """Store re-embedded templates (face id, sealed template) in one transaction; faces erased meanwhile are
    skipped. Returns how many were stored."""
    wanted = [face_id for face_id, _ in sealed]
    with catalog.sessions.begin() as session:
        alive = set(session.scalars(select(FaceRow.id).where(FaceRow.id.in_(wanted))))
        held = set(session.scalars(select(ReindexTemplateRow.face_id).where(ReindexTemplateRow.face_id.in_(wanted))))
        rows = [
            {"face_id": face_id, "template_recipe": recipe, "embedding": blob}
            for face_id, blob in sealed
            if face_id in alive and face_id not in held
        ]
        if rows:
            session.execute(insert(ReindexTemplateRow), rows)
        return len(rows)


def switch(catalog: Catalog, collection_id: int, recipe: str, audit: Event) -> int | None:
    """Replace every template of the collection by its re-embedded one and record ``recipe``, in one transaction
    with ``audit``; None (nothing changed) while a face of the collection has none. Returns the new generation."""
    with catalog.sessions.begin() as session:
        collection = session.get(CollectionRow, collection_id, with_for_update=True)
        if collection is None:
            raise NotFoundError(f"collection #{collection_id} was deleted during the reindex")
        if session.scalar(select(func.count()).select_from(_waiting(collection_id, recipe).subquery())):
            return None
        faces = select(FaceRow.id).where(FaceRow.collection_id == collection_id)
        replacement = (
            select(ReindexTemplateRow.embedding).where(ReindexTemplateRow.face_id == FaceRow.id).scalar_subquery()
        )
        session.execute(
            update(FaceRow)
            .where(FaceRow.collection_id == collection_id)
            .values(embedding=replacement, embedder=recipe)
            .execution_options(synchronize_session=False)
        )
        session.execute(delete(ReindexTemplateRow).where(ReindexTemplateRow.face_id.in_(faces)))
        collection.template_recipe = recipe
        collection.index_generation += 1
        Catalog.owe_scrub(session)  # the old templates' bytes are shredded like erased rows'
        catalog.audit.append(session, audit)
        session.flush()
        return collection.index_generation
