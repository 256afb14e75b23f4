"""Shared test helpers: paths to the committed fixtures, and engines on temporary data folders."""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from facesearch.audit import Actor
from facesearch.engine import Engine
from facesearch.governance import CollectionSpec
from facesearch.settings import Settings
from facesearch.vault import generate_master_key

FIXTURES = Path(__file__).parent / "fixtures"
SAMPLES = Path(__file__).resolve().parents[1] / "samples"
DEV_DATA = Path(os.environ.get("FACESEARCH_DEV_DATA", Path(__file__).resolve().parents[2] / "shared" / "faces" / "dev"))


def require_dev_data() -> Path:
    """The dev set's folder, or a skip that says how to get the tests that need it."""
    if not (DEV_DATA / "pairs.csv").exists():
        pytest.skip(
            f"dev set not found at {DEV_DATA}: put ../shared/faces/dev beside the repository or set FACESEARCH_DEV_DATA"
        )
    return DEV_DATA


ACTOR = Actor("alice@newsroom.example")
PURPOSE = "reader request 2026-0042"


def fixture_manifest() -> list[dict[str, str]]:
    with (FIXTURES / "manifest.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def news_spec(name: str = "news") -> CollectionSpec:
    return CollectionSpec.parse(
        name=name,
        purpose="Find archive photos of people named in reader requests",
        lawful_basis="legitimate-interests",
        biometric_condition="substantial-public-interest",
        retention="2y",
    )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", workers=1, master_key=generate_master_key())


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    with Engine.init(settings) as opened:
        yield opened


@pytest.fixture
def reopen(settings: Settings) -> Callable[[], Engine]:
    """Opens a second engine on the same data folder, as a new process would."""
    return lambda: Engine.open(settings)


@pytest.fixture(scope="session")
def identity_files() -> dict[str, list[Path]]:
    """Fixture photos of each identity (``identities/<identity>__<n>.<ext>``)."""
    by_identity: dict[str, list[Path]] = {}
    for path in sorted((FIXTURES / "identities").iterdir()):
        by_identity.setdefault(path.name.split("__")[0], []).append(path)
    return by_identity
