"""Spawned worker processes that do not re-run the parent's main module.

multiprocessing's spawn makes each child import the parent's ``__main__`` (the ``facesearch`` console script, a
benchmark's module) before it runs a task, so that functions defined there can be unpickled. facesearch's tasks
live in its own modules, and that import cost each ingest worker 1.2 s of its start (the CLI's main module pulls
in SQLAlchemy, FastAPI and faiss, none of which a worker uses): two thirds of the time to its first result.

The processes made here are told of no main module; everything else is multiprocessing's spawn, unchanged (a
fresh interpreter, so no faiss/OpenMP threads are inherited, as fork would).
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.context import SpawnContext, SpawnProcess
from typing import Any


@contextmanager
def _main_module_hidden() -> Iterator[None]:
    """While a child's start data is written, ``__main__`` is an empty module: spawn then names none to it."""
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


class _LeanSpawnProcess(SpawnProcess):
    @staticmethod
    def _Popen(process_obj: Any) -> Any:  # noqa: N802 (multiprocessing's name)
        with _main_module_hidden():
            return SpawnProcess._Popen(process_obj)


class LeanSpawnContext(SpawnContext):
    """A spawn context for pools whose tasks are all defined outside ``__main__``."""

    Process = _LeanSpawnProcess
