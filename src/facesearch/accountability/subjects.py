"""Named subjects: people enrolled with example faces, each with the consent that allows it.

Subjects live in their own collection (``Settings.subjects_collection``), whose lawful basis is usually
consent. Enrolment records who consented, when, and to what; every example is an upload kept with its
subject. Withdrawing consent erases the subject's faces through the same path as an erasure request
(with a receipt), then the subject itself. A name given to a person by clustering is not an enrolment.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from facesearch.accountability.rights import SubjectRights
from facesearch.core.errors import ConflictError, InvalidValueError, NotFoundError
from facesearch.core.results import UploadedImage
from facesearch.engine.engine import Engine
from facesearch.engine.uploads import PreparedUploads
from facesearch.safeguards.audit import Actor, SubjectEvent
from facesearch.safeguards.governance import require_purpose
from facesearch.store.catalog.schema import SubjectExampleRow, SubjectRow
from facesearch.store.catalog.store import ErasureReceipt, as_utc

MAX_NAME_LENGTH = 200
CLOCK_SKEW = timedelta(minutes=5)
"""How far in the future a consent's time may be (the caller's clock ahead of ours); no further."""


class SubjectNotFoundError(NotFoundError):
    """No subject of that name is enrolled in the collection."""


class SubjectExistsError(ConflictError):
    """A subject of that name is enrolled already."""


@dataclass(frozen=True)
class Consent:
    given_by: str
    """Who consented: the subject, or who may consent for them."""
    scope: str
    """To what: the processing the consent covers."""
    at: datetime
    attestation: str = ""
    """Where the consent is held, when an enrolling key's attestation stands for it: recorded in the audit log,
    where ``given_by`` (which may name a person) is not."""

    def __post_init__(self) -> None:
        if len(self.given_by.strip()) < 2:
            raise InvalidValueError("consent_given_by is required: who gave the consent to enrol this subject")
        if len(self.scope.strip()) < 10:
            raise InvalidValueError("consent_scope is required: state in a sentence what the subject consented to")
        at = self.at if self.at.tzinfo else self.at.replace(tzinfo=UTC)
        if at > datetime.now(UTC) + CLOCK_SKEW:
            raise InvalidValueError(
                f"consent_at {self.at.isoformat()} is in the future; give the date consent was given (or none: now)"
            )


@dataclass(frozen=True)
class SubjectInfo:
    id: int
    name: str
    collection: str
    consent_given_by: str
    consent_scope: str
    consent_at: datetime
    recorded_by: str
    created_at: datetime
    examples: int


@dataclass(frozen=True)
class PreparedExample:
    """An example photo analysed for a subject, not yet written."""

    subject: str
    subject_id: int | None
    """None: a subject to enrol (with ``enrol_with``) as the example is written."""
    uploads: PreparedUploads
    enrol_with: Consent | None = None


@dataclass(frozen=True)
class Withdrawal:
    subject: str
    receipt: ErasureReceipt | None
    """None when the subject had no example left to erase."""


class Subjects:
    def __init__(self, engine: Engine, collection: str | None = None) -> None:
        self.engine = engine
        self.collection = collection or engine.settings.subjects_collection

    def _collection_id(self) -> int:
        try:
            return self.engine.catalog.collection_id(self.collection)
        except NotFoundError:
            raise NotFoundError(
                f"the subjects collection {self.collection!r} does not exist; an administrator creates it first, "
                f"e.g. facesearch collection create {self.collection} --basis consent --condition explicit-consent"
            ) from None

    def enrol(self, name: str, consent: Consent, actor: Actor) -> SubjectInfo:
        name = _check_name(name)
        collection_id = self._collection_id()
        now = datetime.now(UTC)
        with self.engine.catalog.sessions.begin() as session:
            if session.scalar(select(SubjectRow.id).where(_named(collection_id, name))) is not None:
                raise SubjectExistsError(f"subject {name!r} is already enrolled; add examples to it instead")
            row = SubjectRow(
                collection_id=collection_id,
                name=name,
                consent_given_by=consent.given_by.strip(),
                consent_scope=consent.scope.strip(),
                consent_at=consent.at,
                recorded_by=actor.name,
                created_at=now,
            )
            session.add(row)
            session.flush()
            event = SubjectEvent(
                actor=actor,
                purpose=row.consent_scope,
                collection=self.collection,
                change="enrolled",
                subject_id=row.id,
                consent_scope=row.consent_scope,
                consent_at=consent.at.isoformat(),
                consent_attestation=consent.attestation,
            )
            self.engine.catalog.audit.append(session, event)
        return self.get(name)

    def all(self) -> list[SubjectInfo]:
        collection_id = self._collection_id()
        with self.engine.catalog.sessions() as session:
            rows = session.scalars(
                select(SubjectRow).where(SubjectRow.collection_id == collection_id).order_by(SubjectRow.name)
            ).all()
            counts = _example_counts(session, [row.id for row in rows])
            return [self._info(row, counts.get(row.id, 0)) for row in rows]

    def get(self, name: str) -> SubjectInfo:
        row_id = self._id(name)
        with self.engine.catalog.sessions() as session:
            row = session.get(SubjectRow, row_id)
            assert row is not None
            return self._info(row, _example_counts(session, [row_id]).get(row_id, 0))

    def add_example(
        self,
        name: str,
        filename: str,
        data: bytes,
        actor: Actor,
        *,
        only_face_above: float | None = None,
        enrol_with: Consent | None = None,
    ) -> UploadedImage:
        """Index the largest face of an uploaded photo as an example of the subject; with ``only_face_above`` (a
        detection score), the photo must show exactly one face scoring above it. A subject not enrolled yet is
        enrolled with ``enrol_with`` (as CompreFace does), once the photo has passed, or refused without it."""
        prepared = self.prepare_example(name, filename, data, only_face_above=only_face_above, enrol_with=enrol_with)
        return self.write_example(prepared, actor)

    def prepare_example(
        self,
        name: str,
        filename: str,
        data: bytes,
        *,
        only_face_above: float | None = None,
        enrol_with: Consent | None = None,
    ) -> PreparedExample:
        """Check and analyse an example photo (see ``add_example``), writing nothing: the service does this before
        taking its lock."""
        subject_id = self._id_or_none(name)
        if subject_id is None and enrol_with is None:
            self._id(name)  # refused, naming the subject
        uploads = self.engine.prepare_uploads(
            self.collection, [(filename, data)], subject_id=0, strict=True, only_face_above=only_face_above
        )
        return PreparedExample(name, subject_id, uploads, enrol_with)

    def write_example(self, prepared: PreparedExample, actor: Actor) -> UploadedImage:
        """Write a prepared example, if its subject is still the one it was analysed for (enrolling it first where
        it was to be enrolled)."""
        subject_id = self._id_or_none(prepared.subject)
        if prepared.subject_id is not None and subject_id != prepared.subject_id:
            raise ConflictError(
                f"subject {prepared.subject!r} was withdrawn (and perhaps enrolled again) while the photo was "
                "analysed; send the example again"
            )
        if subject_id is None:
            if prepared.enrol_with is None:
                self._id(prepared.subject)  # refused, naming the subject
            assert prepared.enrol_with is not None
            subject_id = self.enrol(prepared.subject, prepared.enrol_with, actor).id
        uploads = prepared.uploads
        uploads.analysed = [(replace(image, subject_id=subject_id), kept) for image, kept in uploads.analysed]
        uploaded = self.engine.ingest_uploads(self.collection, uploads, actor, subject_id=subject_id, strict=True)
        return uploaded.images[0]

    def example_images(self, name: str | None = None) -> list[tuple[int, str]]:
        """(image id, subject name) of every example (of one subject, or of all)."""
        collection_id = self._collection_id()
        query = (
            select(SubjectExampleRow.image_id, SubjectRow.name)
            .join(SubjectRow, SubjectRow.id == SubjectExampleRow.subject_id)
            .where(SubjectRow.collection_id == collection_id)
            .order_by(SubjectExampleRow.image_id)
        )
        if name is not None:
            query = query.where(SubjectRow.id == self._id(name))
        with self.engine.catalog.sessions() as session:
            return [(image_id, subject) for image_id, subject in session.execute(query)]

    def subject_of_image(self, image_id: int) -> str | None:
        """The subject of this collection that example ``image_id`` stands for, if any."""
        collection_id = self._collection_id()
        with self.engine.catalog.sessions() as session:
            return session.scalar(
                select(SubjectRow.name)
                .join(SubjectExampleRow, SubjectRow.id == SubjectExampleRow.subject_id)
                .where(SubjectExampleRow.image_id == image_id, SubjectRow.collection_id == collection_id)
            )

    def rename(self, name: str, new_name: str, actor: Actor) -> SubjectInfo:
        subject_id = self._id(name)
        new_name = _check_name(new_name)
        with self.engine.catalog.sessions.begin() as session:
            row = session.get(SubjectRow, subject_id)
            assert row is not None
            if new_name != name and session.scalar(select(SubjectRow.id).where(_named(row.collection_id, new_name))):
                raise ConflictError(f"subject {new_name!r} already exists; choose another name")
            row.name = new_name
            event = SubjectEvent(actor=actor, collection=self.collection, change="renamed", subject_id=subject_id)
            self.engine.catalog.audit.append(session, event)
        return self.get(new_name)

    def remove_examples(self, image_ids: list[int], actor: Actor, reason: str) -> ErasureReceipt:
        """Erase example images (all their faces and bytes), with a receipt."""
        return SubjectRights(self.engine).erase(actor, reason, image_ids=image_ids).receipt

    def withdraw(self, name: str, actor: Actor, reason: str) -> Withdrawal:
        """Consent withdrawn: erase every example of the subject (receipt), then the subject and its record."""
        stated = require_purpose(reason, "withdrawal of consent", asked_as="the 'reason' parameter")
        subject_id = self._id(name)
        image_ids = [image_id for image_id, _ in self.example_images(name)]
        receipt = self.remove_examples(image_ids, actor, stated) if image_ids else None
        with self.engine.catalog.sessions.begin() as session:
            row = session.get(SubjectRow, subject_id)
            if row is not None:
                session.delete(row)
                self.engine.catalog.owe_scrub(session)
            event = SubjectEvent(
                actor=actor,
                purpose=stated,
                collection=self.collection,
                change="consent-withdrawn",
                subject_id=subject_id,
                receipt_id=receipt.id if receipt else "",
            )
            self.engine.catalog.audit.append(session, event)
        self.engine.catalog.shred_deleted_bytes()
        return Withdrawal(name, receipt)

    def is_enrolled(self, name: str) -> bool:
        return self._id_or_none(name) is not None

    def _id(self, name: str) -> int:
        found = self._id_or_none(name)
        if found is None:
            raise SubjectNotFoundError(f"subject {name!r} is not enrolled in {self.collection!r}; enrol them first")
        return found

    def _id_or_none(self, name: str) -> int | None:
        collection_id = self._collection_id()
        with self.engine.catalog.sessions() as session:
            found: int | None = session.scalar(select(SubjectRow.id).where(_named(collection_id, name)))
        return found

    def _info(self, row: SubjectRow, examples: int) -> SubjectInfo:
        return SubjectInfo(
            id=row.id,
            name=row.name,
            collection=self.collection,
            consent_given_by=row.consent_given_by,
            consent_scope=row.consent_scope,
            consent_at=as_utc(row.consent_at),
            recorded_by=row.recorded_by,
            created_at=as_utc(row.created_at),
            examples=examples,
        )


def _check_name(name: str) -> str:
    stated = name.strip()
    if not stated or len(stated) > MAX_NAME_LENGTH:
        raise InvalidValueError(f"a subject's name must be 1-{MAX_NAME_LENGTH} characters")
    return stated


def _named(collection_id: int, name: str) -> ColumnElement[bool]:
    return (SubjectRow.collection_id == collection_id) & (SubjectRow.name == name.strip())


def _example_counts(session: Session, subject_ids: list[int]) -> dict[int, int]:
    query = (
        select(SubjectExampleRow.subject_id, func.count())
        .where(SubjectExampleRow.subject_id.in_(subject_ids))
        .group_by(SubjectExampleRow.subject_id)
    )
    return {subject_id: count for subject_id, count in session.execute(query)}
