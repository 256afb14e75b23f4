"""People over HTTP (cluster, list, show, name, merge, split), and retention enforced while serving."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient

from facesearch.engine.engine import Engine
from facesearch.server.app import create_app
from facesearch.server.retention import RetentionSweeper
from server_support import FAMILY, FIXTURES, prepare_gallery


def test_people_are_grouped_corrected_and_audited_over_http(tmp_path: Path) -> None:
    gallery = prepare_gallery(tmp_path, ingest=False)
    with Engine.open(gallery.settings) as engine, TestClient(create_app(engine)) as client:
        admin = {"X-API-Key": gallery.keys["admin"]}
        assert client.post("/v1/collections", json=FAMILY, headers=admin).status_code == 201
        made = client.post(
            "/v1/keys", json={"owner": "importer", "role": "ingest", "collections": ["family"]}, headers=admin
        )
        ingest = {"X-API-Key": made.json()["token"]}
        search = {"X-API-Key": gallery.keys["search"]}
        photos = sorted((FIXTURES / "identities").iterdir())
        uploads = [("files", (p.name, p.read_bytes(), "application/octet-stream")) for p in photos]
        assert client.post("/v1/collections/family/images", files=uploads, headers=ingest).status_code == 200

        run = client.post("/v1/collections/family/people/cluster", json={}, headers=ingest).json()
        assert run["faces"] + run["low_quality"] == len(photos)
        people = client.get("/v1/collections/family/people", headers=search).json()["items"]
        assert people and sum(p["face_count"] for p in people) == run["faces"]

        first, second = people[0], people[1]
        named = client.patch(f"/v1/people/{first['id']}", json={"name": "Grandma"}, headers=search).json()
        assert named["name"] == "Grandma"
        merged = client.post(f"/v1/people/{first['id']}/merge", json={"other": second["id"]}, headers=search).json()
        assert merged["face_count"] == first["face_count"] + second["face_count"]
        faces = client.get(f"/v1/people/{first['id']}", headers=search).json()["faces"]
        split = client.post(
            f"/v1/people/{first['id']}/split", json={"face_ids": [faces[0]["face_id"]]}, headers=search
        ).json()
        assert split["face_count"] == 1 and split["id"] != first["id"]

        news = client.post(
            "/v1/collections/news/people/cluster", json={}, headers={"X-API-Key": gallery.keys["ingest"]}
        )
        assert (news.status_code, news.json()["code"]) == (403, "refused")  # the news purpose does not allow it
        changes = [
            e["details"]["change"]
            for e in client.get("/v1/audit?action=people", headers={"X-API-Key": gallery.keys["auditor"]}).json()[
                "items"
            ]
        ]
        assert changes == ["cluster", "name", "merge", "split"]


def test_the_server_purges_expired_images_while_it_runs(tmp_path: Path) -> None:
    gallery = prepare_gallery(tmp_path)
    now = [datetime.now(UTC)]
    with Engine.open(gallery.settings, clock=lambda: now[0]) as engine, TestClient(create_app(engine)) as client:
        auditor = {"X-API-Key": gallery.keys["auditor"]}
        held = client.get("/v1/collections/news", headers=auditor).json()["image_count"]
        assert held == 12
        sweeper = RetentionSweeper(client.app.state.service, interval_seconds=3600)  # type: ignore[attr-defined]
        assert sweeper.sweep() == 0
        now[0] += timedelta(days=3 * 365)  # past the news collection's two years
        assert sweeper.sweep() == 12
        assert client.get("/v1/collections/news", headers=auditor).json()["image_count"] == 0
        purges = client.get("/v1/audit?action=purge", headers=auditor).json()["items"]
        assert purges[-1]["details"]["images_removed"] == 12 and purges[-1]["details"]["automatic"] is True
