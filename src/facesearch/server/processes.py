"""One process of ``facesearch serve --workers N``: the app over its own engine, opened from the settings that the
command put in the environment (uvicorn starts each worker process afresh and asks this module for its app).

Several processes serve one data folder only with the catalog on a database server (``Catalog.shared``): there the
audit chain is appended under the server's lock, each key's rate limit is kept in the catalog
(``store/rate_limits.py``), and a process brings a collection's vector index up to the catalog's generation of the
collection before each search (``store/consistency.py``), so an upload made through one process is found by a search
through another. Each process keeps its own readers-writer lock: a write in one never waits for a search in another,
and a search may run while another process writes (it sees the catalog before or after that write's transaction)."""

from __future__ import annotations

import atexit

from fastapi import FastAPI

from facesearch.core.settings import Settings
from facesearch.engine.engine import Engine
from facesearch.server.app import create_app


def app_from_environment() -> FastAPI:
    """The app of one worker process (uvicorn's factory): its engine is closed when the process exits."""
    engine = Engine.open(Settings.from_env())
    atexit.register(engine.close)
    return create_app(engine)
