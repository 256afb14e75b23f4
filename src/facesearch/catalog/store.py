"""Reads and writes of the catalog. Each write is one transaction; nothing here touches vector indexes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Engine, create_engine, event, func, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from facesearch.catalog.schema import SCHEMA_VERSION, Base, CollectionRow, FaceRow, ImageRow, MetaRow
from facesearch.errors import ConflictError, DataFolderError, NotFoundError
from facesearch.governance import CollectionSpec
from facesearch.records import AnalysedFace, Box
from facesearch.results import CollectionInfo

EMBEDDING_DTYPE = np.dtype("<f4")


@dataclass(frozen=True)
class NewImage:
    """An analysed image ready to be written."""

    content_id: str
    source_path: str
    width: int
    height: int
    format: str
    byte_size: int
    faces: Sequence[AnalysedFace]


@dataclass(frozen=True)
class AddedFaces:
    ids: npt.NDArray[np.int64]
    embeddings: npt.NDArray[np.float32]
    generation: int


@dataclass(frozen=True)
class FaceDetails:
    face_id: int
    collection: str
    image_path: str
    content_id: str
    box: Box
    ingested_at: datetime


def open_database(url: str) -> Engine:
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")  # with WAL: durable across process crashes
    cursor.execute("PRAGMA secure_delete=ON")  # deleted rows are overwritten, not left in free pages
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


class Catalog:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def create(cls, url: str) -> Catalog:
        engine = open_database(url)
        Base.metadata.create_all(engine)
        with Session(engine) as session, session.begin():
            if session.get(MetaRow, "schema_version") is None:
                session.add(MetaRow(key="schema_version", value=str(SCHEMA_VERSION)))
        return cls(engine)

    @classmethod
    def open(cls, url: str) -> Catalog:
        engine = open_database(url)
        try:
            with Session(engine) as session:
                version = session.get(MetaRow, "schema_version")
        except OperationalError:
            engine.dispose()
            raise DataFolderError(
                f"catalog {url} is not a facesearch catalog (or is unreadable); run 'facesearch init' first"
            ) from None
        if version is None or int(version.value) != SCHEMA_VERSION:
            engine.dispose()
            raise DataFolderError(f"catalog {url} has schema {version and version.value}, expected {SCHEMA_VERSION}")
        return cls(engine)

    def close(self) -> None:
        self._engine.dispose()

    # -- collections -------------------------------------------------------------------------------

    def create_collection(self, spec: CollectionSpec) -> CollectionInfo:
        row = CollectionRow(
            name=spec.name,
            purpose=spec.purpose,
            lawful_basis=spec.lawful_basis.value,
            biometric_condition=spec.biometric_condition.value,
            retention_days=spec.retention_days,
            created_at=datetime.now(UTC),
            index_generation=0,
        )
        try:
            with self._sessions.begin() as session:
                session.add(row)
        except IntegrityError:
            raise ConflictError(f"collection {spec.name!r} already exists; choose another name") from None
        return self.collection_info(spec.name)

    def collection_id(self, name: str) -> int:
        with self._sessions() as session:
            found = session.scalar(select(CollectionRow.id).where(CollectionRow.name == name))
        if found is None:
            raise NotFoundError(f"collection {name!r} does not exist; see 'facesearch collection list' or create it")
        return found

    def collection_names(self) -> dict[int, str]:
        with self._sessions() as session:
            return {row.id: row.name for row in session.execute(select(CollectionRow.id, CollectionRow.name))}

    def collection_info(self, name: str) -> CollectionInfo:
        infos = [info for info in self.collections() if info.name == name]
        if not infos:
            self.collection_id(name)  # raises the NotFoundError
        return infos[0]

    def collections(self) -> list[CollectionInfo]:
        with self._sessions() as session:
            images = _count_by(session, ImageRow.collection_id)
            faces = _count_by(session, FaceRow.collection_id)
            rows = session.scalars(select(CollectionRow).order_by(CollectionRow.name)).all()
            return [
                CollectionInfo(
                    name=row.name,
                    purpose=row.purpose,
                    lawful_basis=row.lawful_basis,
                    biometric_condition=row.biometric_condition,
                    retention_days=row.retention_days,
                    created_at=_utc(row.created_at),
                    image_count=images.get(row.id, 0),
                    face_count=faces.get(row.id, 0),
                )
                for row in rows
            ]

    def generation(self, collection_id: int) -> int:
        with self._sessions() as session:
            value = session.scalar(select(CollectionRow.index_generation).where(CollectionRow.id == collection_id))
        return value or 0

    # -- images and faces --------------------------------------------------------------------------

    def has_content(self, collection_id: int, content_id: str) -> bool:
        with self._sessions() as session:
            found = session.scalar(
                select(ImageRow.id).where(ImageRow.collection_id == collection_id, ImageRow.content_id == content_id)
            )
        return found is not None

    def add_images(self, collection_id: int, images: Iterable[NewImage], embedder: str) -> AddedFaces:
        """Write ``images`` and their faces in one transaction; content already held is left as it is."""
        now = datetime.now(UTC)
        face_rows: list[FaceRow] = []
        vectors: list[npt.NDArray[np.float32]] = []
        with self._sessions.begin() as session:
            collection = session.get(CollectionRow, collection_id)
            if collection is None:
                raise NotFoundError(f"collection #{collection_id} was deleted during the ingest")
            for image in images:
                if session.scalar(
                    select(ImageRow.id).where(
                        ImageRow.collection_id == collection_id, ImageRow.content_id == image.content_id
                    )
                ):
                    continue
                image_row = ImageRow(
                    collection_id=collection_id,
                    content_id=image.content_id,
                    source_path=image.source_path,
                    width=image.width,
                    height=image.height,
                    format=image.format,
                    byte_size=image.byte_size,
                    face_count=len(image.faces),
                    ingested_at=now,
                )
                for face in image.faces:
                    detection = face.detection
                    row = FaceRow(
                        collection_id=collection_id,
                        left=detection.box.left,
                        top=detection.box.top,
                        right=detection.box.right,
                        bottom=detection.box.bottom,
                        score=detection.score,
                        landmarks=[list(point) for point in detection.landmarks],
                        rotation=detection.rotation,
                        embedder=embedder,
                        embedding=np.asarray(face.embedding, dtype=EMBEDDING_DTYPE).tobytes(),
                    )
                    image_row.faces.append(row)
                    face_rows.append(row)
                    vectors.append(np.asarray(face.embedding, dtype=np.float32))
                session.add(image_row)
            if face_rows:
                collection.index_generation += 1
            session.flush()
            generation = collection.index_generation
            ids = np.array([row.id for row in face_rows], dtype=np.int64)
        matrix = np.vstack(vectors) if vectors else np.zeros((0, 0), dtype=np.float32)
        return AddedFaces(ids=ids, embeddings=matrix, generation=generation)

    def remove_images(self, collection_id: int, image_ids: Iterable[int]) -> tuple[npt.NDArray[np.int64], int]:
        """Delete images (and their faces) in one transaction; returns the removed face ids and the new generation."""
        wanted = [int(i) for i in image_ids]
        with self._sessions.begin() as session:
            collection = session.get(CollectionRow, collection_id)
            if collection is None:
                raise NotFoundError(f"collection #{collection_id} does not exist")
            images = session.scalars(
                select(ImageRow).where(ImageRow.collection_id == collection_id, ImageRow.id.in_(wanted))
            ).all()
            missing = sorted(set(wanted) - {image.id for image in images})
            if missing:
                raise NotFoundError(f"images {missing} are not in collection {collection.name!r}")
            removed = [face.id for image in images for face in image.faces]
            for image in images:
                session.delete(image)
            if removed:
                collection.index_generation += 1
            generation = collection.index_generation
        return np.array(removed, dtype=np.int64), generation

    def image_ids(self, collection_id: int) -> list[int]:
        with self._sessions() as session:
            return list(session.scalars(select(ImageRow.id).where(ImageRow.collection_id == collection_id)))

    def embeddings(
        self, collection_id: int, face_ids: Sequence[int] | None = None
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """Ids and templates of the collection's faces (all, or those among ``face_ids``)."""
        query = select(FaceRow.id, FaceRow.embedding).where(FaceRow.collection_id == collection_id)
        if face_ids is not None:
            query = query.where(FaceRow.id.in_([int(i) for i in face_ids]))
        with self._sessions() as session:
            rows = session.execute(query.order_by(FaceRow.id)).all()
        ids = np.array([row[0] for row in rows], dtype=np.int64)
        if not rows:
            return ids, np.zeros((0, 0), dtype=np.float32)
        matrix = np.vstack([np.frombuffer(row[1], dtype=EMBEDDING_DTYPE) for row in rows]).astype(np.float32)
        return ids, matrix

    def face_ids(self, collection_id: int) -> npt.NDArray[np.int64]:
        with self._sessions() as session:
            ids = session.scalars(select(FaceRow.id).where(FaceRow.collection_id == collection_id)).all()
        return np.array(ids, dtype=np.int64)

    def face_details(self, face_ids: Iterable[int]) -> dict[int, FaceDetails]:
        wanted = sorted({int(i) for i in face_ids})
        if not wanted:
            return {}
        query = (
            select(FaceRow, ImageRow, CollectionRow.name)
            .join(ImageRow, FaceRow.image_id == ImageRow.id)
            .join(CollectionRow, FaceRow.collection_id == CollectionRow.id)
            .where(FaceRow.id.in_(wanted))
        )
        with self._sessions() as session:
            return {
                face.id: FaceDetails(
                    face_id=face.id,
                    collection=name,
                    image_path=image.source_path,
                    content_id=image.content_id,
                    box=Box(face.left, face.top, face.right, face.bottom),
                    ingested_at=_utc(image.ingested_at),
                )
                for face, image, name in session.execute(query).all()
            }

    def counts(self) -> tuple[int, int]:
        with self._sessions() as session:
            images = session.scalar(select(func.count()).select_from(ImageRow)) or 0
            faces = session.scalar(select(func.count()).select_from(FaceRow)) or 0
        return images, faces


def _count_by(session: Session, column: Any) -> dict[int, int]:
    query = select(column, func.count()).group_by(column)
    return {int(key): int(count) for key, count in session.execute(query)}


def _utc(moment: datetime) -> datetime:
    """SQLite drops the zone on the way back; every stored time is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
