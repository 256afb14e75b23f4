"""Orchestration: the ``Engine`` that the library, the CLI and the HTTP service share (``engine/engine.py``),
and the jobs it runs: opening a data folder, ingest from folders (in worker processes) and from uploads,
batches written with their audit entries, and search across collections.

Kept empty of imports: an ingest worker imports ``facesearch.engine.ingest`` and must not load the engine,
the database layer or the web server.
"""
