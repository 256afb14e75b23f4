"""The audit log: every action on faces is a typed event, appended to a hash chain in the catalog.

Each entry stores the sha256 of the entry before it and its own hash over its content, so deleting,
reordering or editing any entry breaks the chain at that entry, and ``verify`` names it. The head
(last sequence number and hash) is kept in ``meta`` in the same transaction, so dropping entries from
the end is detected too. Someone able to rewrite the whole database could recompute every hash: to
guard against that, copy the head that ``verify`` prints somewhere else (a ticket, an email) from time
to time; a later verify shows whether the chain still leads to it.

Events hold ids, counts and hashes, never an image, a thumbnail or a template.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from facesearch.catalog.schema import AuditRow, MetaRow
from facesearch.errors import InvalidValueError

GENESIS = "0" * 64
HEAD_KEY = "audit_head"


class ActorKind(StrEnum):
    USER = "user"
    API_KEY = "api-key"
    SYSTEM = "system"


@dataclass(frozen=True)
class Actor:
    """Who asks: a person (by account name) or an API key's owner."""

    name: str
    kind: ActorKind = ActorKind.USER

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise InvalidValueError("an actor name is required: pass --actor or set FACESEARCH_ACTOR")


RETENTION_ACTOR = Actor("facesearch retention", ActorKind.SYSTEM)


class Action(StrEnum):
    INGEST = "ingest"
    SEARCH = "search"
    VERIFY = "verify"
    EXPORT = "export"
    PURGE = "purge"
    ERASURE = "erasure"
    ACCESS_REQUEST = "access-request"
    OBJECTION = "objection"
    OBJECTION_SKIP = "objection-skip"
    CONFIGURATION = "configuration"
    PEOPLE = "people"
    SUBJECT = "subject"
    REFUSAL = "refusal"


@dataclass(frozen=True)
class Event:
    """Fields every event has; subclasses add their own and name their action."""

    action: ClassVar[Action]
    actor: Actor
    purpose: str = ""
    collection: str = ""

    def details(self) -> dict[str, Any]:
        values = asdict(self)
        for common in ("actor", "purpose", "collection"):
            values.pop(common)
        return values


@dataclass(frozen=True)
class IngestEvent(Event):
    action = Action.INGEST
    files_seen: int = 0
    images_added: int = 0
    faces_added: int = 0
    failed: int = 0


@dataclass(frozen=True)
class SearchEvent(Event):
    action = Action.SEARCH
    probe_sha256: str = ""
    collections: list[str] = field(default_factory=list)
    threshold: float = 0.0
    top_k: int = 0
    match_count: int = 0
    match_face_ids: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class VerifyEvent(Event):
    action = Action.VERIFY
    a_sha256: str = ""
    b_sha256: str = ""
    distance: float = 0.0
    match: bool = False


@dataclass(frozen=True)
class ExportEvent(Event):
    action = Action.EXPORT
    what: str = ""
    destination: str = ""
    items: int = 0


@dataclass(frozen=True)
class PurgeEvent(Event):
    action = Action.PURGE
    cutoff: str = ""
    images_removed: int = 0
    faces_removed: int = 0
    automatic: bool = False


@dataclass(frozen=True)
class ErasureEvent(Event):
    action = Action.ERASURE
    receipt_id: str = ""
    requested_by: str = ""
    probe_sha256: str = ""
    faces_removed: int = 0
    images_removed: int = 0
    face_ids: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class AccessRequestEvent(Event):
    action = Action.ACCESS_REQUEST
    probe_sha256: str = ""
    match_count: int = 0
    match_face_ids: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class ObjectionEvent(Event):
    action = Action.OBJECTION
    protected_template_id: int = 0
    agreement_reference: str = ""


@dataclass(frozen=True)
class ObjectionSkipEvent(Event):
    action = Action.OBJECTION_SKIP
    source_path: str = ""
    faces_skipped: int = 0


@dataclass(frozen=True)
class ConfigurationEvent(Event):
    action = Action.CONFIGURATION
    change: str = ""
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PeopleEvent(Event):
    """A clustering run or a correction (name, hide, merge, split): ids and counts, never a name."""

    action = Action.PEOPLE
    change: str = ""
    person_id: int = 0
    other_person_id: int = 0
    faces: int = 0
    faces_moved: int = 0
    people_created: int = 0
    people_dropped: int = 0
    low_quality: int = 0


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    at: str
    actor: str
    actor_kind: str
    action: str
    purpose: str
    collection: str
    details: dict[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class ChainCheck:
    ok: bool
    entries: int
    head_hash: str
    first_broken_seq: int | None = None
    problem: str = ""


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def entry_hash(
    seq: int,
    at: str,
    actor: str,
    actor_kind: str,
    action: str,
    purpose: str,
    collection: str,
    details: str,
    prev_hash: str,
) -> str:
    content = [seq, at, actor, actor_kind, action, purpose, collection, details, prev_hash]
    return hashlib.sha256(_canonical(content).encode()).hexdigest()


class AuditLog:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def append(self, session: Session, event: Event, now: datetime | None = None) -> AuditEntry:
        """Append ``event`` inside the caller's transaction (so the action and its record commit together)."""
        head = session.get(MetaRow, HEAD_KEY)
        seq, prev_hash = (0, GENESIS) if head is None else _parse_head(head.value)
        at = (now or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="microseconds")
        details = _canonical(event.details())
        values: dict[str, Any] = {
            "seq": seq + 1,
            "at": at,
            "actor": event.actor.name,
            "actor_kind": event.actor.kind.value,
            "action": event.action.value,
            "purpose": event.purpose,
            "collection": event.collection,
            "details": details,
            "prev_hash": prev_hash,
        }
        digest = entry_hash(**values)
        session.add(AuditRow(**values, hash=digest))
        if head is None:
            session.add(MetaRow(key=HEAD_KEY, value=f"{seq + 1}:{digest}"))
        else:
            head.value = f"{seq + 1}:{digest}"
        session.flush()
        return _entry(AuditRow(**values, hash=digest))

    def record(self, event: Event, now: datetime | None = None) -> AuditEntry:
        """Append ``event`` in a transaction of its own, retrying if another writer appended first."""
        for _ in range(5):
            try:
                with self._sessions.begin() as session:
                    return self.append(session, event, now)
            except IntegrityError:
                continue
        raise RuntimeError("could not append to the audit log after 5 attempts (too many concurrent writers)")

    def entries(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        purpose: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[AuditEntry]:
        query = select(AuditRow).order_by(AuditRow.seq)
        if actor:
            query = query.where(AuditRow.actor == actor)
        if action:
            query = query.where(AuditRow.action == Action(action).value)
        if purpose:
            query = query.where(AuditRow.purpose.contains(purpose))
        if since:
            query = query.where(AuditRow.at >= since.astimezone(UTC).isoformat(timespec="microseconds"))
        if until:
            query = query.where(AuditRow.at < until.astimezone(UTC).isoformat(timespec="microseconds"))
        with self._sessions() as session:
            return [_entry(row) for row in session.scalars(query.limit(limit).offset(offset))]

    def verify(self) -> ChainCheck:
        """Walk the chain from the first entry; report the first one that does not fit."""
        expected_prev, expected_seq, count = GENESIS, 1, 0
        with self._sessions() as session:
            head = session.get(MetaRow, HEAD_KEY)
            for row in session.scalars(select(AuditRow).order_by(AuditRow.seq)).yield_per(1000):
                problem = _entry_problem(row, expected_seq, expected_prev)
                if problem:
                    return ChainCheck(False, count, expected_prev, expected_seq, problem)
                expected_prev, expected_seq, count = row.hash, row.seq + 1, count + 1
            head_value = head.value if head else f"0:{GENESIS}"
        if head_value != f"{count}:{expected_prev}":
            return ChainCheck(
                False,
                count,
                expected_prev,
                count + 1,
                f"the log ends at entry {count} but its recorded head is entry {head_value.split(':')[0]}: "
                "entries were removed from the end",
            )
        return ChainCheck(True, count, expected_prev)

    def counts_by(self, action: Action, since: datetime | None, until: datetime | None) -> dict[str, int]:
        """How many entries of ``action`` per purpose in a period."""
        counts: dict[str, int] = {}
        for entry in self.entries(action=action.value, since=since, until=until, limit=10**9):
            counts[entry.purpose] = counts.get(entry.purpose, 0) + 1
        return counts


def _entry_problem(row: AuditRow, expected_seq: int, expected_prev: str) -> str:
    if row.seq != expected_seq:
        return f"entry {expected_seq} is missing (next entry found is {row.seq})"
    if row.prev_hash != expected_prev:
        return f"entry {row.seq} does not follow entry {row.seq - 1}: an entry was removed, reordered or edited"
    recomputed = entry_hash(
        row.seq, row.at, row.actor, row.actor_kind, row.action, row.purpose, row.collection, row.details, row.prev_hash
    )
    if recomputed != row.hash:
        return f"entry {row.seq} was edited after it was written (its content no longer matches its hash)"
    return ""


def _parse_head(value: str) -> tuple[int, str]:
    seq, digest = value.split(":", 1)
    return int(seq), digest


def _entry(row: AuditRow) -> AuditEntry:
    return AuditEntry(
        seq=row.seq,
        at=row.at,
        actor=row.actor,
        actor_kind=row.actor_kind,
        action=row.action,
        purpose=row.purpose,
        collection=row.collection,
        details=json.loads(row.details),
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


def event_types() -> Sequence[type[Event]]:
    return Event.__subclasses__()


@dataclass(frozen=True)
class SubjectEvent(Event):
    """Enrolment of a named subject with its consent record, an example added, or consent withdrawn.
    Ids, the consent's scope and time; never the subject's name or face."""

    action = Action.SUBJECT
    change: str = ""
    subject_id: int = 0
    consent_scope: str = ""
    consent_at: str = ""
    image_id: int = 0
    receipt_id: str = ""


@dataclass(frozen=True)
class RefusalEvent(Event):
    """A request refused for a reason worth reviewing (rate limit, role): who, what and why."""

    action = Action.REFUSAL
    request: str = ""
    reason: str = ""
