"""Every route that returns a face or a photo obeys the key's search budget and is audited with the ids it
showed; a search's matches (what the web UI shows as thumbnails) follow that search without counting again."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from facesearch.engine.engine import Engine
from facesearch.server.app import create_app
from facesearch.store.catalog.browse import Browser, FaceSummary
from server_support import FIXTURES, Client, Gallery, clients_over, key, prepare_gallery

IDENTITIES = FIXTURES / "identities"
PHOTOS = [IDENTITIES / name for name in ("obama__1.jpg", "obama__2.jpg", "bbt_penny__1.png", "bbt_sheldon__1.png")]


@pytest.fixture(scope="module")
def gallery(tmp_path_factory: pytest.TempPathFactory) -> Gallery:
    gallery = prepare_gallery(tmp_path_factory.mktemp("limits"), ingest=False)
    with Engine.open(gallery.settings) as engine, TestClient(create_app(engine)) as client:
        sent = [("files", (p.name, p.read_bytes(), "application/octet-stream")) for p in PHOTOS]
        added = client.post("/v1/collections/news/images", files=sent, headers=key(gallery, "ingest"))
        assert added.json()["report"]["faces_added"] >= 4, added.json()
    return gallery


@pytest.fixture
def serve(gallery: Gallery) -> Iterator[Client]:
    """Test clients over the gallery, opened with ``search_rate_per_minute`` and other settings changed."""
    yield from clients_over(gallery)


def faces_held(client: TestClient) -> list[FaceSummary]:
    """Every face in 'news', read from the catalog directly (no API call, nothing counted)."""
    engine: Engine = client.app.state.service.engine  # type: ignore[attr-defined]
    return Browser(engine.catalog).faces("news", 0, 100).items


def views(client: TestClient, gallery: Gallery, owner: str = "fact-check desk") -> list[dict[str, object]]:
    entries = client.get("/v1/audit?action=view&limit=1000", headers=key(gallery, "auditor")).json()["items"]
    return [entry["details"] for entry in entries if entry["actor"].startswith(owner)]


def test_thumbnails_count_against_the_search_budget_and_are_refused_past_it(serve: Client, gallery: Gallery) -> None:
    client = serve(search_rate_per_minute=3)
    held = faces_held(client)
    faces = [face.id for face in held]
    codes = [client.get(f"/v1/faces/{face}/thumbnail", headers=key(gallery, "search")).status_code for face in faces]
    assert codes[:3] == [200, 200, 200] and set(codes[3:]) == {429}, codes
    for path in (
        "/v1/collections/news/faces",
        "/v1/collections/news/images",
        f"/v1/images/{held[-1].image_id}/picture",
        f"/v1/images/{held[-1].image_id}",
        f"/v1/faces/{faces[-1]}",
    ):
        response = client.get(path, headers=key(gallery, "search"))
        assert (response.status_code, response.json()["code"]) == (429, "rate_limited"), path
    shown = views(client, gallery)
    assert [(v["request"], v["face_ids"], v["counted"]) for v in shown] == [
        ("face thumbnail", [face], True) for face in faces[:3]
    ]
    refusals = client.get("/v1/audit?action=refusal", headers=key(gallery, "auditor")).json()["items"]
    requests = {r["details"]["request"] for r in refusals}
    assert requests == {"face thumbnail", "list faces", "list images", "image picture", "image", "face"}


def test_lists_and_details_count_and_are_audited_with_the_ids_they_show(serve: Client, gallery: Gallery) -> None:
    client = serve(search_rate_per_minute=30)
    listed = client.get("/v1/collections/news/faces", headers=key(gallery, "search")).json()["items"]
    images = client.get("/v1/collections/news/images", headers=key(gallery, "rights")).json()["items"]
    assert listed and images
    shown = views(client, gallery)
    assert shown[-1]["face_ids"] == sorted(face["id"] for face in listed)
    assert views(client, gallery, "privacy desk")[-1]["image_ids"] == sorted(image["id"] for image in images)


def test_the_matches_of_a_search_follow_it_without_counting_again(serve: Client, gallery: Gallery) -> None:
    client = serve(search_rate_per_minute=2)
    probe = [("file", ("probe.jpg", (IDENTITIES / "obama__3.jpg").read_bytes(), "image/jpeg"))]
    found = client.post("/v1/search", files=probe, headers=key(gallery, "search")).json()
    matches = [m for result in found["results"] for m in result["matches"]]
    assert len(matches) >= 2
    for match in matches * 2:  # as the web UI shows them, twice over: no budget spent
        thumbnail = client.get(f"/v1/faces/{match['face_id']}/thumbnail", headers=key(gallery, "search"))
        picture = client.get(f"/v1/images/{match['image_id']}/picture", headers=key(gallery, "search"))
        assert (thumbnail.status_code, picture.status_code) == (200, 200)
        assert thumbnail.headers["content-type"] == "image/jpeg"
    free = [v for v in views(client, gallery) if not v["counted"]]
    assert len(free) == 4 * len(matches)  # each picture audited, none counted
    other = [face.id for face in faces_held(client) if face.id not in {m["face_id"] for m in matches}]
    counted = client.get(f"/v1/faces/{other[0]}/thumbnail", headers=key(gallery, "search"))
    assert counted.status_code == 200  # the budget's second unit
    assert client.get(f"/v1/faces/{other[1]}/thumbnail", headers=key(gallery, "search")).status_code == 429


def test_a_missing_id_counts_too(serve: Client, gallery: Gallery) -> None:
    client = serve(search_rate_per_minute=2)
    missing = [client.get(f"/v1/faces/{9_000 + n}/thumbnail", headers=key(gallery, "search")) for n in range(3)]
    codes = [response.status_code for response in missing]
    assert codes == [404, 404, 429]
