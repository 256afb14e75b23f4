"""Why a collection may hold faces: purpose, lawful basis (GDPR Art. 6), biometric condition (Art. 9)
and retention. A collection cannot exist without all four. Every search, rights request and change of purpose
states its own purpose or reference (``require_purpose``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from facesearch.core.errors import InvalidValueError, RefusedError


class LawfulBasis(StrEnum):
    """GDPR Art. 6(1) (a)-(f)."""

    CONSENT = "consent"
    CONTRACT = "contract"
    LEGAL_OBLIGATION = "legal-obligation"
    VITAL_INTERESTS = "vital-interests"
    PUBLIC_TASK = "public-task"
    LEGITIMATE_INTERESTS = "legitimate-interests"


class BiometricCondition(StrEnum):
    """GDPR Art. 9(2) (a)-(j): the condition that lifts the ban on processing biometric data."""

    EXPLICIT_CONSENT = "explicit-consent"
    EMPLOYMENT = "employment"
    VITAL_INTERESTS = "vital-interests"
    NOT_FOR_PROFIT_BODY = "not-for-profit-body"
    MADE_PUBLIC = "made-public"
    LEGAL_CLAIMS = "legal-claims"
    SUBSTANTIAL_PUBLIC_INTEREST = "substantial-public-interest"
    HEALTH_CARE = "health-care"
    PUBLIC_HEALTH = "public-health"
    ARCHIVING_RESEARCH = "archiving-research"


_RETENTION = re.compile(r"^\s*(\d+)\s*([dwmy])\s*$", re.IGNORECASE)
_DAYS_PER_UNIT = {"d": 1, "w": 7, "m": 30, "y": 365}
MAX_RETENTION_DAYS = 100 * 365
MIN_PURPOSE_LENGTH = 10
"""Characters in a collection's declared purpose (a sentence)."""
MIN_STATED_PURPOSE = 3
"""Characters in the purpose or case reference that a search or a request states (``C-17`` is enough)."""
PURPOSE_FLAG = "--purpose, or FACESEARCH_PURPOSE"
"""Where the command line states a search's or a verification's purpose."""
_E = TypeVar("_E", bound=StrEnum)
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def parse_retention(text: str) -> int:
    """Days in a retention period written as ``<n>d``, ``<n>w``, ``<n>m`` (30 days) or ``<n>y`` (365 days)."""
    match = _RETENTION.match(text)
    if not match:
        raise InvalidValueError(
            f"retention {text!r} is not a period; write a number and a unit, e.g. 90d, 12w, 6m or 2y"
        )
    days = int(match.group(1)) * _DAYS_PER_UNIT[match.group(2).lower()]
    if not 1 <= days <= MAX_RETENTION_DAYS:
        raise InvalidValueError(f"retention {text!r} must be between 1 day and {MAX_RETENTION_DAYS // 365} years")
    return days


def parse_choice(enum: type[_E], value: str, what: str) -> _E:
    try:
        return enum(value.strip().lower())
    except ValueError:
        allowed = ", ".join(member.value for member in enum)
        raise InvalidValueError(f"{what} {value!r} is not one of: {allowed}") from None


@dataclass(frozen=True)
class CollectionSpec:
    """What must be stated to create a collection; validated on construction."""

    name: str
    purpose: str
    lawful_basis: LawfulBasis
    biometric_condition: BiometricCondition
    retention_days: int
    people_allowed: bool = False
    """Whether the purpose allows grouping the collection's faces into people (clustering)."""

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise InvalidValueError(
                f"collection name {self.name!r} must be 1-63 lower-case letters, digits, '-' or '_', "
                "starting with a letter or digit"
            )
        if len(self.purpose.strip()) < MIN_PURPOSE_LENGTH:
            raise InvalidValueError(
                f"purpose {self.purpose!r} is too short; state in a sentence why these faces are processed "
                f"(at least {MIN_PURPOSE_LENGTH} characters)"
            )
        if not 1 <= self.retention_days <= MAX_RETENTION_DAYS:
            raise InvalidValueError(f"retention of {self.retention_days} days is outside 1 day to 100 years")

    @classmethod
    def parse(
        cls,
        name: str,
        purpose: str,
        lawful_basis: str,
        biometric_condition: str,
        retention: str,
        people_allowed: bool = False,
    ) -> CollectionSpec:
        return cls(
            name=name,
            purpose=purpose.strip(),
            lawful_basis=parse_choice(LawfulBasis, lawful_basis, "lawful basis"),
            biometric_condition=parse_choice(BiometricCondition, biometric_condition, "biometric condition"),
            retention_days=parse_retention(retention),
            people_allowed=people_allowed,
        )


def require_purpose(purpose: str, what: str, *, asked_as: str) -> str:
    """The stated purpose of a ``what`` (a search, a request), refused when there is none; it is audited.
    ``asked_as`` names where the caller states it (``--reference``, a form field), for the refusal."""
    stated = purpose.strip()
    if len(stated) < MIN_STATED_PURPOSE:
        raise RefusedError(
            f"a {what} needs a stated purpose or case reference of {MIN_STATED_PURPOSE} characters or more "
            f"({asked_as}); it is written to the audit log"
        )
    return stated
