from __future__ import annotations

import pytest

from facesearch.core.errors import InvalidValueError
from facesearch.safeguards.governance import BiometricCondition, CollectionSpec, LawfulBasis, parse_retention


@pytest.mark.parametrize(("text", "days"), [("90d", 90), ("12w", 84), ("6m", 180), ("2y", 730), (" 1D ", 1)])
def test_retention_periods_parse_to_days(text: str, days: int) -> None:
    assert parse_retention(text) == days


@pytest.mark.parametrize("text", ["", "forever", "0d", "-3d", "10", "3 months", "101y"])
def test_bad_retention_is_refused_with_an_example(text: str) -> None:
    with pytest.raises(InvalidValueError, match="retention"):
        parse_retention(text)


def test_all_six_article_6_bases_and_ten_article_9_conditions_exist() -> None:
    assert len(LawfulBasis) == 6
    assert len(BiometricCondition) == 10


def test_a_valid_spec_parses() -> None:
    spec = CollectionSpec.parse("staff-2026", "Badge photo matching for site access", "contract", "employment", "1y")
    assert spec.lawful_basis is LawfulBasis.CONTRACT
    assert spec.biometric_condition is BiometricCondition.EMPLOYMENT
    assert spec.retention_days == 365


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("name", "Bad Name!", "collection name"),
        ("purpose", "faces", "purpose"),
        ("lawful_basis", "because", "lawful basis 'because' is not one of: consent"),
        ("biometric_condition", "none", "biometric condition"),
        ("retention", "never", "retention"),
    ],
)
def test_each_required_statement_is_validated(field: str, value: str, message: str) -> None:
    values = {
        "name": "archive",
        "purpose": "Find archive photos of a person",
        "lawful_basis": "public-task",
        "biometric_condition": "archiving-research",
        "retention": "5y",
    }
    values[field] = value
    with pytest.raises(InvalidValueError, match=message):
        CollectionSpec.parse(
            values["name"],
            values["purpose"],
            values["lawful_basis"],
            values["biometric_condition"],
            values["retention"],
        )
