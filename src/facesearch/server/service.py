"""What every endpoint shares: the engine (one per process, behind a readers-writer lock), the key store, the
rate limiter, and the dependencies that turn a request's API key into an authorised caller."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Query, Request, UploadFile

from facesearch.core.errors import (
    CollectionScopeError,
    ForbiddenError,
    InvalidValueError,
    RateLimitedError,
    TooLargeError,
    UnauthorizedError,
)
from facesearch.core.results import to_plain
from facesearch.engine.engine import Engine
from facesearch.safeguards.audit import RefusalEvent, ViewEvent
from facesearch.safeguards.roles import ApiKey, Role
from facesearch.server.jobs import Jobs
from facesearch.server.locking import ReadWriteLock
from facesearch.server.params import MAX_ROW_ID
from facesearch.server.ratelimit import Limiter, limiter_for
from facesearch.server.viewing import Shown, ShownItems, shown_for
from facesearch.store.catalog.browse import MAX_PAGE, check_page
from facesearch.store.keys import KeyStore

log = logging.getLogger("facesearch.server")
KEY_PURPOSE = "over the API, the key's declared purpose: facesearch keys create --purpose"
"""Where a search or a verification over the API states its purpose."""
Offset = Annotated[int, Query(ge=0, le=MAX_ROW_ID, description="Items to skip.")]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"Items per page (at most {MAX_PAGE}).")]


@dataclass
class Service:
    engine: Engine
    keys: KeyStore
    limiter: Limiter
    access: ReadWriteLock = field(default_factory=ReadWriteLock)
    """Searches and reads of the catalog share it; writes hold it alone. Image analysis (the expensive part of a
    search or an upload) happens before either is taken, and key checks and audit entries need neither."""
    shown: ShownItems = field(default_factory=Shown)
    """Faces and images each key was just shown, whose pictures follow without counting again."""
    jobs: Jobs = field(default_factory=Jobs)
    """Long work running in the background (grouping into people), polled by the key that started it."""

    def reading(self) -> AbstractContextManager[None]:
        """Shared with other readers: index searches and catalog reads."""
        return self.access.reading()

    def writing(self) -> AbstractContextManager[None]:
        """Alone: anything that changes the catalog and the indexes together, or collections, keys, people."""
        return self.access.writing()

    @property
    def lock(self) -> AbstractContextManager[None]:
        """The exclusive scope (``writing``), for ``with svc.lock:``."""
        return self.access.writing()

    @classmethod
    def over(cls, engine: Engine) -> Service:
        catalog = engine.catalog
        limiter = limiter_for(catalog, engine.settings.search_rate_per_minute)
        return cls(engine, KeyStore(catalog), limiter, shown=shown_for(catalog))

    def warm_up(self) -> None:
        """Load the detector, landmark model and embedder now (the ONNX graph is built on first start)."""
        models = self.engine.models
        for model in (models.detector, models.landmarks, models.embedder):
            log.info("model ready: %s", model.name)

    def count_search(self, key: ApiKey, request: str) -> None:
        """Count a search against the key's rate limit; refuse (and audit the refusal) when over it."""
        wait = self.limiter.take(key.id)
        if wait:
            limit = self.limiter.per_minute
            self.engine.catalog.audit.record(
                RefusalEvent(actor=key.actor, purpose=key.purpose, request=request, reason=f"over {limit}/min")
            )
            raise RateLimitedError(
                f"this key made {limit} searches in the last minute, its limit; retry in {wait:.0f} s "
                "(an administrator sets FACESEARCH_SEARCH_RATE_PER_MINUTE)",
                retry_after=wait,
            )

    def count_view(
        self, key: ApiKey, request: str, face_ids: Sequence[int] = (), image_ids: Sequence[int] = ()
    ) -> bool:
        """Count a read of the gallery's faces or photos against the key's search budget, unless a counted read
        just showed this key every one of them (a search's matches, then their thumbnails); whether it counted."""
        if self.shown.covers(key.id, face_ids, image_ids):
            return False
        self.count_search(key, request)
        return True

    def record_view(
        self, key: ApiKey, request: str, face_ids: Sequence[int], image_ids: Sequence[int], *, counted: bool
    ) -> None:
        """Audit the faces and images shown to the key, and remember them so that their pictures follow."""
        self.engine.catalog.audit.record(  # the audit log takes its own lock; no engine lock needed
            ViewEvent(
                actor=key.actor,
                purpose=key.purpose,
                request=request,
                face_ids=sorted(set(face_ids)),
                image_ids=sorted(set(image_ids)),
                counted=counted,
            )
        )
        self.shown.add(key.id, face_ids, image_ids)

    def purpose_of(self, key: ApiKey, case_reference: str | None) -> str:
        """The purpose written to the audit log: the key's declared purpose, and the case if one is given."""
        stated = (case_reference or "").strip()
        if not key.purpose:
            return stated
        return f"{key.purpose} | case: {stated}" if stated else key.purpose


def service(request: Request) -> Service:
    found: Service = request.app.state.service
    return found


def presented_key(request: Request) -> str:
    """The API key sent with the request: ``X-API-Key`` (as CompreFace clients send it) or a bearer token."""
    token = request.headers.get("x-api-key", "")
    if not token:
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        token = credentials if scheme.lower() == "bearer" else ""
    if not token.strip():
        raise UnauthorizedError("this call needs an API key in the X-API-Key header; ask an administrator for one")
    return token


def allow(*roles: Role) -> Callable[[Request], ApiKey]:
    """A dependency that admits keys with one of ``roles``; others are refused, naming the roles needed."""
    names = " or ".join(role.value for role in roles)

    def authorised(request: Request) -> ApiKey:
        key = service(request).keys.authenticate(presented_key(request))  # one catalog read: no lock
        if key.role not in roles:
            raise ForbiddenError(
                f"a key with role {key.role.value} cannot call {request.method} {request.url.path}; "
                f"it needs a key with role {names}"
            )
        return key

    return authorised


def paged(items: Sequence[Any], offset: int, limit: int) -> dict[str, Any]:
    """One page of a list that is small enough to read whole (collections, keys, subjects, people)."""
    check_page(offset, limit)
    return {
        "items": to_plain(list(items[offset : offset + limit])),
        "total": len(items),
        "offset": offset,
        "limit": limit,
    }


def read_upload(upload: UploadFile, max_bytes: int) -> tuple[str, bytes]:
    """The name and bytes of an uploaded file, refusing more than ``max_bytes`` without reading it all."""
    data = upload.file.read(max_bytes + 1)
    name = upload.filename or "upload"
    if len(data) > max_bytes:
        raise TooLargeError(
            f"{name} is over the {max_bytes:,}-byte upload limit; send a smaller image "
            "(an administrator sets FACESEARCH_MAX_FILE_BYTES)"
        )
    if not data:
        raise InvalidValueError(f"{name} is empty; send the image's bytes as multipart/form-data")
    return name, data


def collection_visible(key: ApiKey, collection: str) -> None:
    """A key issued for some collections sees the faces and photos of those only; others see every collection."""
    if key.collections:
        collection_allowed(key, collection)


def collection_allowed(key: ApiKey, collection: str) -> None:
    """Ingest keys (and search keys restricted to some collections) reach only the collections named on them."""
    if collection not in key.collections:
        raise CollectionScopeError(
            f"this {key.role.value} key may use {', '.join(key.collections) or 'no collection'}, not {collection!r}"
        )
