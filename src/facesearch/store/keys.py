"""API keys, stored in the catalog: who may call facesearch, in which role (``safeguards/roles.py``), for which
declared purpose; recognition keys (CompreFace's recognition service) also carry the administrator's attestation
of where the consent of the subjects they enrol is held.

A key is ``fs_<prefix>_<secret>``: the prefix finds the row, the sha256 of the whole key is compared in
constant time, and the key itself is never stored (it is shown once, at creation). Keys are created and
revoked from the CLI; each creation and revocation is audited.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import select

from facesearch.core.errors import InvalidValueError, NotFoundError, UnauthorizedError
from facesearch.safeguards.audit import Actor, ConfigurationEvent
from facesearch.safeguards.governance import parse_choice
from facesearch.safeguards.roles import ApiKey, Role
from facesearch.store.catalog.schema import ApiKeyRow
from facesearch.store.catalog.store import Catalog, as_utc

KEY_PREFIX = "fs_"
SECRET_BYTES = 32
MIN_ATTESTATION = 10
ENROLLING_ROLES = (Role.INGEST, Role.RECOGNITION)
"""The roles whose keys may carry a consent attestation (and so enrol subjects through the CompreFace API)."""


class KeyStore:
    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    def create(
        self,
        owner: str,
        role: str,
        actor: Actor,
        *,
        purpose: str = "",
        collections: Sequence[str] = (),
        consent_attestation: str = "",
    ) -> tuple[ApiKey, str]:
        """A new key and its secret form (shown once; only its hash is kept). A recognition key without a purpose
        of its own recognises under its collections' declared purposes."""
        chosen = parse_choice(Role, role, "role")
        attestation = consent_attestation.strip()
        if not owner.strip():
            raise InvalidValueError("a key needs an owner: the person or system it is issued to")
        if chosen is Role.SEARCH and len(purpose.strip()) < 3:
            raise InvalidValueError("a search key needs a declared purpose; it is written into every search it makes")
        if chosen in ENROLLING_ROLES and not collections:
            raise InvalidValueError(f"an {chosen.value} key needs the collections it may use (--collection)")
        if attestation and chosen not in ENROLLING_ROLES:
            raise InvalidValueError(
                f"a {chosen.value} key enrols no one: --consent-attestation is for recognition and ingest keys"
            )
        if attestation and len(attestation) < MIN_ATTESTATION:
            raise InvalidValueError(
                "--consent-attestation must say where the subjects' consent is held, in a sentence "
                '(e.g. "signed forms held by HR, policy P-12")'
            )
        for name in collections:
            self._catalog.collection_id(name)  # raises NotFoundError for an unknown collection
        if chosen is Role.RECOGNITION and not purpose.strip():
            declared = {info.name: info.purpose for info in self._catalog.collections()}
            purpose = "; ".join(f"{name}: {declared[name]}" for name in collections)
        prefix = secrets.token_hex(4)
        token = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(SECRET_BYTES)}"
        row = ApiKeyRow(
            prefix=prefix,
            secret_hash=_digest(token),
            owner=owner.strip(),
            role=chosen.value,
            purpose=purpose.strip(),
            collections=list(collections),
            consent_attestation=attestation,
            created_at=datetime.now(UTC),
        )
        event = ConfigurationEvent(
            actor=actor,
            change="key-created",
            fields={
                "prefix": prefix,
                "owner": row.owner,
                "role": row.role,
                "purpose": row.purpose,
                "collections": list(collections),
                "consent_attestation": attestation,
            },
        )
        with self._catalog.sessions.begin() as session:
            session.add(row)
            session.flush()
            self._catalog.audit.append(session, event)
            return _key(row), token

    def list_keys(self) -> list[ApiKey]:
        with self._catalog.sessions() as session:
            return [_key(row) for row in session.scalars(select(ApiKeyRow).order_by(ApiKeyRow.id))]

    def revoke(self, key_id: int, actor: Actor) -> ApiKey:
        with self._catalog.sessions.begin() as session:
            row = session.get(ApiKeyRow, key_id)
            if row is None:
                raise NotFoundError(f"key {key_id} does not exist; see 'facesearch keys list'")
            if row.revoked_at is None:
                row.revoked_at = datetime.now(UTC)
                event = ConfigurationEvent(actor=actor, change="key-revoked", fields={"prefix": row.prefix})
                self._catalog.audit.append(session, event)
            return _key(row)

    def authenticate(self, token: str) -> ApiKey:
        """The key behind ``token``; an unknown, malformed or revoked key is refused the same way."""
        refused = UnauthorizedError("invalid or revoked API key; ask an administrator for a key")
        parts = token.strip().split("_", 2)
        if len(parts) != 3 or f"{parts[0]}_" != KEY_PREFIX:
            raise refused
        with self._catalog.sessions() as session:
            row = session.scalar(select(ApiKeyRow).where(ApiKeyRow.prefix == parts[1]))
            # Compare against a digest even when the prefix is unknown, so timing does not tell them apart.
            expected = row.secret_hash if row is not None else _digest("")
            matches = hmac.compare_digest(expected, _digest(token.strip()))
            if row is None or not matches or row.revoked_at is not None:
                raise refused
            return _key(row)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _key(row: ApiKeyRow) -> ApiKey:
    return ApiKey(
        id=row.id,
        prefix=row.prefix,
        owner=row.owner,
        role=Role(row.role),
        purpose=row.purpose,
        collections=list(row.collections),
        created_at=as_utc(row.created_at),
        revoked_at=None if row.revoked_at is None else as_utc(row.revoked_at),
        consent_attestation=row.consent_attestation,
    )
