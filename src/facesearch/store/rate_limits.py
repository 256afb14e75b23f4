"""Per-key rate limits kept in the catalog, so that every server process on one database shares each key's budget
(``facesearch serve --workers N``, or several servers behind a proxy, on PostgreSQL): the calls counted, and the
faces and images each key was just shown, whose pictures follow uncounted (``server/viewing.py`` in one process).

The same sliding window as the in-process limiter (``server/ratelimit.py``): a key may make ``per_minute`` counted
calls in any 60 seconds. Each allowed call is a row; a call is counted in one transaction that first locks the key's
row (``SELECT ... FOR UPDATE``), so two processes counting for one key take turns and the budget is never
overdrawn; rows older than the window are deleted as they age out. Times are the servers' wall clocks: servers on
several machines need them in step (NTP)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

from sqlalchemy import delete, func, select, tuple_

from facesearch.store.catalog.schema import ApiKeyRow, RateLimitCallRow, ShownItemRow
from facesearch.store.catalog.store import Catalog

WINDOW_SECONDS = 60.0
SHOWN_SECONDS = 600.0
"""How long after a read its faces' pictures stay free for the key it was shown to."""


class CatalogRateLimiter:
    def __init__(self, catalog: Catalog, per_minute: int, clock: Callable[[], float] = time.time) -> None:
        self.per_minute = per_minute
        self._catalog = catalog
        self._clock = clock
        self._lock = threading.Lock()  # this process's threads take turns before asking the database

    def take(self, key_id: int) -> float:
        """Count one call for ``key_id``; 0 if allowed, else the seconds until one is allowed."""
        with self._lock, self._catalog.sessions.begin() as session:
            session.execute(select(ApiKeyRow.id).where(ApiKeyRow.id == key_id).with_for_update())
            now = self._clock()
            mine = RateLimitCallRow.key_id == key_id
            session.execute(delete(RateLimitCallRow).where(mine, RateLimitCallRow.at <= now - WINDOW_SECONDS))
            recent = session.scalars(
                select(RateLimitCallRow.at).where(mine).order_by(RateLimitCallRow.at).limit(self.per_minute)
            ).all()
            if len(recent) >= self.per_minute:
                return max(0.1, recent[0] + WINDOW_SECONDS - now)
            session.add(RateLimitCallRow(key_id=key_id, at=now))
            return 0.0


class CatalogShown:
    """What each key was just shown, in the catalog: ``add`` and ``covers`` as ``server/viewing.py``'s ``Shown``."""

    def __init__(self, catalog: Catalog, clock: Callable[[], float] = time.time) -> None:
        self._catalog = catalog
        self._clock = clock
        self._lock = threading.Lock()

    def add(self, key_id: int, face_ids: Iterable[int] = (), image_ids: Iterable[int] = ()) -> None:
        """Remember that ``key_id`` was shown these faces and images now (and forget what it saw too long ago)."""
        items = _items(face_ids, image_ids)
        now = self._clock()
        mine = ShownItemRow.key_id == key_id
        with self._lock, self._catalog.sessions.begin() as session:
            # one writer per key at a time across processes: two reads showing the same faces would otherwise both
            # delete nothing and both insert them, and the second would fail on the row the first just added
            session.execute(select(ApiKeyRow.id).where(ApiKeyRow.id == key_id).with_for_update())
            session.execute(delete(ShownItemRow).where(mine, ShownItemRow.at <= now - SHOWN_SECONDS))
            if items:
                session.execute(
                    delete(ShownItemRow).where(mine, tuple_(ShownItemRow.kind, ShownItemRow.item_id).in_(items))
                )
                session.add_all(ShownItemRow(key_id=key_id, kind=kind, item_id=item, at=now) for kind, item in items)

    def covers(self, key_id: int, face_ids: Iterable[int] = (), image_ids: Iterable[int] = ()) -> bool:
        """Whether ``key_id`` was shown every one of these faces and images within SHOWN_SECONDS."""
        items = _items(face_ids, image_ids)
        if not items:
            return False
        query = select(func.count()).where(
            ShownItemRow.key_id == key_id,
            ShownItemRow.at > self._clock() - SHOWN_SECONDS,
            tuple_(ShownItemRow.kind, ShownItemRow.item_id).in_(items),
        )
        with self._catalog.sessions() as session:
            return session.scalar(query) == len(items)


def _items(face_ids: Iterable[int], image_ids: Iterable[int]) -> list[tuple[str, int]]:
    return sorted({("face", int(i)) for i in face_ids} | {("image", int(i)) for i in image_ids})
