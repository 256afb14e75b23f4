"""A real two-node Ray cluster for the tests marked ``ray``: ``deploy/local-cluster start ray`` in a folder of this
session's own (a head and a worker node of one CPU each, on ports chosen free), stopped and removed at the end.
The fixture (``ray_cluster``) is in conftest.py, importing this only when used; the cluster is shared by the
session, since each start costs tens of seconds.

Outside CI, with no cluster to be had, the tests skip with a message that says how to get one; with CI=true they
fail instead, so that CI never passes by skipping them."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import pytest

from postgres_support import LOCAL_CLUSTER

START_TIMEOUT_SECONDS = 300  # two nodes, each up to 120 s on a loaded machine


@dataclass(frozen=True)
class RayCluster:
    directory: Path
    """The cluster's folder (FACESEARCH_CLUSTER_DIR)."""
    address: str
    """The head's HOST:PORT, for ``--ray`` and FACESEARCH_RAY_ADDRESS."""

    def node_processes(self, node: str) -> list[int]:
        """The live processes of a node (``head`` or ``worker``): its ``ray start``, raylet, agents and worker
        processes, all in the session that deploy/local-cluster started it in (workers have groups of their own)."""
        return session_members(int((self.directory / "ray" / node / "pid").read_text()))

    def kill_node(self, node: str) -> None:
        """SIGKILL to every process of the node, as when its machine is lost."""
        for pid in self.node_processes(node):
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def start(self) -> subprocess.CompletedProcess[str]:
        """Start the nodes that are down (a node killed by a test comes back)."""
        return local_cluster(self.directory, "start", "ray")


def session_members(session: int) -> list[int]:
    """Live (not zombie) processes of the session ``session``, found through /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def unavailable(reason: str) -> None:
    message = f"Ray cluster not available ({reason}): pip install ray (the version in pyproject.toml)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def local_cluster(directory: Path, *command: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "FACESEARCH_CLUSTER_DIR": str(directory),
        "PYTHON": os.environ.get("PYTHON", sys.executable),  # this Python has ray beside it
    }
    return subprocess.run(
        [str(LOCAL_CLUSTER), *command],
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT_SECONDS,
        check=False,
        env=env,
    )


def running_cluster() -> Iterator[RayCluster]:
    """For the session: a two-node cluster of its own, stopped and removed at the end."""
    if shutil.which("ray", path=str(Path(os.environ.get("PYTHON", sys.executable)).parent)) is None:
        unavailable(f"no ray command beside {sys.executable}")
    # A short folder: Ray's socket paths under it must stay under 108 bytes.
    directory = Path(tempfile.mkdtemp(prefix="fs-ray-"))
    try:
        run = local_cluster(directory, "start", "ray")
        if run.returncode != 0:
            unavailable(f"deploy/local-cluster start ray failed: {run.stderr.strip()[-2000:] or run.stdout.strip()}")
        exports = (line.removeprefix("export ").split("=", 1) for line in run.stdout.splitlines())
        address = next(value for name, value in exports if name == "FACESEARCH_RAY_ADDRESS")
        yield RayCluster(directory, address)
    finally:
        local_cluster(directory, "stop", "ray")
        shutil.rmtree(directory, ignore_errors=True)
