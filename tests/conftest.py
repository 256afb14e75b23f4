"""Shared test helpers: paths to the committed fixtures, and engines on temporary data folders."""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from facesearch.core.records import Box
from facesearch.core.settings import Settings
from facesearch.engine.engine import Engine
from facesearch.safeguards.audit import Actor
from facesearch.safeguards.governance import CollectionSpec
from facesearch.safeguards.vault import generate_master_key

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

    from milvus_support import MilvusTestServer
    from postgres_support import PostgresServer
    from ray_support import RayCluster

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


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (0 when they do not meet)."""
    width = min(a.right, b.right) - max(a.left, b.left)
    height = min(a.bottom, b.bottom) - max(a.top, b.top)
    inter = max(0, width) * max(0, height)
    union = a.area + b.area - inter
    return inter / union if union else 0.0


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


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL server (see postgres_support.py): skipped with a message outside CI when there is none."""
    from postgres_support import running_server

    yield from running_server()


@pytest.fixture(scope="session")
def milvus_server() -> Iterator[MilvusTestServer]:
    """A real Milvus server (see milvus_support.py): skipped with a message outside CI when there is none."""
    from milvus_support import running_server

    yield from running_server()


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    """A real two-node Ray cluster of the session's own (see ray_support.py): skipped with a message outside CI when
    there is none."""
    from ray_support import running_cluster

    yield from running_cluster()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A new, empty database on ``postgres_server`` for one test, dropped afterwards."""
    from postgres_support import fresh_database

    yield from fresh_database(postgres_server)


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


# -- browser tests (modules that use these call browser_support.require_chromium() first) ----------------


@pytest.fixture(scope="module")
def screenshots() -> Path:
    from browser_support import SCREENSHOTS

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    from browser_support import CHROMIUM, LAUNCH_ARGS

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    from playwright.sync_api import expect

    from browser_support import TIMEOUT_MS

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(TIMEOUT_MS)
    expect.set_options(timeout=TIMEOUT_MS)
    try:
        yield opened
    finally:
        context.close()
