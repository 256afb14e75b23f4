"""What is held, why, for how long, and what was done with it: the report a regulator or the public
can be shown. It holds counts and declarations, never personal data."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from facesearch.engine.engine import Engine
from facesearch.safeguards.audit import Action


@dataclass(frozen=True)
class CollectionDeclaration:
    name: str
    purpose: str
    lawful_basis: str
    biometric_condition: str
    retention_days: int
    images: int
    faces: int
    oldest_item_at: datetime | None
    next_purge_at: datetime | None


@dataclass(frozen=True)
class TransparencyReport:
    generated_at: datetime
    period_start: datetime | None
    period_end: datetime | None
    collections: list[CollectionDeclaration]
    searches_by_purpose: dict[str, int] = field(default_factory=dict)
    verifications: int = 0
    access_requests: int = 0
    erasures: int = 0
    purges: int = 0
    objections: int = 0


def transparency_report(
    engine: Engine, since: datetime | None = None, until: datetime | None = None
) -> TransparencyReport:
    audit = engine.catalog.audit

    def total(action: Action) -> int:
        return sum(audit.counts_by(action, since, until).values())

    return TransparencyReport(
        generated_at=engine.clock(),
        period_start=since,
        period_end=until,
        collections=[
            CollectionDeclaration(
                name=c.name,
                purpose=c.purpose,
                lawful_basis=c.lawful_basis,
                biometric_condition=c.biometric_condition,
                retention_days=c.retention_days,
                images=c.image_count,
                faces=c.face_count,
                oldest_item_at=c.oldest_item_at,
                next_purge_at=c.next_purge_at,
            )
            for c in engine.collections()
        ],
        searches_by_purpose=audit.counts_by(Action.SEARCH, since, until),
        verifications=total(Action.VERIFY),
        access_requests=total(Action.ACCESS_REQUEST),
        erasures=total(Action.ERASURE),
        purges=total(Action.PURGE),
        objections=total(Action.OBJECTION),
    )
