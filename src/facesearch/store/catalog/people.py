"""Reads and writes of people (groups of faces): assignments from clustering, and corrections by a person.
Every write is one transaction with its audit entry."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from facesearch.core.errors import InvalidValueError, NotFoundError
from facesearch.core.records import Box
from facesearch.safeguards.audit import Event
from facesearch.store.catalog.audit_log import AuditLog
from facesearch.store.catalog.schema import CollectionRow, FaceRow, ImageRow, PersonRow
from facesearch.store.catalog.store import Catalog, drop_empty_people

Unseal = Callable[[bytes], npt.NDArray[np.float32]]


@dataclass(frozen=True)
class ClusterInput:
    """The collection's faces as clustering sees them."""

    face_ids: npt.NDArray[np.int64]
    person_ids: npt.NDArray[np.int64]
    """-1 where a face belongs to no person yet."""
    locked: npt.NDArray[np.bool_]
    vectors: npt.NDArray[np.float32]


@dataclass(frozen=True)
class FaceQuality:
    face_id: int
    width: int
    height: int
    score: float
    sharpness: float


@dataclass(frozen=True)
class PersonFace:
    face_id: int
    image_id: int
    image_path: str
    box: Box
    score: float
    locked: bool


@dataclass(frozen=True)
class PersonInfo:
    id: int
    collection: str
    name: str
    hidden: bool
    face_count: int
    representative: PersonFace | None


@dataclass(frozen=True)
class PersonDetail:
    info: PersonInfo
    faces: list[PersonFace]


class PeopleStore:
    def __init__(self, catalog: Catalog) -> None:
        self._sessions = catalog.sessions
        self._audit: AuditLog = catalog.audit

    def cluster_state(self, collection_id: int) -> int:
        """A fingerprint of what clustering reads and writes: the collection's faces, their people and which of
        them a person placed by hand; it differs once any of them changed."""
        query = (
            select(FaceRow.id, FaceRow.person_id, FaceRow.person_locked)
            .where(FaceRow.collection_id == collection_id)
            .order_by(FaceRow.id)
        )
        with self._sessions() as session:
            return hash(
                tuple((face_id, person_id, bool(locked)) for face_id, person_id, locked in session.execute(query))
            )

    def qualities(self, collection_id: int) -> list[FaceQuality]:
        query = (
            select(
                FaceRow.id, FaceRow.left, FaceRow.top, FaceRow.right, FaceRow.bottom, FaceRow.score, FaceRow.sharpness
            )
            .where(FaceRow.collection_id == collection_id)
            .order_by(FaceRow.id)
        )
        with self._sessions() as session:
            return [
                FaceQuality(face_id, right - left, bottom - top, score, sharpness)
                for face_id, left, top, right, bottom, score, sharpness in session.execute(query)
            ]

    def cluster_input(self, collection_id: int, face_ids: Sequence[int], unseal: Unseal) -> ClusterInput:
        wanted = [int(i) for i in face_ids]
        query = (
            select(FaceRow.id, FaceRow.person_id, FaceRow.person_locked, FaceRow.embedding)
            .where(FaceRow.collection_id == collection_id, FaceRow.id.in_(wanted))
            .order_by(FaceRow.id)
        )
        with self._sessions() as session:
            rows = session.execute(query).all()
        return ClusterInput(
            face_ids=np.array([r[0] for r in rows], dtype=np.int64),
            person_ids=np.array([-1 if r[1] is None else r[1] for r in rows], dtype=np.int64),
            locked=np.array([bool(r[2]) for r in rows], dtype=bool),
            vectors=np.vstack([unseal(r[3]) for r in rows]) if rows else np.zeros((0, 128), dtype=np.float32),
        )

    def assign(
        self,
        collection_id: int,
        assignment: Mapping[int, int],
        new_groups: Mapping[int, Sequence[int]],
        out_of_people: Sequence[int],
        audit: Callable[[int, int], Event],
    ) -> tuple[int, int]:
        """Put faces into existing people (``assignment``: face -> person), create one person per new group,
        take ``out_of_people`` faces out of any person, drop people left empty; returns (created, dropped)."""
        now = datetime.now(UTC)
        with self._sessions.begin() as session:
            for face_id, person_id in assignment.items():
                session.execute(update(FaceRow).where(FaceRow.id == face_id).values(person_id=person_id))
            for members in new_groups.values():
                person = PersonRow(collection_id=collection_id, created_at=now)
                session.add(person)
                session.flush()
                session.execute(update(FaceRow).where(FaceRow.id.in_(list(members))).values(person_id=person.id))
            if out_of_people:
                session.execute(
                    update(FaceRow)
                    .where(FaceRow.id.in_(list(out_of_people)))
                    .values(person_id=None, person_locked=False)
                )
            session.flush()
            dropped = drop_empty_people(session, [collection_id])
            self._audit.append(session, audit(len(new_groups), dropped))
        return len(new_groups), dropped

    def people(self, collection_id: int, include_hidden: bool) -> list[PersonInfo]:
        with self._sessions() as session:
            query = select(PersonRow).where(PersonRow.collection_id == collection_id)
            if not include_hidden:
                query = query.where(PersonRow.hidden.is_(False))
            people = session.scalars(query).all()
            infos = [self._info(session, person) for person in people]
        return sorted(infos, key=lambda info: (-info.face_count, info.id))

    def people_count(self, collection_id: int) -> int:
        """How many people the collection holds, hidden ones included (one query, not one per person)."""
        query = select(func.count()).select_from(PersonRow).where(PersonRow.collection_id == collection_id)
        with self._sessions() as session:
            return session.scalar(query) or 0

    def faces_alone(self, collection_id: int) -> int:
        """How many of the collection's people hold a single face: faces that grouping left on their own."""
        sizes = (
            select(FaceRow.person_id)
            .join(PersonRow, FaceRow.person_id == PersonRow.id)
            .where(PersonRow.collection_id == collection_id)
            .group_by(FaceRow.person_id)
            .having(func.count() == 1)
            .subquery()
        )
        with self._sessions() as session:
            return session.scalar(select(func.count()).select_from(sizes)) or 0

    def person(self, person_id: int) -> PersonDetail:
        with self._sessions() as session:
            person = self._get(session, person_id)
            return PersonDetail(self._info(session, person), self._faces(session, person_id))

    def rename(self, person_id: int, name: str, audit: Callable[[str], Event]) -> None:
        with self._sessions.begin() as session:
            person = self._get(session, person_id)
            person.name = name.strip()
            self._audit.append(session, audit(self._collection_name(session, person)))

    def hide(self, person_id: int, hidden: bool, audit: Callable[[str], Event]) -> None:
        with self._sessions.begin() as session:
            person = self._get(session, person_id)
            person.hidden = hidden
            self._audit.append(session, audit(self._collection_name(session, person)))

    def merge(self, keep_id: int, other_id: int, audit: Callable[[str], Event]) -> None:
        """Every face of ``other_id`` joins ``keep_id``; all of them are locked there."""
        if keep_id == other_id:
            raise InvalidValueError(f"person {keep_id} cannot be merged with itself")
        with self._sessions.begin() as session:
            keep, other = self._get(session, keep_id), self._get(session, other_id)
            if keep.collection_id != other.collection_id:
                raise InvalidValueError("people from different collections cannot be merged")
            keep.name = keep.name or other.name
            session.execute(
                update(FaceRow)
                .where(FaceRow.person_id.in_([keep_id, other_id]))
                .values(person_id=keep_id, person_locked=True)
            )
            session.delete(other)
            self._audit.append(session, audit(self._collection_name(session, keep)))

    def split(self, person_id: int, face_ids: Sequence[int], audit: Callable[[str, int], Event]) -> int:
        """Move ``face_ids`` out of ``person_id`` into a new person; both sides are locked."""
        wanted = sorted({int(i) for i in face_ids})
        with self._sessions.begin() as session:
            person = self._get(session, person_id)
            members = set(session.scalars(select(FaceRow.id).where(FaceRow.person_id == person_id)))
            strangers = sorted(set(wanted) - members)
            if strangers:
                raise InvalidValueError(f"faces {strangers} are not in person {person_id}")
            if set(wanted) == members:
                raise InvalidValueError("a split must leave at least one face with the original person")
            new = PersonRow(collection_id=person.collection_id, created_at=datetime.now(UTC))
            session.add(new)
            session.flush()
            session.execute(update(FaceRow).where(FaceRow.person_id == person_id).values(person_locked=True))
            session.execute(update(FaceRow).where(FaceRow.id.in_(wanted)).values(person_id=new.id, person_locked=True))
            self._audit.append(session, audit(self._collection_name(session, person), new.id))
            return new.id

    def _get(self, session: Session, person_id: int) -> PersonRow:
        person = session.get(PersonRow, person_id)
        if person is None:
            raise NotFoundError(f"person {person_id} does not exist; see 'facesearch people list'")
        return person

    def _collection_name(self, session: Session, person: PersonRow) -> str:
        return session.scalar(select(CollectionRow.name).where(CollectionRow.id == person.collection_id)) or ""

    def _faces(self, session: Session, person_id: int) -> list[PersonFace]:
        query = (
            select(FaceRow, ImageRow.source_path)
            .join(ImageRow, FaceRow.image_id == ImageRow.id)
            .where(FaceRow.person_id == person_id)
            .order_by(FaceRow.score.desc(), FaceRow.id)
        )
        return [
            PersonFace(
                face.id,
                face.image_id,
                path,
                Box(face.left, face.top, face.right, face.bottom),
                face.score,
                face.person_locked,
            )
            for face, path in session.execute(query).all()
        ]

    def _info(self, session: Session, person: PersonRow) -> PersonInfo:
        count = session.scalar(select(func.count()).select_from(FaceRow).where(FaceRow.person_id == person.id)) or 0
        faces = self._faces(session, person.id)
        # The representative is the most confidently detected of the largest faces.
        representative = max(faces, key=lambda f: (f.box.width * f.box.height, f.score)) if faces else None
        return PersonInfo(
            person.id, self._collection_name(session, person), person.name, person.hidden, count, representative
        )
