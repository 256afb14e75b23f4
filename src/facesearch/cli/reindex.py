"""``facesearch reindex``: re-embed collections with another template recipe."""

from __future__ import annotations

import sys

import click

from facesearch.cli.progress import BarProgress
from facesearch.cli.render import emit, table
from facesearch.cli.state import JSON_OPTION, CliState, pass_state
from facesearch.core.errors import INGEST_PARTIAL_EXIT_CODE
from facesearch.core.results import ReindexReport
from facesearch.core.settings import DEFAULT_TEMPLATE_RECIPE, TEMPLATE_RECIPES


@click.command()
@click.option(
    "--recipe",
    type=click.Choice(TEMPLATE_RECIPES),
    help=(
        f"Template recipe to re-embed with (default: $FACESEARCH_TEMPLATE_RECIPE, else {DEFAULT_TEMPLATE_RECIPE}; "
        "dlib-1view-v1 in a data folder made with one view)."
    ),
)
@click.option("--collection", "collections", multiple=True, help="Re-embed only these collections (repeatable).")
@click.option("--no-progress", is_flag=True, help="Do not draw a progress bar.")
@JSON_OPTION
@pass_state
def reindex(
    state: CliState, recipe: str | None, collections: tuple[str, ...], no_progress: bool, as_json: bool
) -> None:
    """Re-embed every face of the collections with a template recipe, from its source photo or kept upload.

    Each collection switches to the recipe in one step once every face is re-embedded; until then it is
    searched as before. Interrupted (even by kill -9), it goes on where it stopped when run again. A face
    whose photo is gone or changed is listed, and its collection keeps its old recipe: restore the photo,
    or remove its image, and run it again (exit code 7 until then).
    """
    with state.engine() as engine:
        progress = None if no_progress else BarProgress("re-embedding")
        reports = engine.reindex(state.actor, recipe=recipe, collections=collections or None, progress=progress)
    emit(reports, as_json, "\n".join(_text(report) for report in reports))
    if any(report.unavailable for report in reports):
        sys.exit(INGEST_PARTIAL_EXIT_CODE)


def _text(report: ReindexReport) -> str:
    if report.from_recipe == report.to_recipe and not report.re_embedded:
        return f"collection {report.collection}: already {report.to_recipe} ({report.faces} faces)"
    outcome = (
        f"now {report.to_recipe}"
        if report.switched
        else f"still {report.from_recipe}: {len(report.unavailable)} faces could not be re-embedded"
    )
    lines = [
        f"collection {report.collection}: {outcome} ({report.faces} faces, {report.re_embedded} re-embedded now, "
        f"{report.already_done} by an earlier run, {report.seconds:.1f} s)"
    ]
    if report.unavailable:
        rows = [(f.face_id, f.image_id, f.source, f.reason) for f in report.unavailable]
        lines.append(table(["face", "image", "source", "reason"], rows))
    return "\n".join(lines)
