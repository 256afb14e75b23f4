"""Per-key search rate limit: a sliding window of the last minute's searches, in this process (a catalog on a
database server keeps it in the catalog instead, shared by every process: ``store/rate_limits.py``)."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from facesearch.store.catalog.store import Catalog
from facesearch.store.rate_limits import CatalogRateLimiter

WINDOW_SECONDS = 60.0


class Limiter(Protocol):
    per_minute: int

    def take(self, key_id: int) -> float:
        """Count one search for ``key_id``; 0 if allowed, else the seconds until one is allowed."""
        ...


class RateLimiter:
    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._calls: dict[int, deque[float]] = {}
        self._lock = threading.Lock()

    def take(self, key_id: int) -> float:
        """Count one search for ``key_id``; 0 if allowed, else the seconds until one is allowed."""
        now = self._clock()
        with self._lock:
            calls = self._calls.setdefault(key_id, deque())
            while calls and calls[0] <= now - WINDOW_SECONDS:
                calls.popleft()
            if len(calls) >= self.per_minute:
                return max(0.1, calls[0] + WINDOW_SECONDS - now)
            calls.append(now)
            return 0.0


def limiter_for(catalog: Catalog, per_minute: int) -> Limiter:
    """Kept in the catalog when other processes may share it (a database server), else in this process (SQLite:
    one process serves a data folder, and a search pays no catalog write for its count)."""
    return CatalogRateLimiter(catalog, per_minute) if catalog.shared else RateLimiter(per_minute)
