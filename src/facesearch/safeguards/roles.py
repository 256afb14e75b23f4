"""Who may do what: the roles an API key is issued for, and the key as the rest of facesearch sees it (never its
secret). ``store/keys.py`` issues, stores and checks keys; the server's dependencies enforce the roles."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from facesearch.safeguards.audit import Actor, ActorKind


class Role(StrEnum):
    """What a key may do. Roles do not nest: an auditor cannot search, a searcher cannot read the log."""

    ADMIN = "admin"
    """collections and keys"""
    INGEST = "ingest"
    """add images to the collections named on the key"""
    SEARCH = "search"
    """search, verify, detect, under the key's declared purpose"""
    AUDITOR = "auditor"
    """audit log and transparency report; no biometric data"""
    RIGHTS = "rights"
    """subject access and erasure requests"""
    RECOGNITION = "recognition"
    """CompreFace's recognition service on the collections named on the key: enrol subjects under the key's
    consent attestation, add and remove their examples, recognise faces among them"""


@dataclass(frozen=True)
class ApiKey:
    id: int
    prefix: str
    owner: str
    role: Role
    purpose: str
    collections: list[str]
    created_at: datetime
    revoked_at: datetime | None
    consent_attestation: str = ""
    """Where the consent of the subjects this key enrols is held (signed forms, a policy): the administrator's
    attestation, recorded with every enrolment made with the key; empty for a key that may not enrol."""

    @property
    def actor(self) -> Actor:
        return Actor(f"{self.owner} (key {self.prefix})", ActorKind.API_KEY)
