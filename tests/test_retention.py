"""Retention is enforced: expired data is purged when data is opened, or by 'purge', and recorded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from conftest import ACTOR, PURPOSE
from facesearch.core.settings import Settings
from facesearch.engine.engine import Engine
from facesearch.safeguards.governance import CollectionSpec


def short_spec(name: str, retention: str) -> CollectionSpec:
    return CollectionSpec.parse(name, "Event photos kept for a short while", "consent", "explicit-consent", retention)


def test_expired_faces_no_longer_match_after_the_engine_reopens(
    engine: Engine, settings: Settings, identity_files: dict[str, list[Path]]
) -> None:
    first, second = next(iter(identity_files.values()))[:2]
    engine.create_collection(short_spec("short", "1d"), ACTOR)
    engine.create_collection(short_spec("long", "1y"), ACTOR)
    engine.ingest("short", [first], ACTOR)
    engine.ingest("long", [first], ACTOR)
    assert len(engine.search(second, ACTOR, PURPOSE).results[0].matches) == 2
    engine.close()

    two_days_later = datetime.now(UTC) + timedelta(days=2)
    with Engine.open(settings, clock=lambda: two_days_later) as later:
        matches = later.search(second, ACTOR, PURPOSE).results[0].matches
        assert [m.collection for m in matches] == ["long"]
        short = later.collection("short")
        assert short.image_count == short.face_count == 0
        assert len(later.indexes.index(later.catalog.collection_id("short"))) == 0
        (entry,) = later.catalog.audit.entries(action="purge")
        assert entry.collection == "short" and entry.actor == "facesearch retention"
        assert entry.details["automatic"] is True
        assert entry.details["images_removed"] == entry.details["faces_removed"] == 1


def test_purge_command_reports_what_it_removed_and_nothing_before_it_is_due(
    engine: Engine, identity_files: dict[str, list[Path]]
) -> None:
    photo = next(iter(identity_files.values()))[0]
    engine.create_collection(short_spec("short", "3d"), ACTOR)
    engine.ingest("short", [photo], ACTOR)
    assert engine.purge(ACTOR).by_collection == {}
    engine.clock = lambda: datetime.now(UTC) + timedelta(days=3, minutes=1)
    assert engine.purge(ACTOR).by_collection == {"short": (1, 1)}
    assert engine.collection("short").image_count == 0
    (entry,) = engine.catalog.audit.entries(action="purge")
    assert entry.actor == ACTOR.name and entry.details["automatic"] is False


def test_next_purge_is_the_oldest_item_plus_retention(engine: Engine, identity_files: dict[str, list[Path]]) -> None:
    engine.create_collection(short_spec("short", "2w"), ACTOR)
    assert engine.collection("short").next_purge_at is None
    engine.ingest("short", [next(iter(identity_files.values()))[0]], ACTOR)
    info = engine.collection("short")
    assert info.oldest_item_at is not None
    assert info.next_purge_at == info.oldest_item_at + timedelta(days=14)
