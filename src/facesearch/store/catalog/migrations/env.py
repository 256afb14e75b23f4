"""Alembic's environment for the catalog: runs on the connection ``facesearch.store.catalog.migrate`` passes in
(never on a URL of its own), so a migration runs inside the caller's transaction and lock."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from facesearch.store.catalog.schema import Base

connection: Connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
