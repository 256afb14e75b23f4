"""What each API key was just shown: the faces and images a counted, audited read (a search, a page of a
collection, a person) returned to it. Their pictures and thumbnails then follow without counting again, so
the web UI can show a search's matches; any other picture counts against the key's search budget."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Protocol

from facesearch.store.catalog.store import Catalog
from facesearch.store.rate_limits import CatalogShown

SHOWN_SECONDS = 600.0
"""How long after a read its faces' pictures stay free for the key it was shown to."""
MAX_SHOWN_PER_KEY = 20_000
"""Ids remembered per key; the oldest are forgotten first (their pictures then count again)."""

Item = tuple[str, int]  # ("face" | "image", id)


class ShownItems(Protocol):
    def add(self, key_id: int, face_ids: Iterable[int] = (), image_ids: Iterable[int] = ()) -> None: ...

    def covers(self, key_id: int, face_ids: Iterable[int] = (), image_ids: Iterable[int] = ()) -> bool: ...


def shown_for(catalog: Catalog) -> ShownItems:
    """Kept in the catalog when other processes may share it (a key's search through one process, its thumbnails
    through another), else in this process, as the rate limit (``server/ratelimit.py``)."""
    return CatalogShown(catalog) if catalog.shared else Shown()


class Shown:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._by_key: dict[int, OrderedDict[Item, float]] = {}
        self._lock = threading.Lock()

    def add(self, key_id: int, face_ids: Iterable[int] = (), image_ids: Iterable[int] = ()) -> None:
        """Remember that ``key_id`` was shown these faces and images now."""
        now = self._clock()
        items = [("face", i) for i in face_ids] + [("image", i) for i in image_ids]
        with self._lock:
            seen = self._by_key.setdefault(key_id, OrderedDict())
            for item in items:
                seen[item] = now
                seen.move_to_end(item)
            self._forget(seen, now)

    def covers(self, key_id: int, face_ids: Iterable[int] = (), image_ids: Iterable[int] = ()) -> bool:
        """Whether ``key_id`` was shown every one of these faces and images within SHOWN_SECONDS."""
        items = [("face", i) for i in face_ids] + [("image", i) for i in image_ids]
        now = self._clock()
        with self._lock:
            seen = self._by_key.get(key_id)
            if seen is None or not items:
                return False
            self._forget(seen, now)
            return all(item in seen for item in items)

    @staticmethod
    def _forget(seen: OrderedDict[Item, float], now: float) -> None:
        while seen and (len(seen) > MAX_SHOWN_PER_KEY or next(iter(seen.values())) <= now - SHOWN_SECONDS):
            seen.popitem(last=False)
