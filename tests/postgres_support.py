"""A real PostgreSQL server for the tests marked ``postgres``: the one named by FACESEARCH_TEST_DATABASE_URL (its
data folder, for the tests that scan it, in FACESEARCH_TEST_PG_DATA), or else the one ``deploy/local-cluster``
starts (and this session stops, if it started it). Each test gets a database of its own, dropped afterwards.
The fixtures (``postgres_server``, ``postgres_url``) are in conftest.py, importing this only when used.

Outside CI, with no server to be had, the tests skip with a message that says how to get one; with CI=true
they fail instead, so that CI never passes by skipping them."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

REPOSITORY = Path(__file__).resolve().parents[1]
LOCAL_CLUSTER = REPOSITORY / "deploy" / "local-cluster"


@dataclass(frozen=True)
class PostgresServer:
    url: str
    """SQLAlchemy URL of a database on the server whose user may create databases."""
    data_dir: Path | None
    """The server's data folder, when it is on this machine and known."""

    def database_url(self, name: str) -> str:
        return make_url(self.url).set(database=name).render_as_string(hide_password=False)

    def connect(self) -> psycopg.Connection[tuple[object, ...]]:
        plain = make_url(self.url).set(drivername="postgresql").render_as_string(hide_password=False)
        return psycopg.connect(plain, autocommit=True)


def unavailable(reason: str) -> None:
    message = (
        f"PostgreSQL not available ({reason}): run deploy/local-cluster start (pip install pgserver, or apt-get "
        "install postgresql), or set FACESEARCH_TEST_DATABASE_URL=postgresql+psycopg://USER@HOST:PORT/DATABASE"
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _cluster(*command: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHON": os.environ.get("PYTHON", sys.executable)}  # this Python has pgserver
    return subprocess.run(
        [str(LOCAL_CLUSTER), *command], capture_output=True, text=True, timeout=120, check=False, env=env
    )


def _exports(output: str) -> dict[str, str]:
    pairs = (line.removeprefix("export ").split("=", 1) for line in output.splitlines() if line.startswith("export "))
    return {name: value for name, value in pairs}


def running_server() -> Iterator[PostgresServer]:
    """For the session: the server, stopped at the end if this started it."""
    given = os.environ.get("FACESEARCH_TEST_DATABASE_URL", "")
    started = False
    if given:
        data = os.environ.get("FACESEARCH_TEST_PG_DATA", "")
        server = PostgresServer(given, Path(data) if data else None)
    else:
        started = _cluster("status", "postgres").returncode != 0
        run = _cluster("start", "postgres")
        if run.returncode != 0:
            unavailable(f"deploy/local-cluster start failed: {run.stderr.strip() or run.stdout.strip()}")
        exports = _exports(run.stdout)
        server = PostgresServer(exports["FACESEARCH_DATABASE_URL"], Path(exports["FACESEARCH_PG_DATA"]))
    try:
        server.connect().close()
    except psycopg.Error as exc:
        unavailable(f"cannot connect to {make_url(server.url).render_as_string(hide_password=True)}: {exc}")
    yield server
    if started:
        _cluster("stop", "postgres")


def fresh_database(postgres_server: PostgresServer) -> Iterator[str]:
    """For one test: the URL of a new, empty database on the server, dropped afterwards."""
    name = f"facesearch_test_{uuid.uuid4().hex[:12]}"
    with postgres_server.connect() as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    yield postgres_server.database_url(name)
    with postgres_server.connect() as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
