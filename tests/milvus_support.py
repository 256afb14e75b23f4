"""A real Milvus server for the tests marked ``milvus``: the one named by FACESEARCH_TEST_VECTOR_STORE (its storage
folder, for the tests that scan it, in FACESEARCH_TEST_MILVUS_DATA), or else the one ``deploy/local-cluster`` starts
(and this session stops, if it started it). Each engine on it names its collections after its own catalog, so tests
do not see each other's vectors. The fixture (``milvus_server``) is in conftest.py, importing this only when used.

Outside CI, with no server to be had, the tests skip with a message that says how to get one; with CI=true they
fail instead, so that CI never passes by skipping them."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from postgres_support import _cluster, _exports


@dataclass
class MilvusTestServer:
    url: str
    """``milvus://HOST:PORT``, for FACESEARCH_VECTOR_STORE."""
    data_dir: Path | None
    """The server's storage folder, when it is on this machine and known."""
    pid: int | None
    """The server's process, when this session's local cluster runs it (the tests that kill it need that)."""

    @property
    def host_port(self) -> tuple[str, int]:
        host, port = self.url.removeprefix("milvus://").rsplit(":", 1)
        return host, int(port)

    def kill(self) -> None:
        """SIGKILL the server, as a crash would, and wait until it is gone."""
        assert self.pid is not None
        os.kill(self.pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while Path(f"/proc/{self.pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)

    def restart(self) -> None:
        """Start the local cluster's server again (same port, same storage)."""
        run = _cluster("start", "milvus")
        assert run.returncode == 0, run.stderr
        self.pid = int(_exports(run.stdout)["FACESEARCH_MILVUS_PID"])


def unavailable(reason: str) -> None:
    message = (
        f"Milvus not available ({reason}): run deploy/local-cluster start (pip install milvus, see constraints.txt), "
        "or set FACESEARCH_TEST_VECTOR_STORE=milvus://HOST:PORT"
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def running_server() -> Iterator[MilvusTestServer]:
    """For the session: the server, stopped at the end if this started it."""
    given = os.environ.get("FACESEARCH_TEST_VECTOR_STORE", "")
    started = False
    if given:
        data = os.environ.get("FACESEARCH_TEST_MILVUS_DATA", "")
        server = MilvusTestServer(given, Path(data) if data else None, None)
    else:
        started = _cluster("status", "milvus").returncode != 0
        run = _cluster("start", "milvus")
        if run.returncode != 0:
            unavailable(f"deploy/local-cluster start failed: {run.stderr.strip() or run.stdout.strip()}")
        exports = _exports(run.stdout)
        server = MilvusTestServer(
            exports["FACESEARCH_VECTOR_STORE"],
            Path(exports["FACESEARCH_MILVUS_DATA"]),
            int(exports["FACESEARCH_MILVUS_PID"]),
        )
    from facesearch.core.errors import VectorStoreUnavailableError
    from facesearch.store.index.milvus import MilvusServer

    try:
        MilvusServer(*server.host_port, timeout_s=20).close()
    except VectorStoreUnavailableError as exc:
        unavailable(str(exc))
    yield server
    if started:
        _cluster("stop", "milvus")
