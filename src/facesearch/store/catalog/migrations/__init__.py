"""The catalog's schema migrations (Alembic): ``versions/`` holds one revision per schema change, run by
``facesearch.store.catalog.migrate`` whenever a catalog is created or opened."""
