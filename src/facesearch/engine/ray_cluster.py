"""Ingest's analysis on a Ray cluster (``facesearch ingest --ray ADDRESS``).

Each file is read here and its bytes travel to a task on any node (the nodes need not share the file system); the
task decodes, detects and embeds them with ``engine/ingest.py`` and sends the image's templates back, and the
catalog is written here, in batches, exactly as with local workers (``engine/folders.py``). At most
``IN_FLIGHT_PER_WORKER`` files per CPU of the cluster are in flight, so memory stays bounded whatever the folder's
size. A task lost with its node (or its worker process) is run again elsewhere by Ray, up to ``TASK_RETRIES``
times; a file whose every try was lost is reported as failed, so running the ingest again analyses it. ``ray`` is
imported here only, and only when a cluster is named.
"""

from __future__ import annotations

import logging
import socket
import sys
import time
from collections.abc import Generator, Iterable
from contextlib import redirect_stdout
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from facesearch.core.errors import ClusterUnavailableError, ImageError, InvalidValueError
from facesearch.core.paths import path_text
from facesearch.engine.ingest import IN_FLIGHT_PER_WORKER, STOP_CHECK_SECONDS, FileOutcome, FileTask, analyse_file
from facesearch.engine.worker_lifetime import StopRequest, stop_signals
from facesearch.vision.imaging import read_image_file

if TYPE_CHECKING:
    from types import ModuleType

    from ray import ObjectRef

CONNECT_TIMEOUT_SECONDS = 5.0
"""How long the head's port may take to accept a connection (``ray.init`` itself retries for minutes)."""
TASK_RETRIES = 3
"""Times a task lost with its node or worker process is run again, on whichever node is alive."""
LIVENESS_CHECK_SECONDS = 10.0
"""How often, while no result arrives, the cluster is asked whether any CPU is left to run the tasks."""
ADVICE = (
    "start it (deploy/local-cluster start, or ray start --head on its head node) or correct --ray or "
    "FACESEARCH_RAY_ADDRESS"
)


def run_on_ray(tasks: Iterable[FileTask], address: str, threads: int) -> Generator[FileOutcome, None, None]:
    """Outcomes of ``tasks`` (in completion order), analysed on the Ray cluster at ``address``, each task embedding
    with ``threads`` threads on the one CPU it holds. A SIGTERM or SIGINT stops it between files with
    ``StoppedError``, cancelling the tasks in flight; the caller closes it when it stops early."""
    # Ray prints its notices (a task retried, a node lost) to stdout from a thread of its own: they go to stderr,
    # with the progress bar, so that stdout holds only what the caller writes there (the CLI's --json report).
    with redirect_stdout(sys.stderr):
        ray, owned = _connect(address)
        try:
            cpus = _cpus(ray)
            if not cpus:
                raise ClusterUnavailableError(f"the Ray cluster at {address} has no node with a CPU: {ADVICE}")
            with stop_signals() as stop:
                yield from _run(ray, tasks, address, threads, cpus * IN_FLIGHT_PER_WORKER, stop)
        finally:
            if owned:
                ray.shutdown()


def _run(
    ray: ModuleType, tasks: Iterable[FileTask], address: str, threads: int, in_flight: int, stop: StopRequest
) -> Generator[FileOutcome, None, None]:
    remote = ray.remote(analyse_file).options(
        num_cpus=1, max_retries=TASK_RETRIES, retry_exceptions=False, scheduling_strategy="SPREAD"
    )
    pending: dict[ObjectRef[FileOutcome], Path] = {}
    last_result = time.monotonic()
    finished = False

    def completed() -> list[FileOutcome]:
        nonlocal last_result
        ready, rest = ray.wait(list(pending), num_returns=1, timeout=STOP_CHECK_SECONDS)
        if ready and rest:
            more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
            ready += more
        stop.check()
        if ready:
            last_result = time.monotonic()
        elif time.monotonic() - last_result > LIVENESS_CHECK_SECONDS:
            last_result = time.monotonic()
            if not _cpus(ray):
                raise ClusterUnavailableError(
                    f"the Ray cluster at {address} has no live node with a CPU left: what was committed stays; "
                    "run the same command again when it is back"
                )
        return [_outcome(ray, ref, pending.pop(ref)) for ref in ready]

    try:
        for task in tasks:
            while len(pending) >= in_flight:
                yield from completed()
            stop.check()
            try:
                data = read_image_file(task.path, task.max_bytes)
            except ImageError as problem:
                yield FileOutcome(task.path, None, problem.message)
                continue
            one_core = replace(task, embedder=replace(task.embedder, threads=threads))
            pending[remote.remote(one_core, data, path_text(task.path.resolve()))] = task.path
        while pending:
            yield from completed()
        finished = True
    finally:
        if not finished:  # stopped, failed or abandoned: the cluster need not finish the files in flight
            for ref in pending:
                ray.cancel(ref, force=True)


def _outcome(ray: ModuleType, ref: ObjectRef[FileOutcome], path: Path) -> FileOutcome:
    try:
        outcome: FileOutcome = ray.get(ref)
    except ray.exceptions.RayError as lost:  # every try lost (nodes or workers died), or the task could not run
        reason = next((line for line in reversed(str(lost).splitlines()) if line.strip()), type(lost).__name__)
        return FileOutcome(
            path, None, f"{path_text(path)}: not analysed on the Ray cluster ({reason[:300]}); run the ingest again"
        )
    return outcome


def _connect(address: str) -> tuple[ModuleType, bool]:
    """The ``ray`` module, connected to ``address``, and whether this call connected it (and so disconnects)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise InvalidValueError(
            f"Ray address {address!r} is not HOST:PORT (the head node's address, as ray start --head prints it); "
            "correct --ray or FACESEARCH_RAY_ADDRESS"
        )
    try:
        import ray
    except ImportError as missing:
        raise ClusterUnavailableError(
            f"ingest on the Ray cluster at {address} needs the ray package ({missing}): pip install ray (the version "
            "pinned in pyproject.toml, the same as the cluster's)"
        ) from None
    if ray.is_initialized():  # the caller connected this process already
        return ray, False
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_SECONDS).close()
    except OSError as problem:
        raise ClusterUnavailableError(
            f"the Ray cluster at {address} cannot be reached ({problem.strerror or problem}): {ADVICE}"
        ) from None
    try:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING, configure_logging=False)
    except Exception as problem:  # ray raises ConnectionError, RuntimeError, ValueError... for a bad cluster
        raise ClusterUnavailableError(f"the Ray cluster at {address} cannot be used ({problem}): {ADVICE}") from None
    return ray, True


def _cpus(ray: ModuleType) -> int:
    """CPUs of the cluster's live nodes."""
    return int(ray.cluster_resources().get("CPU", 0))
