"""Alembic revisions of the catalog, oldest first (each names the one it follows)."""
