"""Retention while the service runs: the engine purges expired images when it opens, and a long-running
server would otherwise hold them past their period. A background thread purges every few minutes."""

from __future__ import annotations

import logging
import threading

from facesearch.safeguards.audit import RETENTION_ACTOR
from facesearch.server.service import Service

log = logging.getLogger("facesearch.server")


class RetentionSweeper:
    def __init__(self, svc: Service, interval_seconds: float) -> None:
        self._svc = svc
        self._interval = interval_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start sweeping (again, after a stop: an application's lifespan may run more than once)."""
        self.stop()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(self._stop,), name="facesearch-retention", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def sweep(self) -> int:
        """Purge now; returns how many images were removed."""
        with self._svc.writing():
            report = self._svc.engine.purge(RETENTION_ACTOR, automatic=True)
        removed = sum(images for images, _ in report.by_collection.values())
        if removed:
            log.info("retention: removed %d image(s) past their collection's period", removed)
        return removed

    def _run(self, stop: threading.Event) -> None:
        while not stop.wait(self._interval):
            try:
                self.sweep()
            except Exception:  # a failed sweep is retried at the next interval; the reason is logged
                log.exception("retention sweep failed")
