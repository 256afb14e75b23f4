"""Ingest workers live no longer than the ingest that started them, and a signal stops an ingest cleanly.

Worker side (``die_with_parent``, the pool's initializer): on Linux the kernel sends a worker SIGKILL when the
thread that started it dies (``prctl(PR_SET_PDEATHSIG)``), whatever killed the parent, SIGKILL included; the pool
starts its workers from the thread that runs the ingest, which outlives the pool. A thread watching the parent's
pid covers other systems, and a parent that died before prctl took effect. Once the workers are gone,
multiprocessing's resource tracker (which lives until every process holding its pipe has exited) exits too, and
none of them holds the caller's pipes open.

Parent side (``stop_signals``): while an ingest runs in the main thread, SIGTERM and SIGINT set a flag instead
of killing or interrupting it anywhere; the ingest checks the flag between files and stops with
``StoppedError`` (what was committed stays; running the command again continues), after terminating its workers
rather than waiting for the files they are analysing.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from facesearch.core.errors import StoppedError

PR_SET_PDEATHSIG = 1
"""From <linux/prctl.h>."""
PARENT_CHECK_SECONDS = 1.0
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def die_with_parent(parent_pid: int) -> None:
    """Run in each worker as it starts: end it as soon as ``parent_pid`` (the ingest) has gone."""
    _kill_me_when_parent_dies()
    if os.getppid() != parent_pid:  # the parent died before the kernel was asked
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent_pid,), name="parent-watch", daemon=True).start()


def _kill_me_when_parent_dies() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):
        pass  # the watching thread still ends the worker, within PARENT_CHECK_SECONDS


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(PARENT_CHECK_SECONDS)
    os._exit(1)


class StopRequest:
    """Whether a stop signal arrived while ``stop_signals`` was in force."""

    def __init__(self) -> None:
        self.signal_number: int | None = None

    def check(self) -> None:
        """Raise ``StoppedError`` if a stop signal arrived."""
        if self.signal_number is not None:
            name = signal.Signals(self.signal_number).name
            raise StoppedError(
                f"ingest stopped by {name}: what was committed stays; run the same command again to continue",
                self.signal_number,
            )


@contextmanager
def stop_signals() -> Iterator[StopRequest]:
    """SIGTERM and SIGINT noted, not acted on, while in force (in the main thread only: signal handlers can
    only be set there, and elsewhere the signals keep their usual effect)."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return

    def note(signal_number: int, _frame: FrameType | None) -> None:
        request.signal_number = signal_number

    previous = {number: signal.signal(number, note) for number in STOP_SIGNALS}
    try:
        yield request
    finally:
        for number, handler in previous.items():
            if handler is not None:
                signal.signal(number, handler)
