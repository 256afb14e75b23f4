"""``facesearch serve``: the HTTP service over the data folder."""

from __future__ import annotations

import click

from facesearch.cli.state import CliState, pass_state
from facesearch.engine.engine import Engine


@click.command()
@click.option("--host", help="Address to listen on (default: $FACESEARCH_HOST or 127.0.0.1).")
@click.option("--port", type=click.IntRange(1, 65535), help="Port (default: $FACESEARCH_PORT or 8000).")
@pass_state
def serve(state: CliState, host: str | None, port: int | None) -> None:
    """Start the HTTP service: REST API (/v1), CompreFace-compatible API (/api/v1), web UI (/ui), docs (/docs).

    Every call needs an API key: create one with 'facesearch keys create'. Stop with Ctrl-C.
    """
    import uvicorn

    from facesearch.server.app import create_app

    settings = state.settings.replace(
        host=host or state.settings.host,
        port=port or state.settings.port,
        threads_per_request=state.settings.threads_per_request or 1,  # concurrent requests, a core each
    )
    engine = Engine.open(settings)
    address = f"http://{settings.host}:{settings.port}"
    click.echo(f"facesearch: serving {settings.data_dir} at {address} (web UI {address}/ui, docs {address}/docs)")
    try:
        uvicorn.run(create_app(engine), host=settings.host, port=settings.port, log_level="warning")
    finally:
        engine.close()
