"""The catalog's database server, whichever it is: SQLite in the data folder (the default) or PostgreSQL
(``FACESEARCH_DATABASE_URL=postgresql+psycopg://...``). Connecting, with a clear error naming the server when it
cannot be reached, the per-dialect settings, and the scrub that takes erased rows' bytes out of the server's files."""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from sqlalchemy.orm import Session

from facesearch.core.errors import CatalogUnavailableError, InvalidValueError

log = logging.getLogger(__name__)

AUDIT_CHAIN_LOCK = 0x46534131
"""PostgreSQL advisory lock key ("FSA1") held by each audit append until its transaction ends."""
SCRUBBED_TABLES = ("faces", "images", "protected_templates", "people", "subjects", "subject_examples")
"""The tables whose deleted rows may hold biometric data or what leads to it (templates, boxes, sources, names)."""


def redact(url: str) -> str:
    """A database URL without its password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url.split("@", 1)[-1] if "@" in url else url


def open_database(url: str) -> Engine:
    """An engine on ``url``, its settings applied; fails with an error naming the server if it is unusable."""
    try:
        engine = create_engine(url, pool_pre_ping=not url.startswith("sqlite"))
    except ArgumentError:
        raise InvalidValueError(
            f"FACESEARCH_DATABASE_URL {redact(url)!r} is not a database URL; "
            "use postgresql+psycopg://USER:PASSWORD@HOST:PORT/DATABASE (or leave it empty for SQLite)"
        ) from None
    except (NoSuchModuleError, ModuleNotFoundError) as exc:
        raise InvalidValueError(
            f"no driver for the catalog database {redact(url)!r} ({exc}); use postgresql+psycopg://... "
            "with the psycopg package installed"
        ) from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        event.listen(engine, "handle_error", partial(_server_unavailable, redact(url)))
    return engine


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")  # with WAL: durable across process crashes
    cursor.execute("PRAGMA secure_delete=ON")  # deleted rows are overwritten with zeros, not left in free pages
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _server_unavailable(url: str, context: ExceptionContext) -> CatalogUnavailableError | None:
    """A server that cannot be reached (wrong host or port, down, gone mid-operation, wrong database or
    credentials) becomes one clear error naming it; any other database error goes on as it was."""
    first_connect = context.connection is None
    if not (first_connect or context.is_disconnect):
        return None
    reason = str(context.original_exception).strip().splitlines()
    what = "cannot connect to" if first_connect else "lost the connection to"
    return CatalogUnavailableError(
        f"{what} the catalog database {url} ({reason[0] if reason else 'no reason given'}); "
        "check FACESEARCH_DATABASE_URL and that the server is running, then run the command again "
        "(nothing was half-written: each change is one transaction)"
    )


def lock_chain(session: Session) -> None:
    """Hold the audit chain's lock until the session's transaction ends (PostgreSQL; SQLite has one writer at a
    time anyway). Under PostgreSQL's READ COMMITTED, two writers would otherwise read the same head and the second
    would fail on the unique ``prev_hash`` at commit, losing its action; with the lock it waits and appends after."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": AUDIT_CHAIN_LOCK})


def scrub_deleted_rows(engine: Engine) -> None:
    """Take deleted rows' bytes out of PostgreSQL's files, after an erasure, a purge or a collection's deletion.

    A DELETE on PostgreSQL only marks rows dead: their bytes stay in the table's files (and in the write-ahead
    log) until overwritten. ``VACUUM FULL`` rewrites each table (and rebuilds its indexes, which is PostgreSQL's
    REINDEX) into new files and unlinks the old ones; ``CHECKPOINT`` then lets the server drop the WAL segments
    that held the deleted rows, once ``pg_switch_wal()`` has moved writing to a new segment. The server must run
    with ``wal_recycle=off`` (deploy/local-cluster sets it) so that old segments are deleted, not renamed and
    reused with the old bytes in them, and with no WAL archive or replication slot holding them.

    Cost: ``VACUUM FULL`` copies each table whole and holds an exclusive lock on it meanwhile, so searches and
    ingests wait; measured here (PostgreSQL 16, 2 shared cores, ``bench/postgres_scrub.py``): 2.4 s at 10,000
    faces, 4.4 s at 100,000, 7.9 s at 300,000, paid once per erasure request, purge or collection deletion,
    not per face. Needs the rights of the tables' owner (and superuser, or
    pg_checkpoint and EXECUTE on pg_switch_wal, for the WAL part; without them the WAL keeps the bytes until
    the server's own checkpoints recycle it)."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        for table in SCRUBBED_TABLES:
            connection.execute(text(f'VACUUM FULL "{table}"'))
        try:
            connection.execute(text("CHECKPOINT"))
            connection.execute(text("SELECT pg_switch_wal()"))
            connection.execute(text("CHECKPOINT"))
        except DBAPIError as exc:
            log.warning("the erased rows are out of the tables, but may stay in the WAL until it is recycled: %s", exc)
        keeps = connection.execute(text("SELECT setting FROM pg_settings WHERE name = 'wal_recycle'")).scalar()
        if keeps == "on":
            log.warning(
                "PostgreSQL runs with wal_recycle=on: old WAL segments holding erased rows are reused, not deleted"
            )
