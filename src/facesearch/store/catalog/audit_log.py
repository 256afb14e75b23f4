"""The audit log's storage: entries appended in the caller's transaction (so an action and its record commit
together), read back with filters, and the whole hash chain verified (``safeguards/audit.py`` defines the events
and the chain)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from facesearch.safeguards.audit import GENESIS, Action, AuditEntry, ChainCheck, Event, canonical, entry_hash
from facesearch.store.catalog.database import lock_chain
from facesearch.store.catalog.schema import AuditRow, MetaRow

HEAD_KEY = "audit_head"


class AuditLog:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def append(self, session: Session, event: Event, now: datetime | None = None) -> AuditEntry:
        """Append ``event`` inside the caller's transaction (so the action and its record commit together)."""
        lock_chain(session)  # PostgreSQL: one appender at a time, reading the head its predecessor committed
        head = session.get(MetaRow, HEAD_KEY, populate_existing=True)
        seq, prev_hash = (0, GENESIS) if head is None else _parse_head(head.value)
        at = (now or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="microseconds")
        details = canonical(event.details())
        values: dict[str, Any] = {
            "seq": seq + 1,
            "at": at,
            "actor": event.actor.name,
            "actor_kind": event.actor.kind.value,
            "action": event.action.value,
            "purpose": event.purpose,
            "collection": event.collection,
            "details": details,
            "prev_hash": prev_hash,
        }
        digest = entry_hash(**values)
        session.add(AuditRow(**values, hash=digest))
        if head is None:
            session.add(MetaRow(key=HEAD_KEY, value=f"{seq + 1}:{digest}"))
        else:
            head.value = f"{seq + 1}:{digest}"
        session.flush()
        return _entry(AuditRow(**values, hash=digest))

    def record(self, event: Event, now: datetime | None = None) -> AuditEntry:
        """Append ``event`` in a transaction of its own, retrying if another writer appended first."""
        for _ in range(5):
            try:
                with self._sessions.begin() as session:
                    return self.append(session, event, now)
            except IntegrityError:
                continue
        raise RuntimeError("could not append to the audit log after 5 attempts (too many concurrent writers)")

    def entries(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        purpose: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[AuditEntry]:
        query = select(AuditRow).order_by(AuditRow.seq)
        if actor:
            query = query.where(AuditRow.actor == actor)
        if action:
            query = query.where(AuditRow.action == Action(action).value)
        if purpose:
            query = query.where(AuditRow.purpose.contains(purpose))
        if since:
            query = query.where(AuditRow.at >= since.astimezone(UTC).isoformat(timespec="microseconds"))
        if until:
            query = query.where(AuditRow.at < until.astimezone(UTC).isoformat(timespec="microseconds"))
        with self._sessions() as session:
            return [_entry(row) for row in session.scalars(query.limit(limit).offset(offset))]

    def verify(self) -> ChainCheck:
        """Walk the chain from the first entry; report the first one that does not fit."""
        expected_prev, expected_seq, count = GENESIS, 1, 0
        with self._sessions() as session:
            head = session.get(MetaRow, HEAD_KEY)
            for row in session.scalars(select(AuditRow).order_by(AuditRow.seq)).yield_per(1000):
                problem = _entry_problem(row, expected_seq, expected_prev)
                if problem:
                    return ChainCheck(False, count, expected_prev, expected_seq, problem)
                expected_prev, expected_seq, count = row.hash, row.seq + 1, count + 1
            head_value = head.value if head else f"0:{GENESIS}"
        if head_value != f"{count}:{expected_prev}":
            return ChainCheck(
                False,
                count,
                expected_prev,
                count + 1,
                f"the log ends at entry {count} but its recorded head is entry {head_value.split(':')[0]}: "
                "entries were removed from the end",
            )
        return ChainCheck(True, count, expected_prev)

    def counts_by(self, action: Action, since: datetime | None, until: datetime | None) -> dict[str, int]:
        """How many entries of ``action`` per purpose in a period."""
        counts: dict[str, int] = {}
        for entry in self.entries(action=action.value, since=since, until=until, limit=10**9):
            counts[entry.purpose] = counts.get(entry.purpose, 0) + 1
        return counts


def _entry_problem(row: AuditRow, expected_seq: int, expected_prev: str) -> str:
    if row.seq != expected_seq:
        return f"entry {expected_seq} is missing (next entry found is {row.seq})"
    if row.prev_hash != expected_prev:
        return f"entry {row.seq} does not follow entry {row.seq - 1}: an entry was removed, reordered or edited"
    recomputed = entry_hash(
        row.seq, row.at, row.actor, row.actor_kind, row.action, row.purpose, row.collection, row.details, row.prev_hash
    )
    if recomputed != row.hash:
        return f"entry {row.seq} was edited after it was written (its content no longer matches its hash)"
    return ""


def _parse_head(value: str) -> tuple[int, str]:
    seq, digest = value.split(":", 1)
    return int(seq), digest


def _entry(row: AuditRow) -> AuditEntry:
    return AuditEntry(
        seq=row.seq,
        at=row.at,
        actor=row.actor,
        actor_kind=row.actor_kind,
        action=row.action,
        purpose=row.purpose,
        collection=row.collection,
        details=json.loads(row.details),
        prev_hash=row.prev_hash,
        hash=row.hash,
    )
