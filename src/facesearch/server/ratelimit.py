"""Per-key search rate limit: a sliding window of the last minute's searches."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

WINDOW_SECONDS = 60.0


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
