"""Per-key rate limits kept in the catalog, so that every server process on one database shares each key's budget
(``facesearch serve --workers N``, or several servers behind a proxy, on PostgreSQL).

The same sliding window as the in-process limiter (``server/ratelimit.py``): a key may make ``per_minute`` counted
calls in any 60 seconds. Each allowed call is a row; a call is counted in one transaction that first locks the key's
row (``SELECT ... FOR UPDATE``), so two processes counting for one key take turns and the budget is never
overdrawn; rows older than the window are deleted as they age out. Times are the servers' wall clocks: servers on
several machines need them in step (NTP)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from sqlalchemy import delete, select

from facesearch.store.catalog.schema import ApiKeyRow, RateLimitCallRow
from facesearch.store.catalog.store import Catalog

WINDOW_SECONDS = 60.0


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
