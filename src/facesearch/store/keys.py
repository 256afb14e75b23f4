"""API keys, stored in the catalog: who may call facesearch, in which role (``safeguards/roles.py``), for which
declared purpose.

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


class KeyStore:
    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    def create(
        self, owner: str, role: str, actor: Actor, *, purpose: str = "", collections: Sequence[str] = ()
    ) -> tuple[ApiKey, str]:
        """A new key and its secret form (shown once; only its hash is kept)."""
        chosen = parse_choice(Role, role, "role")
        if not owner.strip():
            raise InvalidValueError("a key needs an owner: the person or system it is issued to")
        if chosen is Role.SEARCH and len(purpose.strip()) < 3:
            raise InvalidValueError("a search key needs a declared purpose; it is written into every search it makes")
        if chosen is Role.INGEST and not collections:
            raise InvalidValueError("an ingest key needs the collections it may add to (--collection)")
        for name in collections:
            self._catalog.collection_id(name)  # raises NotFoundError for an unknown collection
        prefix = secrets.token_hex(4)
        token = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(SECRET_BYTES)}"
        row = ApiKeyRow(
            prefix=prefix,
            secret_hash=_digest(token),
            owner=owner.strip(),
            role=chosen.value,
            purpose=purpose.strip(),
            collections=list(collections),
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
    )
