"""The audit log: typed events, a hash chain that names the first broken entry, filters."""

from __future__ import annotations

import base64
import os
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from conftest import ACTOR, news_spec
from facesearch.core.errors import InvalidValueError
from facesearch.engine.engine import Engine
from facesearch.safeguards.audit import (
    GENESIS,
    Actor,
    ActorKind,
    AuditChain,
    SearchEvent,
    VerifyEvent,
    entry_hash,
    event_types,
)
from facesearch.safeguards.vault import MasterKey, generate_master_key
from facesearch.store.catalog.audit_log import AuditLog


def fill(engine: Engine, count: int = 6) -> AuditLog:
    log = engine.catalog.audit
    for number in range(count):
        log.record(
            SearchEvent(actor=ACTOR, purpose=f"case {number}", probe_sha256=f"{number:064x}", match_count=number)
        )
    return log


def tamper(settings_dir: Path, statement: str, *parameters: object) -> None:
    """Change the catalog behind facesearch's back, as someone with file access could."""
    with sqlite3.connect(settings_dir / "catalog.sqlite3") as connection:
        connection.execute(statement, parameters)


@pytest.fixture
def logged(engine: Engine) -> Engine:
    engine.create_collection(news_spec(), ACTOR)  # entry 1
    fill(engine)  # entries 2-7
    engine.catalog.close()  # release the file so tampering sees committed data
    return engine


def test_an_untouched_log_verifies(logged: Engine, reopen: Callable[[], Engine]) -> None:
    with reopen() as engine:
        check = engine.catalog.audit.verify()
    assert check.ok and check.entries == 7 and len(check.head_hash) == 64


@pytest.mark.parametrize("seq", [1, 4, 7])
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_events SET purpose = 'nothing to see' WHERE seq = ?",
        "UPDATE audit_events SET details = replace(details, '}', ',\"x\":1}') WHERE seq = ?",
        "UPDATE audit_events SET actor = 'someone-else' WHERE seq = ?",
        "UPDATE audit_events SET at = '2020-01-01T00:00:00.000000+00:00' WHERE seq = ?",
        "UPDATE audit_events SET action = 'verify' WHERE seq = ?",
        "DELETE FROM audit_events WHERE seq = ?",
    ],
)
def test_editing_or_deleting_any_single_entry_is_detected_at_that_entry(
    logged: Engine, reopen: Callable[[], Engine], seq: int, statement: str
) -> None:
    tamper(logged.settings.data_dir, statement, seq)
    with reopen() as engine:
        check = engine.catalog.audit.verify()
    assert not check.ok
    assert check.first_broken_seq == seq, check.problem


def test_reordering_entries_is_detected(logged: Engine, reopen: Callable[[], Engine]) -> None:
    tamper(logged.settings.data_dir, "UPDATE audit_events SET seq = -3 WHERE seq = 3")
    tamper(logged.settings.data_dir, "UPDATE audit_events SET seq = 3 WHERE seq = 4")
    tamper(logged.settings.data_dir, "UPDATE audit_events SET seq = 4 WHERE seq = -3")
    with reopen() as engine:
        check = engine.catalog.audit.verify()
    assert not check.ok and check.first_broken_seq == 3


COLUMNS = "seq, at, actor, actor_kind, action, purpose, collection, details, prev_hash"
Digest = Callable[[int, str, str, str, str, str, str, str, str], str]


def rewrite_chain(data_dir: Path, digest: Digest, head: Callable[[int, str], str], start: int = 1) -> None:
    """Recompute every digest from entry ``start`` on with ``digest`` and write the head with ``head``, as a
    forger holding the database would."""
    with sqlite3.connect(data_dir / "catalog.sqlite3") as connection:
        prev = connection.execute("SELECT hash FROM audit_events WHERE seq = ?", (start - 1,)).fetchone()
        prev_hash = prev[0] if prev else GENESIS
        rows = connection.execute(f"SELECT {COLUMNS} FROM audit_events WHERE seq >= ? ORDER BY seq", (start,))
        last = (start - 1, prev_hash)
        for row in rows.fetchall():
            values = (*row[:8], prev_hash)
            prev_hash = digest(*values)
            connection.execute(
                "UPDATE audit_events SET prev_hash = ?, hash = ? WHERE seq = ?", (*values[8:], prev_hash, row[0])
            )
            last = (row[0], prev_hash)
        connection.execute("UPDATE meta SET value = ? WHERE key = 'audit_head'", (head(*last),))


def plain_head(seq: int, digest: str) -> str:
    return f"{seq}:{digest}"


def test_an_edit_with_every_later_hash_recomputed_is_caught_at_the_edit(
    logged: Engine, reopen: Callable[[], Engine]
) -> None:
    tamper(logged.settings.data_dir, "UPDATE audit_events SET purpose = 'forged' WHERE seq = 3")
    rewrite_chain(logged.settings.data_dir, entry_hash, plain_head, start=3)
    with reopen() as engine:
        check = engine.catalog.audit.verify()
    assert not check.ok and check.first_broken_seq == 3
    assert "entry 3 was edited" in check.problem and "keyed MAC" in check.problem


@pytest.mark.parametrize(
    "head", [plain_head, lambda seq, digest: f"{seq}:{digest}:{entry_hash(seq, digest, '', '', '', '', '', '', '')}"]
)
def test_deleting_the_last_entry_and_rewriting_the_head_is_caught(
    logged: Engine, reopen: Callable[[], Engine], head: Callable[[int, str], str]
) -> None:
    tamper(logged.settings.data_dir, "DELETE FROM audit_events WHERE seq = 7")
    with sqlite3.connect(logged.settings.data_dir / "catalog.sqlite3") as connection:
        (last,) = connection.execute("SELECT hash FROM audit_events WHERE seq = 6").fetchone()
    tamper(logged.settings.data_dir, "UPDATE meta SET value = ? WHERE key = 'audit_head'", head(6, last))
    with reopen() as engine:
        check = engine.catalog.audit.verify()
    assert not check.ok and check.first_broken_seq == 7 and "head" in check.problem and check.entries == 6


def test_a_chain_recomputed_with_another_key_does_not_verify(logged: Engine, reopen: Callable[[], Engine]) -> None:
    forger = AuditChain(MasterKey.parse(generate_master_key(), "forger").audit_mac_key(), keyed_from=1)
    tamper(logged.settings.data_dir, "UPDATE audit_events SET purpose = 'forged' WHERE seq = 5")
    rewrite_chain(logged.settings.data_dir, forger.entry_digest, forger.head_value)
    with reopen() as engine:
        check = engine.catalog.audit.verify()
    assert not check.ok and check.first_broken_seq == 1 and "keyed MAC" in check.problem


def make_old_style(data_dir: Path, master_key: str) -> None:
    """Turn a data folder into one written before the chain was keyed: plain sha256 entries, a head without a
    MAC and the master key check of that time."""
    rewrite_chain(data_dir, entry_hash, plain_head)
    nonce = os.urandom(12)
    old_check = nonce + AESGCM(base64.b64decode(master_key)).encrypt(
        nonce, b"facesearch master key check v1", b"key-check"
    )
    tamper(data_dir, "UPDATE meta SET value = ? WHERE key = 'master_key_check'", old_check.hex())


def test_an_old_style_log_still_verifies_and_is_keyed_from_its_next_entry(
    logged: Engine, reopen: Callable[[], Engine]
) -> None:
    make_old_style(logged.settings.data_dir, logged.settings.master_key)
    with sqlite3.connect(logged.settings.data_dir / "catalog.sqlite3") as connection:
        plain = connection.execute("SELECT seq, hash FROM audit_events ORDER BY seq").fetchall()
    with reopen() as engine:
        check = engine.catalog.audit.verify()
        switch = engine.catalog.audit.entries(action="configuration")[-1]
        fill(engine, 1)
    assert check.ok and check.entries == 8, check.problem
    assert switch.seq == 8 and switch.actor_kind == "system" and switch.details["change"] == "audit-chain-keyed"
    assert switch.details["fields"]["keyed_from"] == 8 and switch.prev_hash == plain[-1][1]
    with reopen() as engine:
        assert [(e.seq, e.hash) for e in engine.catalog.audit.entries()][:7] == plain
        check = engine.catalog.audit.verify()
    assert check.ok and check.entries == 9  # keyed once: no second switch

    # An old entry rewritten with every plain hash after it recomputed no longer leads to the keyed switch.
    tamper(logged.settings.data_dir, "UPDATE audit_events SET purpose = 'forged' WHERE seq = 2")
    rewrite_chain(logged.settings.data_dir, entry_hash, plain_head, start=2)
    with reopen() as engine:
        check = engine.catalog.audit.verify()
    assert not check.ok and check.first_broken_seq == 8


def test_dropping_the_last_entries_is_detected(logged: Engine, reopen: Callable[[], Engine]) -> None:
    tamper(logged.settings.data_dir, "DELETE FROM audit_events WHERE seq >= 6")
    with reopen() as engine:
        check = engine.catalog.audit.verify()
    assert not check.ok and check.first_broken_seq == 6 and "removed from the end" in check.problem


def test_entries_filter_by_actor_action_purpose_and_time(engine: Engine) -> None:
    log = fill(engine, 3)
    other = Actor("key:ingest-bot", ActorKind.API_KEY)
    later = datetime.now(UTC) + timedelta(hours=1)
    log.record(VerifyEvent(actor=other, purpose="case 9", distance=0.3, match=True), now=later)
    assert [e.seq for e in log.entries(actor=other.name)] == [4]
    assert len(log.entries(action="search")) == 3
    assert [e.purpose for e in log.entries(purpose="case 1")] == ["case 1"]
    assert [e.seq for e in log.entries(since=later - timedelta(minutes=1))] == [4]
    assert len(log.entries(until=later - timedelta(minutes=1))) == 3
    assert [e.seq for e in log.entries(limit=2, offset=1)] == [2, 3]
    (entry,) = log.entries(action="verify")
    assert entry.actor_kind == "api-key" and entry.details == {
        "distance": 0.3,
        "match": True,
        "a_sha256": "",
        "b_sha256": "",
    }


def test_a_search_entry_holds_the_probe_hash_and_match_ids_never_a_template(engine: Engine) -> None:
    fill(engine, 1)
    (entry,) = engine.catalog.audit.entries(action="search")
    assert set(entry.details) == {
        "probe_sha256", "collections", "threshold", "top_k", "match_count", "match_face_ids", "operating_point",
    }  # fmt: skip


def test_every_action_has_an_event_type() -> None:
    from facesearch.safeguards.audit import Action

    assert {event.action for event in event_types()} == set(Action)


def test_an_actor_needs_a_name() -> None:
    with pytest.raises(InvalidValueError, match="actor"):
        Actor(" ")
