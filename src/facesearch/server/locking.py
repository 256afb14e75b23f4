"""A readers-writer lock for the service: searches and catalog reads share it, writes (ingest batches,
erasure, purge, collection and key changes) hold it alone, so a search never sees a write half applied
(the catalog committed, the vector index not yet changed; see ``store/consistency.py``).

Writers go first: once a writer waits, new readers wait behind it, so a stream of searches cannot starve an
upload. A thread that holds the lock may take it again, as reader or writer if it is the writer, as reader if
it is a reader; a reader asking to write is refused (two readers doing so would wait on each other forever).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class ReadWriteLock:
    def __init__(self) -> None:
        self._changed = threading.Condition(threading.Lock())
        self._readers: dict[int, int] = {}  # thread id -> how many times it holds the lock as a reader
        self._writer: int | None = None
        self._writer_depth = 0
        self._writers_waiting = 0

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Shared: any number of readers at once, no writer."""
        self._acquire_read()
        try:
            yield
        finally:
            self._release_read()

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Exclusive: no reader and no other writer."""
        self._acquire_write()
        try:
            yield
        finally:
            self._release_write()

    def held(self) -> bool:
        """Whether any thread holds the lock, to read or to write (what the tests check analyses happen without)."""
        with self._changed:
            return self._writer is not None or bool(self._readers)

    def _acquire_read(self) -> None:
        me = threading.get_ident()
        with self._changed:
            if self._writer == me or me in self._readers:  # re-entry never waits (it would wait on itself)
                self._readers[me] = self._readers.get(me, 0) + 1
                return
            self._changed.wait_for(lambda: self._writer is None and not self._writers_waiting)
            self._readers[me] = 1

    def _release_read(self) -> None:
        me = threading.get_ident()
        with self._changed:
            left = self._readers[me] - 1
            if left:
                self._readers[me] = left
            else:
                del self._readers[me]
                self._changed.notify_all()

    def _acquire_write(self) -> None:
        me = threading.get_ident()
        with self._changed:
            if self._writer == me:
                self._writer_depth += 1
                return
            if me in self._readers:
                raise RuntimeError("a thread holding the service lock to read cannot take it to write")
            self._writers_waiting += 1
            try:
                self._changed.wait_for(lambda: self._writer is None and not self._readers)
            finally:
                self._writers_waiting -= 1
            self._writer = me
            self._writer_depth = 1

    def _release_write(self) -> None:
        with self._changed:
            self._writer_depth -= 1
            if not self._writer_depth:
                self._writer = None
                self._changed.notify_all()
