"""Commands for accountability: keys, purge, audit log, subject rights and the transparency report."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import click

from facesearch.accountability.rights import HeldImage, SubjectRights
from facesearch.accountability.transparency import TransparencyReport, transparency_report
from facesearch.cli.html_report import write_access_report
from facesearch.cli.render import emit, likelihood, table
from facesearch.cli.state import EXISTING_FILE, JSON_OPTION, CliState, pass_state
from facesearch.core.errors import InvalidValueError
from facesearch.core.results import to_plain
from facesearch.safeguards.vault import generate_master_key

AUDIT_BROKEN_EXIT_CODE = 10
REFERENCE_OPTION = click.option(
    "--reference", help="Request or case reference, written to the audit log (default: $FACESEARCH_PURPOSE)."
)
THRESHOLD_OPTION = click.option(
    "--threshold",
    type=click.FloatRange(0.0, 2.0, min_open=True, max_open=True),
    help=(
        "Largest distance that counts as the same person (default: the threshold a search of every collection "
        "takes, 0.6 at most)."
    ),
)


def moment(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidValueError(f"time {value!r} is not ISO 8601; write e.g. 2026-11-01 or 2026-11-01T08:00") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def register_accountability_commands(cli: click.Group) -> None:
    for command in (key, purge, audit, rights, report):
        cli.add_command(command)


@click.group()
def key() -> None:
    """Master keys (they wrap each collection's encryption key)."""


@key.command("generate")
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), help="Write the key to this new file (mode 600)."
)
def key_generate(out: Path | None) -> None:
    """Print a new random master key, or write it to a file for FACESEARCH_MASTER_KEY_FILE."""
    value = generate_master_key()
    if out is None:
        click.echo(value)
        return
    try:
        with out.open("x") as handle:
            out.chmod(0o600)
            handle.write(value + "\n")
    except FileExistsError:
        raise InvalidValueError(
            f"{out} already exists; a key file is never overwritten (its data would be lost)"
        ) from None
    click.echo(f"master key written to {out}; keep it outside the data folder and back it up")


@click.command()
@JSON_OPTION
@pass_state
def purge(state: CliState, as_json: bool) -> None:
    """Remove everything held past its collection's retention period (also runs whenever data is opened)."""
    with state.engine() as engine:
        result = engine.purge(state.actor)
    rows = [(name, images, faces) for name, (images, faces) in result.by_collection.items()]
    emit(result, as_json, table(["collection", "images removed", "faces removed"], rows) if rows else "nothing expired")


@click.group()
def audit() -> None:
    """Review and verify the tamper-evident audit log."""


@audit.command("list")
@click.option("--actor", "who", help="Only entries by this actor.")
@click.option("--action", help="Only this action (ingest, search, verify, export, purge, erasure, ...).")
@click.option("--purpose", help="Only entries whose purpose contains this text.")
@click.option("--since", help="From this time (ISO 8601, UTC unless a zone is given).")
@click.option("--until", help="Before this time.")
@click.option("--limit", type=click.IntRange(1, 100_000), default=100, show_default=True)
@click.option("--offset", type=click.IntRange(min=0), default=0, show_default=True)
@JSON_OPTION
@pass_state
def audit_list(
    state: CliState,
    who: str | None,
    action: str | None,
    purpose: str | None,
    since: str | None,
    until: str | None,
    limit: int,
    offset: int,
    as_json: bool,
) -> None:
    """List audit entries, oldest first."""
    from facesearch.safeguards.audit import Action

    if action is not None and action not in {a.value for a in Action}:
        raise InvalidValueError(f"action {action!r} is not one of: {', '.join(a.value for a in Action)}")
    with state.engine() as engine:
        entries = engine.catalog.audit.entries(
            actor=who,
            action=action,
            purpose=purpose,
            since=moment(since),
            until=moment(until),
            limit=limit,
            offset=offset,
        )
    rows = [(e.seq, e.at[:19], e.actor, e.action, e.collection, e.purpose, json.dumps(e.details)[:60]) for e in entries]
    emit(entries, as_json, table(["seq", "at", "actor", "action", "collection", "purpose", "details"], rows))


@audit.command("verify")
@JSON_OPTION
@pass_state
def audit_verify(state: CliState, as_json: bool) -> None:
    """Check the hash chain; name the first broken entry (exit code 10) or print the head to keep elsewhere."""
    with state.engine() as engine:
        check = engine.catalog.audit.verify()
    if check.ok:
        emit(check, as_json, f"audit log intact: {check.entries} entries, head {check.head_hash}")
        return
    emit(check, as_json, f"audit log BROKEN at entry {check.first_broken_seq}: {check.problem}")
    sys.exit(AUDIT_BROKEN_EXIT_CODE)


@click.group()
def rights() -> None:
    """Answer a person's access and erasure requests from one photo (never stored) or from ids."""


@rights.command("access")
@click.argument("probe", type=EXISTING_FILE)
@REFERENCE_OPTION
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), help="Write access-report.html and .json here."
)
@THRESHOLD_OPTION
@JSON_OPTION
@pass_state
def rights_access(
    state: CliState, probe: Path, reference: str | None, out: Path | None, threshold: float | None, as_json: bool
) -> None:
    """Every image held that shows the person in PROBE: collection, purpose, basis, source, dates; and the
    possible matches a little further away, for you to review (confirm them with `rights erase --confirm`)."""
    from facesearch.safeguards.audit import ExportEvent

    with state.engine() as engine:
        answer = SubjectRights(engine).access(probe, state.actor, reference or state.settings.purpose, threshold)
        if out is not None:
            page, _ = write_access_report(answer, out)
            engine.catalog.audit.record(
                ExportEvent(
                    actor=state.actor,
                    purpose=answer.reference,
                    what="subject access report",
                    destination=str(out.resolve()),
                    items=len(answer.held),
                )
            )
    headers = ["face", "distance", "same person", "collection", "source", "held since", "deleted by"]
    text = f"{len(answer.held)} image(s) held for request {answer.reference}\n" + table(headers, _rows(answer.held))
    if answer.to_review:
        text += (
            f"\n\n{len(answer.to_review)} possible match(es) to review (distance over {answer.threshold}, up to "
            f"{answer.review_threshold}): look at each; erase those that show the person with "
            "`facesearch rights erase PROBE --confirm FACE`\n" + table(headers, _rows(answer.to_review))
        )
    if answer.review_not_listed:
        text += f"\n{answer.review_not_listed} more possible match(es), further away, not listed"
    if out is not None:
        text += f"\nreport written to {page}"
    emit(answer, as_json, text)


@rights.command("erase")
@click.argument("probe", type=EXISTING_FILE, required=False)
@click.option("--face-id", "face_ids", type=int, multiple=True, help="Erase this face (repeatable).")
@click.option("--image-id", "image_ids", type=int, multiple=True, help="Erase every face of this image (repeatable).")
@click.option(
    "--confirm",
    "confirmed",
    type=int,
    multiple=True,
    help="A possible match of PROBE (listed for review by `rights access`) that shows the person: erase it too "
    "(repeatable).",
)
@REFERENCE_OPTION
@click.option(
    "--object",
    "agreement",
    help="The person also objects to being indexed again: where their explicit agreement to keeping a protected "
    "template is recorded. Ingest then skips their face.",
)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Also write the receipt (JSON) here.")
@THRESHOLD_OPTION
@JSON_OPTION
@pass_state
def rights_erase(
    state: CliState,
    probe: Path | None,
    face_ids: tuple[int, ...],
    image_ids: tuple[int, ...],
    confirmed: tuple[int, ...],
    reference: str | None,
    agreement: str | None,
    out: Path | None,
    threshold: float | None,
    as_json: bool,
) -> None:
    """Erase every face of the person in PROBE (or the given faces/images) and print a receipt."""
    with state.engine() as engine:
        result = SubjectRights(engine).erase(
            state.actor,
            reference or state.settings.purpose,
            probe=probe,
            face_ids=face_ids,
            image_ids=image_ids,
            threshold=threshold,
            confirmed=confirmed,
            objection_agreement=agreement or "",
        )
    if out is not None:
        out.write_text(json.dumps(to_plain(result), indent=2))
    receipt = result.receipt
    text = (
        f"erasure receipt {receipt.id} ({receipt.at.isoformat(timespec='seconds')}, by {receipt.actor}, "
        f"request {receipt.reference}): {receipt.faces_removed} face(s) and {receipt.images_removed} image(s) removed"
    )
    if result.confirmed_face_ids:
        text += f", including the confirmed possible match(es) {', '.join(map(str, result.confirmed_face_ids))}"
    if result.objection_id is not None:
        text += f"; objection recorded (protected template #{result.objection_id})"
    if result.left_to_review:
        headers = ["face", "distance", "same person", "collection", "source", "held since", "deleted by"]
        text += (
            f"\n\n{len(result.left_to_review)} possible match(es) NOT erased, to review: erase those that show the "
            "person with --confirm FACE\n" + table(headers, _rows(result.left_to_review))
        )
    emit(result, as_json, text)


def _rows(held: Sequence[HeldImage]) -> list[tuple[object, ...]]:
    return [
        (
            h.face_id,
            h.distance,
            likelihood(h.same_person),
            h.collection,
            h.source,
            h.ingested_at.date(),
            h.delete_by.date(),
        )
        for h in held
    ]


@click.command()
@click.option("--since", help="Count activity from this time (ISO 8601).")
@click.option("--until", help="Count activity before this time.")
@JSON_OPTION
@pass_state
def report(state: CliState, since: str | None, until: str | None, as_json: bool) -> None:
    """What is held, why and until when; searches by purpose, access requests and erasures in a period."""
    with state.engine() as engine:
        result = transparency_report(engine, moment(since), moment(until))
    emit(result, as_json, _report_text(result))


def _report_text(result: TransparencyReport) -> str:
    rows = [
        (
            c.name,
            c.purpose,
            c.lawful_basis,
            c.biometric_condition,
            f"{c.retention_days}d",
            c.images,
            c.faces,
            c.oldest_item_at.date() if c.oldest_item_at else "-",
            c.next_purge_at.date() if c.next_purge_at else "-",
        )
        for c in result.collections
    ]
    searches = [(purpose or "(none)", count) for purpose, count in sorted(result.searches_by_purpose.items())]
    return "\n".join(
        [
            "held:",
            table(
                ["collection", "purpose", "basis", "condition", "retention", "images", "faces", "oldest", "next purge"],
                rows,
            ),
            "",
            "searches by purpose:",
            table(["purpose", "searches"], searches) if searches else "(none)",
            "",
            f"verifications {result.verifications}, access requests {result.access_requests}, erasures "
            f"{result.erasures}, purges {result.purges}, objections {result.objections}",
        ]
    )
