"""Brings a catalog's schema to the newest Alembic revision (``migrations/versions``), whether the catalog is
new, made by an older facesearch, or made before migrations existed (no ``alembic_version`` table)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATION_LOCK = 0x46534D31
"""PostgreSQL advisory lock key ("FSM1"): processes opening one catalog at once migrate it one at a time."""


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None, f"no migrations in {MIGRATIONS}"
    return head


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> None:
    """Run the migrations the catalog lacks, in one transaction (PostgreSQL: with its DDL, under a lock)."""
    head = head_revision()
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        if current_revision(connection) == head:
            return
        command.upgrade(_config(connection), "head")
