"""The audit log: typed events, a hash chain that names the first broken entry, filters."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from conftest import ACTOR, news_spec
from facesearch.core.errors import InvalidValueError
from facesearch.engine.engine import Engine
from facesearch.safeguards.audit import Actor, ActorKind, SearchEvent, VerifyEvent, event_types
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


def test_an_edit_with_a_recomputed_hash_breaks_the_link_to_the_next_entry(
    logged: Engine, reopen: Callable[[], Engine]
) -> None:
    with reopen() as engine:
        row = engine.catalog.audit.entries(limit=3)[2]
    from facesearch.safeguards.audit import entry_hash

    forged = entry_hash(row.seq, row.at, row.actor, row.actor_kind, row.action, "forged", row.collection,
                        '{"forged":true}', row.prev_hash)  # fmt: skip
    tamper(
        logged.settings.data_dir,
        "UPDATE audit_events SET purpose='forged', details='{\"forged\":true}', hash=? WHERE seq=3",
        forged,
    )
    with reopen() as engine:
        check = engine.catalog.audit.verify()
    assert not check.ok and check.first_broken_seq == 4


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
    assert set(entry.details) == {"probe_sha256", "collections", "threshold", "top_k", "match_count", "match_face_ids"}


def test_every_action_has_an_event_type() -> None:
    from facesearch.safeguards.audit import Action

    assert {event.action for event in event_types()} == set(Action)


def test_an_actor_needs_a_name() -> None:
    with pytest.raises(InvalidValueError, match="actor"):
        Actor(" ")
