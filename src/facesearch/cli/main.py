"""``facesearch``: index photo folders and find every photo of a face.

Exit codes are listed in EXIT_CODES below (and in ``facesearch --help``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from facesearch.cli.accountability import register_accountability_commands
from facesearch.cli.demo import run_demo
from facesearch.cli.draw import draw_faces
from facesearch.cli.keys import keys
from facesearch.cli.people import people
from facesearch.cli.progress import BarProgress
from facesearch.cli.reindex import reindex
from facesearch.cli.render import emit, likelihood, table
from facesearch.cli.serve import serve
from facesearch.cli.state import EXISTING_FILE, JSON_OPTION, PURPOSE_OPTION, CliState, pass_state
from facesearch.core.errors import INGEST_PARTIAL_EXIT_CODE, FacesearchError
from facesearch.core.results import CollectionInfo, IngestReport, SearchResult
from facesearch.core.settings import Settings
from facesearch.engine.engine import Engine
from facesearch.safeguards.governance import BiometricCondition, CollectionSpec, LawfulBasis
from facesearch.vision.analysis import FaceAnalyser

EXIT_CODES = """\b
Exit codes:
  0  success
  1  internal error (a bug: please report it)
  2  bad usage or invalid value
  3  unreadable, corrupt or too large image
  4  no face found where one is needed
  5  unknown collection or item
  6  already exists
  7  ingest finished but some files failed (each is listed)
  8  data folder missing, not initialised or unusable, or wrong master key
  9  refused: no purpose stated where one is required
  10 the audit log's hash chain is broken (the first broken entry is named)
  11 invalid or revoked API key
  12 the Ray cluster named by --ray (FACESEARCH_RAY_ADDRESS) cannot be reached
  130, 143 stopped by Ctrl-C (SIGINT) or SIGTERM; what was committed stays"""


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}, epilog=EXIT_CODES)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Data folder (default: $FACESEARCH_DATA_DIR or ./facesearch-data).",
)
@click.option("--actor", help="Who is acting, for the audit log (default: $FACESEARCH_ACTOR or your user name).")
@click.version_option(package_name="facesearch")
@click.pass_context
def cli(ctx: click.Context, data_dir: Path | None, actor: str | None) -> None:
    """Index photo collections you are entitled to process and find every photo of a face.

    Needs a master key (FACESEARCH_MASTER_KEY or FACESEARCH_MASTER_KEY_FILE): see 'facesearch key generate'.
    """
    ctx.obj = CliState(Settings.from_env(data_dir=data_dir, actor=actor))


@cli.command()
@pass_state
def init(state: CliState) -> None:
    """Create the data folder and its catalog (safe to run again)."""
    Engine.init(state.settings).close()
    click.echo(f"data folder ready: {state.settings.data_dir}")


# -- collections -------------------------------------------------------------------------------------


@cli.group()
def collection() -> None:
    """Create and inspect collections (each has a purpose, lawful basis and retention)."""


@collection.command("create")
@click.argument("name")
@click.option("--purpose", required=True, help="Why these faces are processed, in a sentence.")
@click.option(
    "--basis",
    "lawful_basis",
    required=True,
    type=click.Choice([b.value for b in LawfulBasis]),
    help="GDPR Art. 6 lawful basis.",
)
@click.option(
    "--condition",
    "biometric_condition",
    required=True,
    type=click.Choice([c.value for c in BiometricCondition]),
    help="GDPR Art. 9(2) condition for processing biometric data.",
)
@click.option("--retention", required=True, help="How long faces are kept: e.g. 90d, 12w, 6m, 2y.")
@click.option("--allow-people", is_flag=True, help="The purpose allows grouping the faces into people.")
@JSON_OPTION
@pass_state
def collection_create(
    state: CliState,
    name: str,
    purpose: str,
    lawful_basis: str,
    biometric_condition: str,
    retention: str,
    allow_people: bool,
    as_json: bool,
) -> None:
    """Create collection NAME."""
    spec = CollectionSpec.parse(name, purpose, lawful_basis, biometric_condition, retention, allow_people)
    with state.engine() as engine:
        info = engine.create_collection(spec, state.actor)
    emit(info, as_json, f"created collection {info.name}\n\n{_collection_text(info)}")


@collection.command("list")
@JSON_OPTION
@pass_state
def collection_list(state: CliState, as_json: bool) -> None:
    """List collections with their counts."""
    with state.engine() as engine:
        infos = engine.collections()
    rows = [(i.name, i.image_count, i.face_count, i.lawful_basis, f"{i.retention_days}d", i.purpose) for i in infos]
    emit(
        infos,
        as_json,
        table(["name", "images", "faces", "basis", "retention", "purpose"], rows)
        if infos
        else "no collections yet: create one with 'facesearch collection create'",
    )


@collection.command("show")
@click.argument("name")
@JSON_OPTION
@pass_state
def collection_show(state: CliState, name: str, as_json: bool) -> None:
    """Show collection NAME."""
    with state.engine() as engine:
        info = engine.collection(name)
    emit(info, as_json, _collection_text(info))


@collection.command("set")
@click.argument("name")
@click.option("--allow-people/--forbid-people", required=True, help="Whether the purpose allows grouping into people.")
@click.option("--reason", required=True, help="Why the declaration changes (written to the audit log).")
@JSON_OPTION
@pass_state
def collection_set(state: CliState, name: str, allow_people: bool, reason: str, as_json: bool) -> None:
    """Change what collection NAME's purpose allows (withdrawing grouping deletes its people)."""
    with state.engine() as engine:
        info = engine.set_people_allowed(name, allow_people, state.actor, reason)
    emit(info, as_json, _collection_text(info))


@collection.command("delete")
@click.argument("name")
@click.option("--reason", required=True, help="Why the collection is deleted (written to the audit log).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_state
def collection_delete(state: CliState, name: str, reason: str, yes: bool) -> None:
    """Delete collection NAME with all its images, faces and vectors, and destroy its key."""
    if not yes:
        click.confirm(f"Delete collection {name!r} and everything in it, irreversibly?", abort=True)
    with state.engine() as engine:
        engine.delete_collection(name, state.actor, reason)
    click.echo(f"deleted collection {name}; its key is destroyed")


def _collection_text(info: CollectionInfo) -> str:
    return table(
        ["field", "value"],
        [
            ("name", info.name),
            ("purpose", info.purpose),
            ("lawful basis", info.lawful_basis),
            ("biometric condition", info.biometric_condition),
            ("retention", f"{info.retention_days} days"),
            ("people grouping", "allowed" if info.people_allowed else "not allowed"),
            ("created", info.created_at.isoformat(timespec="seconds")),
            ("images", info.image_count),
            ("faces", info.face_count),
            ("oldest item", info.oldest_item_at.isoformat(timespec="seconds") if info.oldest_item_at else "-"),
            ("next purge", info.next_purge_at.isoformat(timespec="seconds") if info.next_purge_at else "-"),
        ],
    )


# -- ingest and search -------------------------------------------------------------------------------


@cli.command()
@click.argument("collection_name", metavar="COLLECTION")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--workers", type=click.IntRange(min=1), help="Worker processes (default: one per core).")
@click.option(
    "--ray",
    "ray_address",
    metavar="ADDRESS",
    help="Analyse on the Ray cluster whose head is HOST:PORT (default: $FACESEARCH_RAY_ADDRESS, else local workers).",
)
@click.option("--no-progress", is_flag=True, help="Do not draw a progress bar.")
@JSON_OPTION
@pass_state
def ingest(
    state: CliState,
    collection_name: str,
    paths: tuple[Path, ...],
    workers: int | None,
    ray_address: str | None,
    no_progress: bool,
    as_json: bool,
) -> None:
    """Index the images in PATHS (files or folders, recursively) into COLLECTION.

    Content already in the collection is skipped, so re-running after an interruption continues where
    it stopped. A file that fails is listed with its reason and never stops the others.
    """
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise click.BadParameter(f"{', '.join(missing)} not found; check the paths", param_hint="PATHS")
    with state.engine() as engine:
        report = engine.ingest(
            collection_name,
            list(paths),
            state.actor,
            workers=workers,
            progress=None if no_progress else BarProgress(),
            ray_address=ray_address,
        )
    emit(report, as_json, _ingest_text(report))
    if report.failed:
        sys.exit(INGEST_PARTIAL_EXIT_CODE)


def _ingest_text(report: IngestReport) -> str:
    rate = report.images_added / report.seconds if report.seconds else 0.0
    lines = [
        f"collection {report.collection}: {report.files_seen} files, {report.images_added} images added "
        f"({report.faces_added} faces, {report.images_without_faces} images without faces), "
        f"{report.skipped_already_indexed} already indexed, {len(report.unsupported)} skipped (format not "
        f"supported), {len(report.failed)} failed in {report.seconds:.1f} s ({rate:.1f} images/s)",
    ]
    if report.unsupported:
        rows = [(f.path, f.format) for f in report.unsupported]
        formats = ", ".join(sorted({f.format for f in report.unsupported}))
        lines += ["", f"skipped, {formats} not supported (convert them to JPEG or PNG and ingest those):"]
        lines += [table(["file", "format"], rows)]
    if report.failed:
        lines += ["", "failed files:", table(["file", "reason"], [(f.path, f.reason) for f in report.failed])]
    return "\n".join(lines)


@cli.command()
@click.argument("probe", type=EXISTING_FILE)
@click.option("--top-k", type=click.IntRange(min=1), help="Matches per probe face (default 10).")
@click.option(
    "--threshold",
    type=click.FloatRange(0.0, 2.0, min_open=True, max_open=True),
    help=(
        "Largest distance that counts as a match (default: chosen from FACESEARCH_SEARCH_FALSE_MATCHES and the "
        "faces searched, at most 0.6); the result says how many wrong people it lets through."
    ),
)
@click.option("--face", type=click.IntRange(min=0), help="Search only this face of the probe (numbered from 0).")
@click.option("--collection", "collections", multiple=True, help="Search only these collections (repeatable).")
@PURPOSE_OPTION
@JSON_OPTION
@pass_state
def search(
    state: CliState,
    probe: Path,
    purpose: str | None,
    top_k: int | None,
    threshold: float | None,
    face: int | None,
    collections: tuple[str, ...],
    as_json: bool,
) -> None:
    """Find every indexed photo of the face(s) in PROBE."""
    with state.engine() as engine:
        result = engine.search(
            probe,
            state.actor,
            purpose or state.settings.purpose,
            top_k=top_k,
            threshold=threshold,
            face=face,
            collections=collections or None,
        )
    emit(result, as_json, _search_text(result))


def _search_text(result: SearchResult) -> str:
    blocks = []
    for probe in result.results:
        header = f"probe face {probe.probe_face} at {probe.box.as_list()}: {len(probe.matches)} matches"
        rows = [
            (m.distance, likelihood(m.same_person), m.collection, m.image_path, m.box.as_list(), m.face_id)
            for m in probe.matches
        ]
        headers = ["distance", "same person", "collection", "image", "box", "face"]
        blocks.append(header + ("\n" + table(headers, rows) if rows else ""))
    point = result.operating_point.summary() if result.operating_point else f"threshold {result.threshold}"
    return f"{result.faces_in_probe} face(s) in {result.probe}, {point}\n\n" + "\n\n".join(blocks)


@cli.command()
@click.argument("a", type=EXISTING_FILE)
@click.argument("b", type=EXISTING_FILE)
@click.option(
    "--threshold",
    type=click.FloatRange(0.0, 2.0, min_open=True, max_open=True),
    help="Largest distance that counts as a match (default 0.6).",
)
@PURPOSE_OPTION
@JSON_OPTION
@pass_state
def verify(state: CliState, a: Path, b: Path, threshold: float | None, purpose: str | None, as_json: bool) -> None:
    """Whether the largest face in A and the largest in B are the same person (needs a purpose; audited)."""
    with state.engine() as engine:
        result = engine.verify(a, b, state.actor, purpose or state.settings.purpose, threshold=threshold)
    verdict = "same person" if result.match else "different people"
    emit(result, as_json, f"distance {result.distance:.4f}, threshold {result.threshold}: {verdict}")


@cli.command()
@click.argument("image", type=EXISTING_FILE)
@click.option("--draw", type=click.Path(dir_okay=False, path_type=Path), help="Write a copy with boxes drawn here.")
@JSON_OPTION
@pass_state
def detect(state: CliState, image: Path, draw: Path | None, as_json: bool) -> None:
    """List the faces in IMAGE (box, score, landmarks)."""
    result = FaceAnalyser(state.settings).detect(image)
    if draw is not None:
        draw_faces(image, result.faces, draw)
    rows = [(i, f.box.as_list(), f.score, f.rotation) for i, f in enumerate(result.faces)]
    text = f"{len(result.faces)} face(s) in {image} ({result.width}x{result.height})"
    if rows:
        text += "\n" + table(["face", "box", "score", "rotation"], rows)
    if draw is not None:
        text += f"\nboxes drawn in {draw}"
    emit(result, as_json, text)


@cli.command()
@JSON_OPTION
@pass_state
def stats(state: CliState, as_json: bool) -> None:
    """Counts of collections, images, faces and vectors, and the data folder's size."""
    with state.engine() as engine:
        result = engine.stats()
    rows = [(c.name, c.images, c.faces, c.indexed_vectors) for c in result.collections]
    held = f" (held: {', '.join(result.template_recipes)})" if result.template_recipes else ""
    text = (
        f"data folder {result.data_dir} ({result.data_bytes / 1e6:.1f} MB), catalog {result.catalog_url}\n"
        f"{result.images} images, {result.faces} faces; templates from {result.template_views} view(s){held}\n\n"
        + table(["collection", "images", "faces", "vectors"], rows)
    )
    emit(result, as_json, text)


@cli.command()
@click.option(
    "--samples",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("samples"),
    show_default=True,
    help="Folder with gallery/ and probes/ photos.",
)
@click.option(
    "--report",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to write the HTML report (default: <data-dir>/demo-report.html).",
)
@click.option("--workers", type=click.IntRange(min=1), help="Worker processes (default: one per core).")
@pass_state
def demo(state: CliState, samples: Path, report: Path | None, workers: int | None) -> None:
    """Index the sample gallery and search it with each sample probe (the README's first command)."""
    run_demo(
        state.settings,
        state.actor,
        samples,
        report or state.settings.data_dir / "demo-report.html",
        workers,
        click.echo,
    )


register_accountability_commands(cli)
cli.add_command(people)
cli.add_command(keys)
cli.add_command(serve)
cli.add_command(reindex)


def main() -> None:
    """Entry point: turns facesearch's errors into one line on stderr and a documented exit code."""
    run(cli.main, standalone_mode=True)


def run(command: Callable[..., Any], **kwargs: Any) -> None:
    try:
        command(**kwargs)
    except FacesearchError as problem:
        click.echo(f"error: {problem.message}", err=True)
        sys.exit(problem.exit_code)


if __name__ == "__main__":
    main()
