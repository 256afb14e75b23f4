"""``facesearch people``: group faces into people, review and correct the groups."""

from __future__ import annotations

from pathlib import Path

import click

from facesearch.cli.people_report import write_people_page
from facesearch.cli.render import emit, table
from facesearch.cli.state import JSON_OPTION, CliState, pass_state
from facesearch.people.service import People
from facesearch.store.catalog.people import PersonInfo


@click.group()
def people() -> None:
    """Group the faces of a collection into people (where its purpose allows), name, merge, split, hide."""


@people.command("cluster")
@click.argument("collection")
@click.option("--full", is_flag=True, help="Regroup every face (corrections made by hand are kept).")
@JSON_OPTION
@pass_state
def people_cluster(state: CliState, collection: str, full: bool, as_json: bool) -> None:
    """Put the faces of COLLECTION into people: new faces only, or all with --full."""
    with state.engine() as engine:
        report = People(engine).cluster(collection, state.actor, full=full)
    emit(
        report,
        as_json,
        f"{report.collection}: {report.faces} faces grouped into {report.people} people "
        f"({report.new_people} new, {report.assigned_to_existing} faces joined existing people, "
        f"{report.people_dropped} emptied people removed); {report.low_quality} low-quality faces kept out "
        f"in {report.seconds:.1f} s",
    )


@people.command("list")
@click.argument("collection")
@click.option("--hidden", is_flag=True, help="Include hidden people.")
@click.option("--min-faces", type=click.IntRange(min=1), default=1, show_default=True)
@click.option(
    "--html", "page", type=click.Path(dir_okay=False, path_type=Path), help="Also write a page of faces here."
)
@JSON_OPTION
@pass_state
def people_list(
    state: CliState, collection: str, hidden: bool, min_faces: int, page: Path | None, as_json: bool
) -> None:
    """People of COLLECTION, largest first, with their representative face."""
    with state.engine() as engine:
        service = People(engine)
        found = [p for p in service.list_people(collection, include_hidden=hidden) if p.face_count >= min_faces]
        low_quality = service.low_quality_faces(collection)
        alone = service.faces_alone(collection)
    notes = [
        f"{alone} face(s) stand alone, a person of one face: grouping joins only faces close to others; "
        "merge any that belong to someone",
        f"{low_quality} low-quality face(s) are kept out of people (small, unsure or blurred)",
    ]
    if page is not None:
        write_people_page(found, page, f"People in {collection}", notes)
    rows = [(p.id, p.name or "-", p.face_count, "hidden" if p.hidden else "", _where(p)) for p in found]
    text = "\n".join([table(["person", "name", "faces", "", "representative face"], rows), *notes])
    emit({"people": found, "faces_alone": alone, "low_quality_faces": low_quality}, as_json, text)


@people.command("show")
@click.argument("person_id", type=int)
@JSON_OPTION
@pass_state
def people_show(state: CliState, person_id: int, as_json: bool) -> None:
    """A person's faces and photos."""
    with state.engine() as engine:
        detail = People(engine).show(person_id)
    rows = [(f.face_id, f.image_path, f.box.as_list(), f.score, "yes" if f.locked else "") for f in detail.faces]
    header = f"person {detail.info.id} {detail.info.name or '(unnamed)'}: {detail.info.face_count} face(s)"
    emit(detail, as_json, header + "\n" + table(["face", "image", "box", "score", "placed by hand"], rows))


@people.command("name")
@click.argument("person_id", type=int)
@click.argument("name")
@pass_state
def people_name(state: CliState, person_id: int, name: str) -> None:
    """Label a person (a label, not an enrolment: it records no consent)."""
    with state.engine() as engine:
        People(engine).name(person_id, name, state.actor)
    click.echo(f"person {person_id} is now called {name!r}")


@people.command("merge")
@click.argument("keep_id", type=int)
@click.argument("other_id", type=int)
@pass_state
def people_merge(state: CliState, keep_id: int, other_id: int) -> None:
    """Move every face of OTHER_ID into KEEP_ID (kept together by later clustering)."""
    with state.engine() as engine:
        People(engine).merge(keep_id, other_id, state.actor)
    click.echo(f"person {other_id} merged into {keep_id}")


@people.command("split")
@click.argument("person_id", type=int)
@click.argument("face_ids", type=int, nargs=-1, required=True)
@pass_state
def people_split(state: CliState, person_id: int, face_ids: tuple[int, ...]) -> None:
    """Move FACE_IDS out of PERSON_ID into a new person (kept apart by later clustering)."""
    with state.engine() as engine:
        new_id = People(engine).split(person_id, list(face_ids), state.actor)
    click.echo(f"{len(face_ids)} face(s) split out of person {person_id} into person {new_id}")


@people.command("hide")
@click.argument("person_id", type=int)
@click.option("--unhide", is_flag=True, help="Show the person again.")
@pass_state
def people_hide(state: CliState, person_id: int, unhide: bool) -> None:
    """Hide a person from lists (their faces stay grouped)."""
    with state.engine() as engine:
        People(engine).hide(person_id, state.actor, hidden=not unhide)
    click.echo(f"person {person_id} {'shown' if unhide else 'hidden'}")


def _where(person: PersonInfo) -> str:
    face = person.representative
    return f"{face.image_path} {face.box.as_list()}" if face else "-"
