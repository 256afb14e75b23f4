"""The audit log's storage: entries appended in the caller's transaction (so an action and its record commit
together), read back with filters, and the whole chain verified (``safeguards/audit.py`` defines the events
and the chain, keyed by the master key: the log appends and verifies only once it is given the chain)."""

from __future__ import annotations

import hmac
import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from facesearch.core.errors import DataFolderError
from facesearch.safeguards.audit import GENESIS, Action, AuditChain, AuditEntry, ChainCheck, Event, canonical
from facesearch.store.catalog.database import lock_chain
from facesearch.store.catalog.schema import AuditRow, MetaRow

HEAD_KEY = "audit_head"


class AuditLog:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self._appending = threading.Lock()  # one appender at a time in this process (the service's threads)
        self._chain: AuditChain | None = None

    def use_chain(self, chain: AuditChain) -> None:
        """Digest and verify entries with ``chain`` (set when the data folder is opened with its master key)."""
        self._chain = chain

    @property
    def chain(self) -> AuditChain:
        if self._chain is None:
            raise DataFolderError("the audit log was opened without the master key; open the data folder with it")
        return self._chain

    def start_keyed_chain(
        self, mac_key: bytes, check_key: str, key_check: Callable[[int], str], switch: Callable[[int], Event]
    ) -> AuditChain:
        """Key the chain from the next entry on, in one transaction: the meta row ``check_key`` gets
        ``key_check(first keyed entry)``, and a log that already has entries gets the ``switch`` event as that
        first keyed entry (its MAC covers the last plain entry's hash); the head is MACed."""
        with self._sessions.begin() as session:
            head = session.get(MetaRow, HEAD_KEY)
            last = 0 if head is None else _parse_head(head.value)[0]
            chain = AuditChain(mac_key, last + 1)
            session.merge(MetaRow(key=check_key, value=key_check(chain.keyed_from)))
            if head is None:
                session.add(MetaRow(key=HEAD_KEY, value=chain.head_value(0, GENESIS)))
            else:
                self._append(session, chain, switch(chain.keyed_from), None)
        return chain

    def append(self, session: Session, event: Event, now: datetime | None = None) -> AuditEntry:
        """Append ``event`` inside the caller's transaction (so the action and its record commit together)."""
        return self._append(session, self.chain, event, now)

    def _append(self, session: Session, chain: AuditChain, event: Event, now: datetime | None) -> AuditEntry:
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
        digest = chain.entry_digest(**values)
        session.add(AuditRow(**values, hash=digest))
        if head is None:
            session.add(MetaRow(key=HEAD_KEY, value=chain.head_value(seq + 1, digest)))
        else:
            head.value = chain.head_value(seq + 1, digest)
        session.flush()
        return _entry(AuditRow(**values, hash=digest))

    def record(self, event: Event, now: datetime | None = None) -> AuditEntry:
        """Append ``event`` in a transaction of its own, retrying if another writer appended first."""
        with self._appending:
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
        """Walk the chain from the first entry; report the first one that does not fit, or a head that is not
        the last entry's (entries removed from the end) or not MACed with this data folder's key."""
        chain = self.chain
        expected_prev, expected_seq, count = GENESIS, 1, 0
        with self._sessions() as session:
            head = session.get(MetaRow, HEAD_KEY)
            for row in session.scalars(select(AuditRow).order_by(AuditRow.seq)).yield_per(1000):
                problem = _entry_problem(chain, row, expected_seq, expected_prev)
                if problem:
                    return ChainCheck(False, count, expected_prev, expected_seq, problem)
                expected_prev, expected_seq, count = row.hash, row.seq + 1, count + 1
            head_value = head.value if head else ""
        problem = _head_problem(chain, head_value, count, expected_prev)
        if problem:
            return ChainCheck(False, count, expected_prev, count + 1, problem)
        return ChainCheck(True, count, expected_prev)

    def counts_by(self, action: Action, since: datetime | None, until: datetime | None) -> dict[str, int]:
        """How many entries of ``action`` per purpose in a period."""
        counts: dict[str, int] = {}
        for entry in self.entries(action=action.value, since=since, until=until, limit=10**9):
            counts[entry.purpose] = counts.get(entry.purpose, 0) + 1
        return counts


def _entry_problem(chain: AuditChain, row: AuditRow, expected_seq: int, expected_prev: str) -> str:
    if row.seq != expected_seq:
        return f"entry {expected_seq} is missing (next entry found is {row.seq})"
    if row.prev_hash != expected_prev:
        return f"entry {row.seq} does not follow entry {row.seq - 1}: an entry was removed, reordered or edited"
    recomputed = chain.entry_digest(
        row.seq, row.at, row.actor, row.actor_kind, row.action, row.purpose, row.collection, row.details, row.prev_hash
    )
    if not hmac.compare_digest(recomputed, row.hash):
        kind = "its keyed MAC (only the master key makes one)" if chain.is_keyed(row.seq) else "its hash"
        return f"entry {row.seq} was edited after it was written (its content no longer matches {kind})"
    return ""


def _head_problem(chain: AuditChain, head_value: str, count: int, last_digest: str) -> str:
    parts = head_value.split(":")
    if (
        len(parts) != 3
        or not parts[0].isdigit()
        or not hmac.compare_digest(parts[2], chain.head_mac(int(parts[0]), parts[1]))
    ):
        return (
            f"the log's recorded head is missing or not MACed with this data folder's key (the log has {count} "
            "entries): the head was rewritten, so entries may have been removed from the end"
        )
    if int(parts[0]) != count or parts[1] != last_digest:
        return (
            f"the log ends at entry {count} but its recorded head is entry {parts[0]}: "
            "entries were removed from the end"
        )
    if count + 1 < chain.keyed_from:
        return f"the log ends at entry {count} but its keyed chain starts at entry {chain.keyed_from}"
    return ""


def _parse_head(value: str) -> tuple[int, str]:
    """Sequence number and digest of the head: ``seq:digest:mac``, or ``seq:digest`` as written before the chain
    was keyed."""
    seq, digest = value.split(":")[:2]
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
