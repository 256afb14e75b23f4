"""``facesearch serve``: the HTTP service over the data folder, in one process or several."""

from __future__ import annotations

import dataclasses
import os

import click

from facesearch.cli.state import CliState, pass_state
from facesearch.core.errors import InvalidValueError
from facesearch.core.settings import ENV_PREFIX, Settings
from facesearch.engine.engine import Engine

WORKER_STARTUP_SECONDS = 120
"""How long uvicorn waits for a worker process to answer its health check before it kills and replaces it: a worker
imports ONNX Runtime and dlib first, which takes longer than uvicorn's 5 s on a busy machine (every worker was then
killed while it started, again and again)."""


@click.command()
@click.option("--host", help="Address to listen on (default: $FACESEARCH_HOST or 127.0.0.1).")
@click.option("--port", type=click.IntRange(1, 65535), help="Port (default: $FACESEARCH_PORT or 8000).")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    help="Processes that answer requests (default: $FACESEARCH_SERVER_WORKERS or 1); more than 1 needs the catalog "
    "on PostgreSQL (FACESEARCH_DATABASE_URL).",
)
@pass_state
def serve(state: CliState, host: str | None, port: int | None, workers: int | None) -> None:
    """Start the HTTP service: REST API (/v1), CompreFace-compatible API (/api/v1), web UI (/ui), docs (/docs).

    Every call needs an API key: create one with 'facesearch keys create'. Stop with Ctrl-C.
    """
    import uvicorn

    from facesearch.server.app import create_app

    settings = state.settings.replace(
        host=host or state.settings.host,
        port=port or state.settings.port,
        server_workers=workers or state.settings.server_workers,
        threads_per_request=state.settings.threads_per_request or 1,  # concurrent requests, a core each
    )
    engine = Engine.open(settings)  # checks the key and migrates the catalog once, before any worker starts
    processes = settings.server_workers
    if processes > 1 and not engine.catalog.shared:
        engine.close()
        raise InvalidValueError(
            f"--workers {processes} needs the catalog on a database server that every process shares "
            "(FACESEARCH_DATABASE_URL=postgresql+psycopg://...); the data folder's SQLite catalog is served by one "
            "process: leave --workers at 1 (its threads already serve requests side by side)"
        )
    address = f"http://{settings.host}:{settings.port}"
    served = f"{settings.data_dir} at {address}" + (f" in {processes} processes" if processes > 1 else "")
    click.echo(f"facesearch: serving {served} (web UI {address}/ui, docs {address}/docs)")
    if processes > 1:
        engine.close()
        os.environ.update(_environment(settings))  # each worker process builds its settings from it
        uvicorn.run(
            "facesearch.server.processes:app_from_environment",
            factory=True,
            workers=processes,
            host=settings.host,
            port=settings.port,
            log_level="warning",
            timeout_worker_healthcheck=WORKER_STARTUP_SECONDS,
        )
        return
    try:
        uvicorn.run(create_app(engine), host=settings.host, port=settings.port, log_level="warning")
    finally:
        engine.close()


def _environment(settings: Settings) -> dict[str, str]:
    """``settings`` as the ``FACESEARCH_*`` variables that ``Settings.from_env`` reads back."""
    variables = {}
    for spec in dataclasses.fields(settings):
        value = getattr(settings, spec.name)
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        variables[ENV_PREFIX + spec.name.upper()] = text
    return variables
