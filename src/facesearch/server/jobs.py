"""Long work run in the background with progress a client can poll (grouping a collection's faces into people).

A job belongs to the key that started it: another key is told it does not exist. The last ``MAX_KEPT`` jobs are
kept in memory only; a restart forgets them, but not their work, which is in the catalog and the audit log."""

from __future__ import annotations

import itertools
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from facesearch.core.errors import FacesearchError, NotFoundError
from facesearch.core.results import to_plain

log = logging.getLogger("facesearch.server")
MAX_KEPT = 100
WAITING = "waiting for other changes to finish"
Work = Callable[[Callable[[str], None]], Any]
"""The job's work: called with a function that it tells each step's name as the step starts."""


@dataclass
class Job:
    id: int
    kind: str
    collection: str
    key_id: int
    steps: tuple[str, ...]
    state: str = "running"
    """running, done or failed."""
    stage: str = WAITING
    step: int = 0
    """Steps started so far (the stage is the last of them); ``len(steps)`` once done."""
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None
    result: Any = None
    error: dict[str, Any] | None = None

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "collection": self.collection,
            "state": self.state,
            "stage": self.stage,
            "step": self.step,
            "steps": len(self.steps),
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "result": self.result,
            "error": self.error,
        }


class Jobs:
    def __init__(self, max_kept: int = MAX_KEPT) -> None:
        self._lock = threading.Lock()
        self._jobs: OrderedDict[int, Job] = OrderedDict()
        self._ids = itertools.count(1)
        self._max_kept = max_kept

    def start(self, key_id: int, kind: str, collection: str, steps: Sequence[str], work: Work) -> Job:
        """Run ``work`` in a thread of its own; the key's job of the same kind still running on the collection
        is answered instead of starting a second one."""
        with self._lock:
            for job in self._jobs.values():
                if (job.kind, job.collection, job.key_id, job.state) == (kind, collection, key_id, "running"):
                    return job
            job = Job(next(self._ids), kind, collection, key_id, tuple(steps))
            self._jobs[job.id] = job
            while len(self._jobs) > self._max_kept:
                self._jobs.popitem(last=False)
        threading.Thread(target=self._run, args=(job, work), name=f"facesearch-job-{job.id}", daemon=True).start()
        return job

    def get(self, job_id: int, key_id: int) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None or job.key_id != key_id:
            raise NotFoundError(
                f"no job {job_id} started by this key (jobs are kept in memory: the last {self._max_kept}, "
                "until the server restarts)"
            )
        return job

    def _run(self, job: Job, work: Work) -> None:
        def advance(stage: str) -> None:
            with self._lock:
                job.stage = stage
                job.step = job.steps.index(stage) + 1 if stage in job.steps else job.step

        try:
            result = to_plain(work(advance))
        except FacesearchError as exc:
            self._finish(job, "failed", error={"status": exc.http_status, "code": exc.code, "message": exc.message})
        except Exception:  # a bug: logged with its traceback, reported without it
            log.exception("job %s (%s on %s) failed", job.id, job.kind, job.collection)
            message = "internal error (a bug: the server log has the details; please report it)"
            self._finish(job, "failed", error={"status": 500, "code": "internal", "message": message})
        else:
            self._finish(job, "done", result=result)

    def _finish(self, job: Job, state: str, *, result: Any = None, error: dict[str, Any] | None = None) -> None:
        with self._lock:
            job.state = state
            job.result = result
            job.error = error
            job.finished_at = datetime.now(UTC)
            if state == "done":
                job.step = len(job.steps)
                job.stage = "done"
