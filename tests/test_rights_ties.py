"""Access and erasure by photo when matches tie: the same photo held in two collections is at the same
distance from the probe twice, and the records then must not be compared (they do not order)."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from pathlib import Path

from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from conftest import SAMPLES, news_spec
from facesearch.accountability.rights import closest_first
from facesearch.core.records import Box
from facesearch.engine.engine import Engine
from facesearch.server.app import create_app
from facesearch.store.catalog.store import FaceDetails
from server_support import ADMIN, prepare_gallery
from test_cli import CREATE, facesearch

HELD = SAMPLES / "gallery" / "obama_1.jpg"
PROBE = SAMPLES / "gallery" / "obama_2.jpg"


def test_cli_access_and_erase_by_photo_held_in_two_collections(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    assert facesearch(data_dir, "init").returncode == 0
    for name in ("news", "archive"):
        assert facesearch(data_dir, *[name if arg == "news" else arg for arg in CREATE]).returncode == 0
        assert facesearch(data_dir, "ingest", name, HELD, "--workers", "1").returncode == 0
    access = facesearch(
        data_dir, "rights", "access", PROBE, "--reference", "SAR-X", "--json", "--out", tmp_path / "sar"
    )
    assert access.returncode == 0, access.stderr
    assert sorted(held["collection"] for held in json.loads(access.stdout)["held"]) == ["archive", "news"]
    erase = facesearch(data_dir, "rights", "erase", PROBE, "--reference", "SAR-X", "--json")
    assert erase.returncode == 0, erase.stderr
    assert json.loads(erase.stdout)["receipt"]["faces_removed"] == 2


def test_http_access_and_erase_by_photo_held_in_two_collections(tmp_path: Path) -> None:
    gallery = prepare_gallery(tmp_path, ingest=False)
    with Engine.open(gallery.settings) as engine:
        engine.create_collection(news_spec("archive"), ADMIN)
        for name in ("news", "archive"):
            engine.ingest(name, [HELD], ADMIN, workers=1)
        with TestClient(create_app(engine)) as client:
            headers = {"X-API-Key": gallery.keys["rights"]}
            probe = [("file", (PROBE.name, PROBE.read_bytes(), "image/jpeg"))]
            access = client.post("/v1/rights/access", files=probe, data={"reference": "SAR-X"}, headers=headers)
            assert access.status_code == 200, access.text
            held = access.json()["held"]
            assert sorted(h["collection"] for h in held) == ["archive", "news"]
            assert held[0]["distance"] == held[1]["distance"]
            erase = client.post("/v1/rights/erase", files=probe, data={"reference": "SAR-X"}, headers=headers)
            assert erase.status_code == 200, erase.text
            assert erase.json()["receipt"]["faces_removed"] == 2


def details(face_id: int) -> FaceDetails:
    return FaceDetails(
        face_id=face_id,
        image_id=face_id,
        collection=f"c{face_id % 3}",
        collection_purpose="p",
        lawful_basis="consent",
        retention_days=30,
        image_path="x.jpg",
        content_id="h",
        box=Box(0, 0, 1, 1),
        ingested_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


@given(
    st.dictionaries(st.integers(1, 10_000), st.sampled_from([0.0, 0.25, 0.25, 0.5, 0.61]), max_size=30),
    st.randoms(use_true_random=False),
)
def test_matches_order_by_distance_then_face_id_whatever_ties_and_order(
    distances: dict[int, float], shuffler: random.Random
) -> None:
    face_ids = list(distances)
    shuffler.shuffle(face_ids)
    ordered = closest_first(distances, {face_id: details(face_id) for face_id in face_ids})
    assert [(d, record.face_id) for d, record in ordered] == sorted((d, f) for f, d in distances.items())
    assert all(distances[record.face_id] == d for d, record in ordered)
