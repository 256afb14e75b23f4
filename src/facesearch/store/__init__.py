"""Durable state: the catalog (SQL: collections, images, faces, people, subjects, keys, the audit log), the
vector index of each collection and how it is kept in step with the catalog across crashes, encrypted uploads,
and retention. A new catalog or vector backend goes here, behind ``store/catalog/store.py``'s ``Catalog`` and
``store/index/base.py``'s ``VectorIndex``."""
