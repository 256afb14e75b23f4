"""API keys: shown once, stored hashed, checked in constant time, revocable, audited."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import ACTOR, news_spec
from facesearch.core.errors import InvalidValueError, NotFoundError, UnauthorizedError
from facesearch.engine.engine import Engine
from facesearch.safeguards.roles import Role
from facesearch.store.keys import KeyStore
from test_cli import CREATE, facesearch


@pytest.fixture
def store(engine: Engine) -> KeyStore:
    engine.create_collection(news_spec(), ACTOR)
    return KeyStore(engine.catalog)


def test_a_key_authenticates_as_its_owner_role_and_purpose(store: KeyStore) -> None:
    key, token = store.create("newsdesk bot", "search", ACTOR, purpose="reader requests, desk 3")
    assert token.startswith("fs_") and len(token) > 40
    found = store.authenticate(token)
    assert (found.id, found.role, found.purpose) == (key.id, Role.SEARCH, "reader requests, desk 3")
    assert found.actor.kind.value == "api-key" and "newsdesk bot" in found.actor.name


def test_only_the_hash_is_stored(engine: Engine, store: KeyStore) -> None:
    _, token = store.create("archivist", "ingest", ACTOR, collections=["news"])
    engine.close()
    on_disk = b"".join(p.read_bytes() for p in engine.settings.data_dir.rglob("*") if p.is_file())
    assert token.encode() not in on_disk and token.split("_", 2)[2].encode() not in on_disk


@pytest.mark.parametrize("tamper", ["", "nonsense", "fs_", "fs_abc_def", "Bearer {token}", "{token}x", "{other}"])
def test_wrong_or_malformed_keys_are_refused_alike(store: KeyStore, tamper: str) -> None:
    _, token = store.create("desk", "search", ACTOR, purpose="case work")
    other = f"fs_{token.split('_')[1]}_{'A' * 43}"  # right prefix, wrong secret
    with pytest.raises(UnauthorizedError, match="invalid or revoked API key"):
        store.authenticate(tamper.format(token=token, other=other))


def test_a_revoked_key_is_refused_and_the_revocation_audited(engine: Engine, store: KeyStore) -> None:
    key, token = store.create("temp", "auditor", ACTOR)
    store.revoke(key.id, ACTOR)
    with pytest.raises(UnauthorizedError):
        store.authenticate(token)
    assert store.list_keys()[0].revoked_at is not None
    changes = [e.details["change"] for e in engine.catalog.audit.entries(action="configuration")]
    assert changes[-2:] == ["key-created", "key-revoked"]
    with pytest.raises(NotFoundError):
        store.revoke(999, ACTOR)


@pytest.mark.parametrize(
    ("role", "options", "message"),
    [
        ("search", {}, "declared purpose"),
        ("ingest", {}, "collections it may use"),
        ("ingest", {"collections": ["nope"]}, "does not exist"),
        ("recognition", {}, "collections it may use"),
        ("search", {"purpose": "desk 3", "consent_attestation": "forms held by HR"}, "enrols no one"),
        ("recognition", {"collections": ["news"], "consent_attestation": "HR"}, "in a sentence"),
        ("root", {}, "role 'root' is not one of"),
    ],
)
def test_keys_need_what_their_role_requires(
    store: KeyStore, role: str, options: dict[str, object], message: str
) -> None:
    with pytest.raises((InvalidValueError, NotFoundError), match=message):
        store.create("someone", role, ACTOR, **options)  # type: ignore[arg-type]


def test_keys_commands(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert facesearch(data, "init").returncode == 0 and facesearch(data, *CREATE).returncode == 0
    created = facesearch(data, "keys", "create", "--owner", "bot", "--role", "search", "--purpose", "desk", "--json")
    assert created.returncode == 0, created.stderr
    token = json.loads(created.stdout)["token"]
    listed = facesearch(data, "keys", "list")
    assert "bot" in listed.stdout and token not in listed.stdout
    assert facesearch(data, "keys", "revoke", "1").returncode == 0
    assert "revoked" in facesearch(data, "keys", "list").stdout


def test_a_recognition_key_carries_its_consent_attestation_and_its_collections_purpose(
    engine: Engine, store: KeyStore
) -> None:
    """One key for CompreFace's recognition service: its attestation is kept, listed and audited; with no purpose
    of its own it recognises under its collection's declared purpose."""
    _, token = store.create(
        "front desk", "recognition", ACTOR, collections=["news"], consent_attestation="signed forms held by HR, P-12"
    )
    found = store.authenticate(token)
    assert (found.role, found.collections) == (Role.RECOGNITION, ["news"])
    assert found.consent_attestation == "signed forms held by HR, P-12" == store.list_keys()[0].consent_attestation
    assert found.purpose == f"news: {news_spec().purpose}"
    created = [e for e in engine.catalog.audit.entries(action="configuration") if e.details["change"] == "key-created"]
    assert created[-1].details["fields"]["consent_attestation"] == "signed forms held by HR, P-12"


def test_keys_create_takes_a_consent_attestation(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert facesearch(data, "init").returncode == 0 and facesearch(data, *CREATE).returncode == 0
    attestation = "signed forms held by HR, policy P-12"
    created = facesearch(
        data, "keys", "create", "--owner", "desk", "--role", "recognition", "--collection", "news",
        "--consent-attestation", attestation, "--json",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["key"]["consent_attestation"] == attestation
    refused = facesearch(
        data, "keys", "create", "--owner", "x", "--role", "auditor", "--consent-attestation", attestation
    )
    assert refused.returncode == 2 and "--consent-attestation is for recognition and ingest keys" in refused.stderr
