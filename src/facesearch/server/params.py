"""The bounds of the values a request names: ids and offsets that the catalog can hold (SQLite's 64-bit
integers), and moments written as ISO 8601 dates or datetimes only (no numbers taken as timestamps)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Path
from pydantic import BeforeValidator, WithJsonSchema

MAX_ROW_ID = 2**63 - 1
"""The largest integer the catalog can hold: the bound of every id and offset."""


def parse_moment(value: Any, what: str = "date") -> datetime:
    """An ISO 8601 date (``2026-03-01``) or datetime (``2026-03-01T09:30:00+01:00``), in UTC; naive is UTC.

    Raises ValueError naming ``what`` for anything else: a number, a date that does not exist, a moment that
    cannot be written in UTC."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str) and value.strip()[:1].isdigit() and "-" in value:
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"{what} {value!r} is not a real ISO 8601 date or datetime, e.g. 2026-03-01") from None
    else:
        raise ValueError(f"{what} must be an ISO 8601 date or datetime, e.g. 2026-03-01 or 2026-03-01T09:30:00Z")
    try:
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{what} {value!r} is out of range") from None


def _moment(value: Any) -> datetime:
    return parse_moment(value)


Moment = Annotated[
    datetime,
    BeforeValidator(_moment),
    WithJsonSchema({"type": "string", "format": "date-time", "description": "ISO 8601 date or datetime."}),
]
"""A date or datetime a request names, ISO 8601 only."""
RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID, description="The item's id.")]
