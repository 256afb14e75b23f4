"""Reads and writes of the catalog. Each write is one transaction, with its audit entry inside it;
nothing here touches vector indexes (see ``facesearch.store.consistency``) or holds keys (templates arrive
sealed and leave sealed: see ``facesearch.safeguards.vault``)."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Engine, delete, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.orm import Session, sessionmaker

from facesearch.core.errors import ConflictError, DataFolderError, NotFoundError
from facesearch.core.paths import utf8_text
from facesearch.core.records import AnalysedFace, Box, NewImage
from facesearch.core.results import CollectionInfo
from facesearch.safeguards.audit import Event
from facesearch.safeguards.governance import CollectionSpec
from facesearch.store.catalog import migrate
from facesearch.store.catalog.audit_log import AuditLog
from facesearch.store.catalog.database import open_database, redact, scrub_deleted_rows
from facesearch.store.catalog.schema import (
    SCHEMA_VERSION,
    CollectionRow,
    ErasureReceiptRow,
    FaceRow,
    ImageRow,
    MetaRow,
    PersonRow,
    ProtectedTemplateRow,
    SubjectExampleRow,
)

Seal = Callable[[npt.NDArray[np.float32]], bytes]
Unseal = Callable[[bytes], npt.NDArray[np.float32]]
CONTENT_QUERY_CHUNK = 500
SCRUB_OWED_KEY = "scrub_owed"
"""Meta row present from the commit that deleted personal data until its bytes were shredded."""
"""Content ids per ``IN (...)`` query, well under SQLite's and PostgreSQL's limits on bound parameters."""


@dataclass(frozen=True)
class AddedFaces:
    ids: npt.NDArray[np.int64]
    embeddings: npt.NDArray[np.float32]
    generation: int


@dataclass(frozen=True)
class Removal:
    """Faces removed from one collection by one transaction, and the generation it left."""

    face_ids: npt.NDArray[np.int64]
    images_removed: int
    generation: int


@dataclass(frozen=True)
class FaceDetails:
    face_id: int
    image_id: int
    collection: str
    collection_purpose: str
    lawful_basis: str
    retention_days: int
    image_path: str
    content_id: str
    box: Box
    ingested_at: datetime

    @property
    def delete_by(self) -> datetime:
        return self.ingested_at + timedelta(days=self.retention_days)


@dataclass(frozen=True)
class ErasureReceipt:
    """Proof of an erasure: what was removed, when, by whom, under which request. No biometric data."""

    id: str
    at: datetime
    actor: str
    reference: str
    faces_removed: int
    images_removed: int
    by_collection: dict[str, int] = field(default_factory=dict)
    face_ids: list[int] = field(default_factory=list)


def peek_sqlite_meta(path: Path, key: str) -> str | None:
    """A value from a SQLite catalog's meta table, read without creating WAL or lock files (immutable,
    read-only): for checks that must change nothing. None when absent or not readable this way."""
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
        try:
            row = connection.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        finally:
            connection.close()
    except sqlite3.Error:
        return None
    return None if row is None else str(row[0])


class Catalog:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self.audit = AuditLog(self._sessions)

    @property
    def sessions(self) -> sessionmaker[Session]:
        return self._sessions

    @property
    def shared(self) -> bool:
        """Whether the catalog is on a database server, which several facesearch processes may use at once (SQLite
        in the data folder is one process's: ``facesearch serve`` runs one there)."""
        return self._engine.dialect.name != "sqlite"

    @classmethod
    def create(cls, url: str) -> Catalog:
        """Create the catalog by running its migrations (or open it, migrating it, if it exists)."""
        engine = open_database(url)
        migrate.upgrade(engine)
        with Session(engine) as session, session.begin():
            if session.get(MetaRow, "schema_version") is None:
                session.add(MetaRow(key="schema_version", value=str(SCHEMA_VERSION)))
        return cls(engine)

    @classmethod
    def open(cls, url: str) -> Catalog:
        """Open an existing catalog, running the migrations it lacks (a catalog made before migrations, with
        no ``alembic_version`` table, is upgraded in place)."""
        engine = open_database(url)
        try:
            with Session(engine) as session:
                version = session.get(MetaRow, "schema_version")
        except (OperationalError, ProgrammingError):
            engine.dispose()
            raise DataFolderError(
                f"catalog {redact(url)} is not a facesearch catalog (or is unreadable); run 'facesearch init' first"
            ) from None
        if version is None or int(version.value) != SCHEMA_VERSION:
            engine.dispose()
            raise DataFolderError(
                f"catalog {redact(url)} has schema {version and version.value}, expected {SCHEMA_VERSION}"
            )
        migrate.upgrade(engine)
        return cls(engine)

    def close(self) -> None:
        self._engine.dispose()

    def meta(self, key: str) -> str | None:
        with self._sessions() as session:
            row = session.get(MetaRow, key)
            return None if row is None else row.value

    def set_meta(self, key: str, value: str) -> None:
        with self._sessions.begin() as session:
            session.merge(MetaRow(key=key, value=value))

    @staticmethod
    def owe_scrub(session: Session) -> None:
        """Record, in the transaction that deletes personal data, that its bytes are still to be shredded:
        if the process dies before ``shred_deleted_bytes``, the next open finishes it (``finish_owed_scrub``)."""
        session.merge(MetaRow(key=SCRUB_OWED_KEY, value="1"))

    def shred_deleted_bytes(self) -> None:
        """Take deleted rows' bytes out of the database's files, then mark the owed scrub done. SQLite: move every
        committed page out of the write-ahead log and truncate it, so that rows deleted (and zeroed by
        ``secure_delete``) leave no older copy in the WAL file. PostgreSQL: ``database.scrub_deleted_rows``
        (VACUUM FULL, a WAL switch)."""
        if self._engine.dialect.name == "postgresql":
            scrub_deleted_rows(self._engine)
        elif self._engine.dialect.name == "sqlite":
            self._checkpoint()
        with self._sessions.begin() as session:
            owed = session.get(MetaRow, SCRUB_OWED_KEY)
            if owed is not None:
                session.delete(owed)

    def finish_owed_scrub(self) -> bool:
        """Shred what a process that died after deleting personal data left unshredded; True if one was owed."""
        if self.meta(SCRUB_OWED_KEY) is None:
            return False
        self.shred_deleted_bytes()
        return True

    def _checkpoint(self) -> None:
        with self._engine.connect() as connection:
            for _ in range(50):
                busy = connection.execute(text("PRAGMA wal_checkpoint(TRUNCATE)")).scalar()
                if not busy:
                    return
        raise DataFolderError("the catalog is busy (another process is reading it); run the command again")

    # -- collections -------------------------------------------------------------------------------

    def create_collection(self, spec: CollectionSpec, wrapped_key: bytes, audit: Event, recipe: str) -> CollectionInfo:
        row = CollectionRow(
            template_recipe=recipe,
            name=spec.name,
            purpose=spec.purpose,
            lawful_basis=spec.lawful_basis.value,
            biometric_condition=spec.biometric_condition.value,
            retention_days=spec.retention_days,
            created_at=datetime.now(UTC),
            wrapped_key=wrapped_key,
            people_allowed=spec.people_allowed,
            index_generation=0,
        )
        try:
            with self._sessions.begin() as session:
                session.add(row)
                session.flush()
                self.audit.append(session, audit)
        except IntegrityError:
            raise ConflictError(f"collection {spec.name!r} already exists; choose another name") from None
        return self.collection_info(spec.name)

    def delete_collection(self, name: str, audit: Event) -> int:
        """Delete a collection, its images and faces, and its wrapped key (crypto-shredding)."""
        with self._sessions.begin() as session:
            row = session.scalar(select(CollectionRow).where(CollectionRow.name == name))
            if row is None:
                raise NotFoundError(f"collection {name!r} does not exist; see 'facesearch collection list'")
            collection_id = row.id
            session.execute(delete(FaceRow).where(FaceRow.collection_id == collection_id))
            session.execute(delete(ImageRow).where(ImageRow.collection_id == collection_id))
            session.delete(row)
            self.owe_scrub(session)
            self.audit.append(session, audit)
        return collection_id

    def set_people_allowed(self, name: str, allowed: bool, audit: Event) -> None:
        with self._sessions.begin() as session:
            row = session.scalar(select(CollectionRow).where(CollectionRow.name == name))
            if row is None:
                raise NotFoundError(f"collection {name!r} does not exist; see 'facesearch collection list'")
            row.people_allowed = allowed
            if not allowed:  # withdrawing the purpose withdraws the grouping made under it
                session.execute(
                    update(FaceRow).where(FaceRow.collection_id == row.id).values(person_id=None, person_locked=False)
                )
                session.execute(delete(PersonRow).where(PersonRow.collection_id == row.id))
            self.audit.append(session, audit)

    def collection_id(self, name: str) -> int:
        with self._sessions() as session:
            found = session.scalar(select(CollectionRow.id).where(CollectionRow.name == name))
        if found is None:
            raise NotFoundError(f"collection {name!r} does not exist; see 'facesearch collection list' or create it")
        return found

    def collection_key(self, collection_id: int) -> tuple[str, bytes]:
        with self._sessions() as session:
            row = session.get(CollectionRow, collection_id)
            if row is None:
                raise NotFoundError(f"collection #{collection_id} does not exist")
            return row.name, row.wrapped_key

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
            oldest = {
                int(key): as_utc(value)
                for key, value in session.execute(
                    select(ImageRow.collection_id, func.min(ImageRow.ingested_at)).group_by(ImageRow.collection_id)
                )
            }
            rows = session.scalars(select(CollectionRow).order_by(CollectionRow.name)).all()
            return [
                CollectionInfo(
                    name=row.name,
                    purpose=row.purpose,
                    lawful_basis=row.lawful_basis,
                    biometric_condition=row.biometric_condition,
                    retention_days=row.retention_days,
                    created_at=as_utc(row.created_at),
                    image_count=images.get(row.id, 0),
                    face_count=faces.get(row.id, 0),
                    oldest_item_at=oldest.get(row.id),
                    people_allowed=row.people_allowed,
                    template_recipe=row.template_recipe,
                )
                for row in rows
            ]

    def collection_recipes(self) -> dict[int, str]:
        """The template recipe of each collection, by id."""
        with self._sessions() as session:
            query = select(CollectionRow.id, CollectionRow.template_recipe)
            return {row.id: row.template_recipe for row in session.execute(query)}

    def collection_recipe(self, collection_id: int) -> str:
        with self._sessions() as session:
            found = session.scalar(select(CollectionRow.template_recipe).where(CollectionRow.id == collection_id))
        if found is None:
            raise NotFoundError(f"collection #{collection_id} does not exist")
        return found

    def generation(self, collection_id: int) -> int:
        with self._sessions() as session:
            value = session.scalar(select(CollectionRow.index_generation).where(CollectionRow.id == collection_id))
        return value or 0

    # -- images and faces --------------------------------------------------------------------------

    def held_contents(self, collection_id: int, content_ids: Sequence[str]) -> set[str]:
        """Those of ``content_ids`` already held in the collection, in one query."""
        if not content_ids:
            return set()
        with self._sessions() as session:
            return _held_contents(session, collection_id, content_ids)

    def add_images(
        self, collection_id: int, images: Iterable[NewImage], seal: Seal, audit: Sequence[Event] = ()
    ) -> AddedFaces:
        """Write ``images`` and their (sealed) templates in one transaction; content already held is skipped.

        Rows go in as bulk INSERTs with RETURNING (one statement per table and batch), not through the ORM's
        unit of work, which cost the ingest's main process about 2 ms of CPU per image beside its workers."""
        now = datetime.now(UTC)
        batch = list(images)
        with self._sessions.begin() as session:
            # Row lock (PostgreSQL; SQLite has one writer anyway): concurrent writers to one collection bump its
            # generation one after the other, never both from the same value.
            collection = session.get(CollectionRow, collection_id, with_for_update=True)
            if collection is None:
                raise NotFoundError(f"collection #{collection_id} was deleted during the ingest")
            stale = sorted({image.embedder for image in batch if image.faces} - {collection.template_recipe})
            if stale:  # a reindex switched the collection's recipe after these images were analysed
                raise ConflictError(
                    f"collection {collection.name!r} was re-embedded with recipe {collection.template_recipe} while "
                    f"these images were analysed with {', '.join(stale)}; send or ingest them again"
                )
            held = _held_contents(session, collection_id, [image.content_id for image in batch])
            fresh: list[NewImage] = []
            for image in batch:
                if image.content_id not in held:
                    held.add(image.content_id)
                    fresh.append(image)
            image_ids = _inserted_ids(session, ImageRow, [_image_values(collection_id, i, now) for i in fresh])
            faces = [
                (image_id, image, face)
                for image_id, image in zip(image_ids, fresh, strict=True)
                for face in image.faces
            ]
            face_ids = _inserted_ids(
                session,
                FaceRow,
                [_face_values(collection_id, image_id, face, image.embedder, seal) for image_id, image, face in faces],
            )
            examples = [
                {"image_id": image_id, "subject_id": image.subject_id}
                for image_id, image in zip(image_ids, fresh, strict=True)
                if image.subject_id is not None
            ]
            if examples:
                session.execute(insert(SubjectExampleRow), examples)
            if face_ids:
                collection.index_generation += 1
            for entry in audit:
                self.audit.append(session, entry)
            session.flush()
            generation = collection.index_generation
        vectors = [np.asarray(face.embedding, dtype=np.float32) for _, _, face in faces]
        matrix = np.vstack(vectors) if vectors else np.zeros((0, 0), dtype=np.float32)
        return AddedFaces(ids=np.array(face_ids, dtype=np.int64), embeddings=matrix, generation=generation)

    def image_ids(self, collection_id: int) -> list[int]:
        with self._sessions() as session:
            return list(session.scalars(select(ImageRow.id).where(ImageRow.collection_id == collection_id)))

    def expired_image_ids(self, collection_id: int, now: datetime) -> tuple[list[int], datetime]:
        """Images of the collection ingested before its retention cutoff, and that cutoff."""
        with self._sessions() as session:
            days = session.scalar(select(CollectionRow.retention_days).where(CollectionRow.id == collection_id))
            cutoff = now - timedelta(days=days or 0)
            ids = session.scalars(
                select(ImageRow.id).where(ImageRow.collection_id == collection_id, ImageRow.ingested_at < cutoff)
            ).all()
        return list(ids), cutoff

    def remove_images(
        self, collection_id: int, image_ids: Iterable[int], audit: Callable[[int, int], Event] | None = None
    ) -> Removal:
        """Delete images and their faces in one transaction; ``audit(faces, images)`` makes its record."""
        wanted = [int(i) for i in image_ids]
        with self._sessions.begin() as session:
            collection = session.get(CollectionRow, collection_id, with_for_update=True)
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
            session.flush()
            drop_empty_people(session, [collection_id])
            if removed:
                collection.index_generation += 1
            self.owe_scrub(session)
            if audit is not None:
                self.audit.append(session, audit(len(removed), len(images)))
            generation = collection.index_generation
        return Removal(np.array(removed, dtype=np.int64), len(images), generation)

    def erase_faces(
        self, face_ids: Iterable[int], actor: str, reference: str, audit: Callable[[ErasureReceipt], Event]
    ) -> tuple[ErasureReceipt, dict[int, Removal]]:
        """Delete faces (and images left with no face) across collections, write the receipt and its audit
        entry, all in one transaction. Returns the receipt and what each collection's index must drop."""
        wanted = sorted({int(i) for i in face_ids})
        by_collection: dict[int, list[int]] = {}
        images_removed: dict[int, int] = {}
        with self._sessions.begin() as session:
            faces = session.scalars(select(FaceRow).where(FaceRow.id.in_(wanted))).all()
            missing = sorted(set(wanted) - {face.id for face in faces})
            if missing:
                raise NotFoundError(f"faces {missing} do not exist (already erased or never indexed)")
            touched_images = {face.image_id for face in faces}
            for face in faces:
                by_collection.setdefault(face.collection_id, []).append(face.id)
                session.delete(face)
            session.flush()
            for image in session.scalars(select(ImageRow).where(ImageRow.id.in_(touched_images))):
                remaining = session.scalar(
                    select(func.count()).select_from(FaceRow).where(FaceRow.image_id == image.id)
                )
                if remaining:
                    image.face_count = remaining
                else:
                    images_removed[image.collection_id] = images_removed.get(image.collection_id, 0) + 1
                    session.delete(image)
            drop_empty_people(session, list(by_collection))
            names = {}
            generations = {}
            for collection_id in sorted(by_collection):  # one lock order: concurrent erasures cannot deadlock
                collection = session.get(CollectionRow, collection_id, with_for_update=True)
                assert collection is not None
                collection.index_generation += 1
                names[collection_id] = collection.name
                generations[collection_id] = collection.index_generation
            receipt = ErasureReceipt(
                id=str(uuid.uuid4()),
                at=datetime.now(UTC),
                actor=actor,
                reference=reference,
                faces_removed=len(faces),
                images_removed=sum(images_removed.values()),
                by_collection={names[c]: len(ids) for c, ids in by_collection.items()},
                face_ids=wanted,
            )
            session.add(
                ErasureReceiptRow(
                    id=receipt.id,
                    at=receipt.at,
                    actor=actor,
                    reference=reference,
                    summary={
                        "faces_removed": receipt.faces_removed,
                        "images_removed": receipt.images_removed,
                        "by_collection": receipt.by_collection,
                        "face_ids": receipt.face_ids,
                    },
                )
            )
            self.owe_scrub(session)
            self.audit.append(session, audit(receipt))
        removals = {
            collection_id: Removal(
                np.array(ids, dtype=np.int64), images_removed.get(collection_id, 0), generations[collection_id]
            )
            for collection_id, ids in by_collection.items()
        }
        return receipt, removals

    def face_ids_of_images(self, image_ids: Iterable[int]) -> list[int]:
        wanted = [int(i) for i in image_ids]
        with self._sessions() as session:
            found_images = set(session.scalars(select(ImageRow.id).where(ImageRow.id.in_(wanted))))
            missing = sorted(set(wanted) - found_images)
            if missing:
                raise NotFoundError(f"images {missing} do not exist (already erased or never indexed)")
            return list(session.scalars(select(FaceRow.id).where(FaceRow.image_id.in_(wanted))))

    def embeddings(
        self, collection_id: int, unseal: Unseal, face_ids: Sequence[int] | None = None
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """Ids and (unsealed) templates of the collection's faces (all, or those among ``face_ids``)."""
        query = select(FaceRow.id, FaceRow.embedding).where(FaceRow.collection_id == collection_id)
        if face_ids is not None:
            query = query.where(FaceRow.id.in_([int(i) for i in face_ids]))
        with self._sessions() as session:
            rows = session.execute(query.order_by(FaceRow.id)).all()
        ids = np.array([row[0] for row in rows], dtype=np.int64)
        if not rows:
            return ids, np.zeros((0, 0), dtype=np.float32)
        return ids, np.vstack([unseal(row[1]) for row in rows]).astype(np.float32)

    def sealed_embeddings(self) -> list[bytes]:
        """Every stored template as it lies on disk (for tests and audits of erasure)."""
        with self._sessions() as session:
            return list(session.scalars(select(FaceRow.embedding)))

    def face_ids(self, collection_id: int) -> npt.NDArray[np.int64]:
        with self._sessions() as session:
            ids = session.scalars(select(FaceRow.id).where(FaceRow.collection_id == collection_id)).all()
        return np.array(ids, dtype=np.int64)

    def face_details(self, face_ids: Iterable[int]) -> dict[int, FaceDetails]:
        wanted = sorted({int(i) for i in face_ids})
        if not wanted:
            return {}
        query = (
            select(FaceRow, ImageRow, CollectionRow)
            .join(ImageRow, FaceRow.image_id == ImageRow.id)
            .join(CollectionRow, FaceRow.collection_id == CollectionRow.id)
            .where(FaceRow.id.in_(wanted))
        )
        with self._sessions() as session:
            return {
                face.id: FaceDetails(
                    face_id=face.id,
                    image_id=image.id,
                    collection=collection.name,
                    collection_purpose=collection.purpose,
                    lawful_basis=collection.lawful_basis,
                    retention_days=collection.retention_days,
                    image_path=image.source_path,
                    content_id=image.content_id,
                    box=Box(face.left, face.top, face.right, face.bottom),
                    ingested_at=as_utc(image.ingested_at),
                )
                for face, image, collection in session.execute(query).all()
            }

    def image_id_of(self, collection_id: int, content_id: str) -> int:
        with self._sessions() as session:
            found = session.scalar(
                select(ImageRow.id).where(ImageRow.collection_id == collection_id, ImageRow.content_id == content_id)
            )
        if found is None:
            raise NotFoundError(f"no image with content {content_id[:12]} in collection #{collection_id}")
        return found

    def uploaded_content_ids(self) -> dict[int, list[str]]:
        """Content ids of the images that came in as uploads, per collection id (every collection listed)."""
        held: dict[int, list[str]] = {collection_id: [] for collection_id in self.collection_names()}
        query = select(ImageRow.collection_id, ImageRow.content_id).where(ImageRow.source_path.startswith("upload:"))
        with self._sessions() as session:
            for collection_id, content_id in session.execute(query):
                held.setdefault(collection_id, []).append(content_id)
        return held

    def image_source(self, image_id: int) -> tuple[int, str, str]:
        """(collection id, source, content id) of an image."""
        with self._sessions() as session:
            row = session.get(ImageRow, image_id)
            if row is None:
                raise NotFoundError(f"image {image_id} does not exist (erased, purged or never indexed)")
            return row.collection_id, row.source_path, row.content_id

    def template_recipes(self) -> list[str]:
        """The distinct recipes of the templates held (``templates.template_recipe``)."""
        with self._sessions() as session:
            return sorted(session.scalars(select(FaceRow.embedder).distinct()))

    def counts(self) -> tuple[int, int]:
        with self._sessions() as session:
            images = session.scalar(select(func.count()).select_from(ImageRow)) or 0
            faces = session.scalar(select(func.count()).select_from(FaceRow)) or 0
        return images, faces

    def erasure_receipts(self) -> int:
        with self._sessions() as session:
            return session.scalar(select(func.count()).select_from(ErasureReceiptRow)) or 0

    # -- objections --------------------------------------------------------------------------------

    def add_protected_template(
        self,
        sealed_by_recipe: Mapping[str, bytes],
        agreement_reference: str,
        recorded_by: str,
        audit: Callable[[int], Event],
    ) -> int:
        """One protected template per recipe (one person's face), with one audit entry naming the first's id."""
        now = datetime.now(UTC)
        with self._sessions.begin() as session:
            rows = [
                ProtectedTemplateRow(
                    created_at=now,
                    agreement_reference=agreement_reference,
                    recorded_by=recorded_by,
                    template_recipe=recipe,
                    embedding=sealed,
                )
                for recipe, sealed in sealed_by_recipe.items()
            ]
            session.add_all(rows)
            session.flush()
            self.audit.append(session, audit(rows[0].id))
            return rows[0].id

    def protected_templates(self, recipe: str) -> list[bytes]:
        """The protected templates of ``recipe``."""
        query = select(ProtectedTemplateRow.embedding).where(ProtectedTemplateRow.template_recipe == recipe)
        with self._sessions() as session:
            return list(session.scalars(query.order_by(ProtectedTemplateRow.id)))


def drop_empty_people(session: Session, collection_ids: Sequence[int]) -> int:
    """Delete the people (with their names) left without faces: erasure and retention win over grouping."""
    occupied = select(FaceRow.person_id).where(FaceRow.person_id.is_not(None))
    result = session.execute(
        delete(PersonRow).where(PersonRow.collection_id.in_(collection_ids), PersonRow.id.not_in(occupied))
    )
    return int(getattr(result, "rowcount", 0) or 0)


def _held_contents(session: Session, collection_id: int, content_ids: Sequence[str]) -> set[str]:
    held: set[str] = set()
    for start in range(0, len(content_ids), CONTENT_QUERY_CHUNK):
        chunk = content_ids[start : start + CONTENT_QUERY_CHUNK]
        query = select(ImageRow.content_id).where(
            ImageRow.collection_id == collection_id, ImageRow.content_id.in_(chunk)
        )
        held.update(session.scalars(query))
    return held


def _inserted_ids(session: Session, table: type[ImageRow] | type[FaceRow], rows: list[dict[str, Any]]) -> list[int]:
    """The ids of ``rows`` inserted into ``table`` in one bulk statement, in the order of ``rows``."""
    if not rows:
        return []
    statement = insert(table).returning(table.id, sort_by_parameter_order=True)
    return list(session.scalars(statement, rows))


def _image_values(collection_id: int, image: NewImage, now: datetime) -> dict[str, Any]:
    return {
        "collection_id": collection_id,
        "content_id": image.content_id,
        "source_path": utf8_text(image.source_path),  # a name that is not UTF-8 as core/paths.py writes it
        "width": image.width,
        "height": image.height,
        "format": image.format,
        "byte_size": image.byte_size,
        "face_count": len(image.faces),
        "ingested_at": now,
    }


def _face_values(collection_id: int, image_id: int, face: AnalysedFace, embedder: str, seal: Seal) -> dict[str, Any]:
    detection = face.detection
    return {
        "image_id": image_id,
        "collection_id": collection_id,
        "left": detection.box.left,
        "top": detection.box.top,
        "right": detection.box.right,
        "bottom": detection.box.bottom,
        "score": detection.score,
        "landmarks": [list(point) for point in detection.landmarks],
        "rotation": detection.rotation,
        "sharpness": face.sharpness,
        "embedder": embedder,
        "embedding": seal(face.embedding),
    }


def _count_by(session: Session, column: Any) -> dict[int, int]:
    query = select(column, func.count()).group_by(column)
    return {int(key): int(count) for key, count in session.execute(query)}


def as_utc(moment: datetime) -> datetime:
    """SQLite drops the zone on the way back; every stored time is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
