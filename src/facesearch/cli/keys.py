"""``facesearch keys``: API keys for the HTTP service, created, listed and revoked by an administrator."""

from __future__ import annotations

import click

from facesearch.cli.render import emit, table
from facesearch.cli.state import JSON_OPTION, CliState, pass_state
from facesearch.safeguards.roles import Role
from facesearch.store.keys import KeyStore


@click.group()
def keys() -> None:
    """Create, list and revoke API keys (stored hashed; each has an owner, a role and a purpose)."""


@keys.command("create")
@click.option("--owner", required=True, help="Person or system the key is issued to.")
@click.option("--role", required=True, type=click.Choice([r.value for r in Role]), help="What the key may do.")
@click.option("--purpose", default="", help="Declared purpose (required for search keys; audited on every search).")
@click.option(
    "--collection",
    "collections",
    multiple=True,
    help="Collection an ingest or recognition key may use (repeatable).",
)
@click.option(
    "--consent-attestation",
    default="",
    help="Where the consent of the subjects this key enrols is held (recognition and ingest keys); recorded with "
    "every enrolment made with the key. Without it the key cannot enrol through the CompreFace API.",
)
@JSON_OPTION
@pass_state
def keys_create(
    state: CliState,
    owner: str,
    role: str,
    purpose: str,
    collections: tuple[str, ...],
    consent_attestation: str,
    as_json: bool,
) -> None:
    """Create a key and print it once: only its hash is kept.

    A recognition key is one key for CompreFace's recognition service: it enrols subjects into its collections
    (under its consent attestation) and recognises faces among them."""
    with state.engine() as engine:
        key, token = KeyStore(engine.catalog).create(
            owner,
            role,
            state.actor,
            purpose=purpose,
            collections=collections,
            consent_attestation=consent_attestation,
        )
    text = f"key {key.id} ({key.role}) for {key.owner}: {token}\nstore it now; it cannot be shown again"
    emit({"key": key, "token": token}, as_json, text)


@keys.command("list")
@JSON_OPTION
@pass_state
def keys_list(state: CliState, as_json: bool) -> None:
    """Every key with its owner, role, purpose and state (never the key itself)."""
    with state.engine() as engine:
        found = KeyStore(engine.catalog).list_keys()
    rows = [
        (
            k.id,
            k.prefix,
            k.owner,
            k.role,
            k.purpose or "-",
            ",".join(k.collections) or "-",
            "revoked" if k.revoked_at else "active",
        )
        for k in found
    ]
    emit(found, as_json, table(["id", "prefix", "owner", "role", "purpose", "collections", "state"], rows))


@keys.command("revoke")
@click.argument("key_id", type=int)
@pass_state
def keys_revoke(state: CliState, key_id: int) -> None:
    """Revoke key KEY_ID at once."""
    with state.engine() as engine:
        key = KeyStore(engine.catalog).revoke(key_id, state.actor)
    click.echo(f"key {key.id} ({key.owner}) revoked")
