"""Paged reads of what a collection holds: images and faces, for the API and the web UI. No templates."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from facesearch.core.errors import InvalidValueError, NotFoundError
from facesearch.core.records import Box
from facesearch.store.catalog.schema import CollectionRow, FaceRow, ImageRow, SubjectExampleRow, SubjectRow
from facesearch.store.catalog.store import Catalog, as_utc

MAX_PAGE = 1000
T = TypeVar("T")


@dataclass(frozen=True)
class FaceSummary:
    id: int
    image_id: int
    collection: str
    box: Box
    score: float
    rotation: int
    person_id: int | None
    subject: str | None = None


@dataclass(frozen=True)
class ImageSummary:
    id: int
    collection: str
    source: str
    content_id: str
    width: int
    height: int
    format: str
    face_count: int
    ingested_at: datetime
    faces: list[FaceSummary] = field(default_factory=list)


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    total: int
    offset: int
    limit: int


def check_page(offset: int, limit: int) -> None:
    if offset < 0:
        raise InvalidValueError(f"offset must be 0 or more, got {offset}")
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidValueError(f"limit must be between 1 and {MAX_PAGE}, got {limit}")


class Browser:
    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    def images(self, collection: str, offset: int = 0, limit: int = 50) -> Page[ImageSummary]:
        check_page(offset, limit)
        collection_id = self._catalog.collection_id(collection)
        where = ImageRow.collection_id == collection_id
        with self._catalog.sessions() as session:
            total = session.scalar(select(func.count()).select_from(ImageRow).where(where)) or 0
            rows = session.scalars(select(ImageRow).where(where).order_by(ImageRow.id).offset(offset).limit(limit))
            items = [_image(row, collection, []) for row in rows]
        return Page(items, total, offset, limit)

    def image(self, image_id: int) -> ImageSummary:
        with self._catalog.sessions() as session:
            row = session.get(ImageRow, image_id)
            if row is None:
                raise NotFoundError(f"image {image_id} does not exist (erased, purged or never indexed)")
            collection = _collection_name(session, row.collection_id)
            faces = _faces(session, select(FaceRow).where(FaceRow.image_id == image_id).order_by(FaceRow.id))
            return _image(row, collection, faces)

    def faces(self, collection: str, offset: int = 0, limit: int = 50) -> Page[FaceSummary]:
        check_page(offset, limit)
        collection_id = self._catalog.collection_id(collection)
        where = FaceRow.collection_id == collection_id
        with self._catalog.sessions() as session:
            total = session.scalar(select(func.count()).select_from(FaceRow).where(where)) or 0
            query = select(FaceRow).where(where).order_by(FaceRow.id).offset(offset).limit(limit)
            return Page(_faces(session, query), total, offset, limit)

    def face(self, face_id: int) -> FaceSummary:
        with self._catalog.sessions() as session:
            faces = _faces(session, select(FaceRow).where(FaceRow.id == face_id))
        if not faces:
            raise NotFoundError(f"face {face_id} does not exist (erased, purged or never indexed)")
        return faces[0]


def _collection_name(session: Session, collection_id: int) -> str:
    row = session.get(CollectionRow, collection_id)
    return "" if row is None else row.name


def _faces(session: Session, query: Select[FaceRow]) -> list[FaceSummary]:
    rows = list(session.scalars(query))
    names = {row.id: row.name for row in session.scalars(select(CollectionRow))}
    named = (
        select(SubjectExampleRow.image_id, SubjectRow.name)
        .join(SubjectRow, SubjectRow.id == SubjectExampleRow.subject_id)
        .where(SubjectExampleRow.image_id.in_({row.image_id for row in rows}))
    )
    subjects = {image_id: name for image_id, name in session.execute(named)}
    return [
        FaceSummary(
            id=row.id,
            image_id=row.image_id,
            collection=names.get(row.collection_id, ""),
            box=Box(row.left, row.top, row.right, row.bottom),
            score=round(row.score, 4),
            rotation=row.rotation,
            person_id=row.person_id,
            subject=subjects.get(row.image_id),
        )
        for row in rows
    ]


def _image(row: ImageRow, collection: str, faces: list[FaceSummary]) -> ImageSummary:
    return ImageSummary(
        id=row.id,
        collection=collection,
        source=row.source_path,
        content_id=row.content_id,
        width=row.width,
        height=row.height,
        format=row.format,
        face_count=row.face_count,
        ingested_at=as_utc(row.ingested_at),
        faces=faces,
    )
