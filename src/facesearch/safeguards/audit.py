"""What the audit log records and how its entries are chained: every action on faces is a typed event, and
each entry's digest covers its content and the digest of the entry before it.

Each entry stores the digest of the entry before it and its own digest over its content, so deleting,
reordering or editing any entry breaks the chain at that entry, and the log's ``verify`` names it. The
digest is an HMAC-SHA256 under a key derived from the master key (``vault.MasterKey.audit_mac_key``), so
whoever holds the database but not the master key cannot recompute it after an edit. The head (last
sequence number and digest, itself MACed) is kept beside the entries in the same transaction, so dropping
entries from the end and rewriting the head is detected too.

Data folders made before the chain was keyed hold entries chained with plain sha256; they keep verifying as
they are. The first keyed entry (the master key's check in the catalog records its number) is the audited
switch, whose MAC covers the last plain entry's hash, so the plain entries before it cannot be rewritten
either without the key. Whoever holds the master key as well as the database can still rewrite everything:
copy the head that ``verify`` prints somewhere else now and then; a later verify shows whether the chain
still leads to it.

The log itself (appending inside the catalog's transactions, reading, verifying) is
``store/catalog/audit_log.py``: the catalog writes an action and its event in one transaction, so the events
are defined here, below the store, and stored there.

Events hold ids, counts and hashes, never an image, a thumbnail or a template.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

from facesearch.core.errors import InvalidValueError

GENESIS = "0" * 64


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
AUDIT_ACTOR = Actor("facesearch audit", ActorKind.SYSTEM)
AUDIT_KEYED_CHANGE = "audit-chain-keyed"
"""The configuration change recorded as the first keyed entry of a data folder made before the chain was keyed."""


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
    VIEW = "view"


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
    operating_point: dict[str, Any] = field(default_factory=dict)
    """How the threshold was chosen and what it implies (``core.results.OperatingPoint``); empty in entries
    from before operating points."""


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
    confirmed_face_ids: list[int] = field(default_factory=list)
    """Possible matches beyond the threshold that the person answering confirmed (erased with the rest)."""


@dataclass(frozen=True)
class AccessRequestEvent(Event):
    action = Action.ACCESS_REQUEST
    probe_sha256: str = ""
    match_count: int = 0
    match_face_ids: list[int] = field(default_factory=list)
    review_face_ids: list[int] = field(default_factory=list)
    """Possible matches listed for review, beyond the threshold."""


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


def canonical(value: Any) -> str:
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
    """The plain sha256 digest of entries written before the chain was keyed (see ``AuditChain``)."""
    content = [seq, at, actor, actor_kind, action, purpose, collection, details, prev_hash]
    return hashlib.sha256(canonical(content).encode()).hexdigest()


@dataclass(frozen=True)
class AuditChain:
    """How a data folder's entries are digested: HMAC-SHA256 under ``mac_key`` from entry ``keyed_from`` on,
    plain sha256 before it (entries written before the chain was keyed)."""

    mac_key: bytes = field(repr=False)
    keyed_from: int

    def is_keyed(self, seq: int) -> bool:
        return seq >= self.keyed_from

    def entry_digest(
        self,
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
        if not self.is_keyed(seq):
            return entry_hash(seq, at, actor, actor_kind, action, purpose, collection, details, prev_hash)
        content = canonical(["entry", seq, at, actor, actor_kind, action, purpose, collection, details, prev_hash])
        return hmac.new(self.mac_key, content.encode(), hashlib.sha256).hexdigest()

    def head_mac(self, seq: int, digest: str) -> str:
        """The MAC of the head (last sequence number and digest), so that the head cannot be moved back."""
        return hmac.new(self.mac_key, canonical(["head", seq, digest]).encode(), hashlib.sha256).hexdigest()

    def head_value(self, seq: int, digest: str) -> str:
        return f"{seq}:{digest}:{self.head_mac(seq, digest)}"


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
    consent_attestation: str = ""
    """Where the consent is held, when the enrolling key's attestation stands for it (never a person's name)."""
    image_id: int = 0
    receipt_id: str = ""


@dataclass(frozen=True)
class RefusalEvent(Event):
    """A request refused for a reason worth reviewing (rate limit, role): who, what and why."""

    action = Action.REFUSAL
    request: str = ""
    reason: str = ""


@dataclass(frozen=True)
class ViewEvent(Event):
    """Faces or photos of the gallery shown to an API caller (a list, a detail, a picture, a thumbnail): the
    request and the ids shown; ``counted`` is false when a search or list just shown to the same key named them."""

    action = Action.VIEW
    request: str = ""
    face_ids: list[int] = field(default_factory=list)
    image_ids: list[int] = field(default_factory=list)
    counted: bool = True
