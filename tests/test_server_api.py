"""The native REST API over a real engine: uploads, search, rights, subjects, limits and errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from server_support import FIXTURES, SEARCH_PURPOSE, Client, Gallery, clients_over, key, prepare_gallery

IDENTITIES = FIXTURES / "identities"
OBAMA = [IDENTITIES / f"obama__{n}.jpg" for n in (1, 2, 3)]
PENNY = IDENTITIES / "bbt_penny__1.png"


@pytest.fixture
def gallery(tmp_path: Path) -> Gallery:
    return prepare_gallery(tmp_path, ingest=False)


@pytest.fixture
def serve(gallery: Gallery) -> Iterator[Client]:
    """A test client over an engine opened with the given settings changes."""
    yield from clients_over(gallery)


def files(*paths: Path, field: str = "files") -> list[tuple[str, tuple[str, bytes, str]]]:
    return [(field, (path.name, path.read_bytes(), "application/octet-stream")) for path in paths]


def upload(client: TestClient, gallery: Gallery, *paths: Path, collection: str = "news") -> dict[str, object]:
    response = client.post(f"/v1/collections/{collection}/images", files=files(*paths), headers=key(gallery, "ingest"))
    assert response.status_code == 200, response.json()
    body: dict[str, object] = response.json()
    return body


def test_a_batch_upload_is_searchable_and_every_match_says_where_it_came_from(serve: Client, gallery: Gallery) -> None:
    client = serve()
    body = upload(client, gallery, OBAMA[0], OBAMA[1], PENNY)
    report = body["report"]
    assert isinstance(report, dict)
    assert (report["images_added"], report["faces_added"], report["failed"]) == (3, 3, [])
    found = client.post(
        "/v1/search", files=files(OBAMA[2], field="file"), data={"case": "C-17"}, headers=key(gallery, "search")
    )
    assert found.status_code == 200
    matches = found.json()["results"][0]["matches"]
    assert sorted(m["image_path"] for m in matches) == ["upload:obama__1.jpg", "upload:obama__2.jpg"]
    assert [m["distance"] for m in matches] == sorted(m["distance"] for m in matches)
    assert all(m["collection"] == "news" and m["distance"] <= 0.6 for m in matches)
    entry = client.get("/v1/audit?action=search", headers=key(gallery, "auditor")).json()["items"][-1]
    assert entry["purpose"] == f"{SEARCH_PURPOSE} | case: C-17"
    assert sorted(entry["details"]["match_face_ids"]) == sorted(m["face_id"] for m in matches)


def test_uploading_the_same_image_again_adds_nothing(serve: Client, gallery: Gallery) -> None:
    client = serve()
    first = upload(client, gallery, OBAMA[0])
    again = upload(client, gallery, OBAMA[0])
    assert again["report"]["skipped_already_indexed"] == 1  # type: ignore[index]
    assert again["images"] == first["images"]


def test_images_and_faces_are_listed_page_by_page_and_shown_as_pictures(serve: Client, gallery: Gallery) -> None:
    client = serve()
    upload(client, gallery, *OBAMA, PENNY)
    viewer = key(gallery, "search")
    first = client.get("/v1/collections/news/images?limit=3", headers=viewer).json()
    second = client.get("/v1/collections/news/images?limit=3&offset=3", headers=viewer).json()
    assert (first["total"], len(first["items"]), len(second["items"])) == (4, 3, 1)
    assert {i["id"] for i in first["items"]}.isdisjoint(i["id"] for i in second["items"])
    faces = client.get("/v1/collections/news/faces", headers=viewer).json()["items"]
    image = client.get(f"/v1/images/{faces[0]['image_id']}", headers=viewer).json()
    assert image["faces"][0]["id"] == faces[0]["id"]
    for url in (f"/v1/faces/{faces[0]['id']}/thumbnail", f"/v1/images/{image['id']}/picture?face={faces[0]['id']}"):
        picture = client.get(url, headers=viewer)
        assert picture.headers["content-type"] == "image/jpeg"
        assert picture.content[:3] == b"\xff\xd8\xff"
    assert client.get("/v1/collections/news/images?limit=5000", headers=viewer).status_code == 422


def test_uploads_are_encrypted_at_rest_and_gone_after_erasure(serve: Client, gallery: Gallery) -> None:
    client = serve()
    upload(client, gallery, *OBAMA)
    stored = sorted((gallery.data_dir / "uploads").rglob("*.sealed"))
    assert len(stored) == 3
    assert all(b"JFIF" not in path.read_bytes() and b"Exif" not in path.read_bytes() for path in stored)
    erased = client.post(
        "/v1/rights/erase",
        files=files(OBAMA[2], field="file"),
        data={"reference": "SAR-2026-7"},
        headers=key(gallery, "rights"),
    )
    assert erased.status_code == 200, erased.json()
    assert erased.json()["receipt"]["faces_removed"] == 3
    assert not list((gallery.data_dir / "uploads").rglob("*.sealed"))
    again = client.post("/v1/search", files=files(OBAMA[2], field="file"), headers=key(gallery, "search"))
    assert again.json()["results"][0]["matches"] == []


def test_an_access_request_lists_what_is_held_and_why(serve: Client, gallery: Gallery) -> None:
    client = serve()
    upload(client, gallery, OBAMA[0], PENNY)
    answer = client.post(
        "/v1/rights/access",
        files=files(OBAMA[2], field="file"),
        data={"reference": "SAR-2026-8"},
        headers=key(gallery, "rights"),
    ).json()
    assert [(h["source"], h["collection"], h["lawful_basis"]) for h in answer["held"]] == [
        ("upload:obama__1.jpg", "news", "legitimate-interests")
    ]
    held = {p.stem for p in (gallery.data_dir / "uploads").rglob("*.sealed")}
    assert len(held) == 2 and answer["probe_sha256"] not in held  # the probe itself is not kept


def test_searches_over_the_rate_limit_are_refused_and_audited(serve: Client, gallery: Gallery) -> None:
    client = serve(search_rate_per_minute=2)
    probe = files(PENNY, field="file")
    codes = [client.post("/v1/detect", files=probe, headers=key(gallery, "search")).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    refused = client.post("/v1/search", files=probe, headers=key(gallery, "search"))
    assert refused.json()["code"] == "rate_limited"
    assert int(refused.headers["Retry-After"]) >= 1
    refusals = client.get("/v1/audit?action=refusal", headers=key(gallery, "auditor")).json()["items"]
    assert [r["details"]["request"] for r in refusals] == ["detect", "search"]
    assert all(r["actor"].startswith("fact-check desk") for r in refusals)


@pytest.mark.parametrize(
    ("path", "code", "status"),
    [
        (FIXTURES / "corrupt" / "truncated.jpg", "bad_image", 400),
        (FIXTURES / "noface" / "banana.jpg", "no_face", 422),
        (Path(__file__), "bad_image", 400),
    ],
)
def test_a_bad_probe_gets_a_reason(serve: Client, gallery: Gallery, path: Path, code: str, status: int) -> None:
    response = serve().post("/v1/search", files=files(path, field="file"), headers=key(gallery, "search"))
    assert (response.status_code, response.json()["code"]) == (status, code)
    assert len(response.json()["message"]) > 20


def test_bad_uploads_are_refused_or_listed_and_nothing_held_is_lost(serve: Client, gallery: Gallery) -> None:
    client = serve(max_file_bytes=60_000, max_upload_files=3)
    small = sorted(IDENTITIES.glob("*.jpg"), key=lambda p: p.stat().st_size)[0]
    assert upload(client, gallery, small)["report"]["images_added"] == 1  # type: ignore[index]
    big = max(IDENTITIES.iterdir(), key=lambda p: p.stat().st_size)
    assert big.stat().st_size > 60_000
    too_big = client.post("/v1/collections/news/images", files=files(big), headers=key(gallery, "ingest"))
    assert (too_big.status_code, too_big.json()["code"]) == (413, "too_large")
    too_many = client.post("/v1/collections/news/images", files=files(*[small] * 4), headers=key(gallery, "ingest"))
    assert (too_many.status_code, too_many.json()["code"]) == (413, "too_large")
    empty = client.post(
        "/v1/collections/news/images", files=[("files", ("e.jpg", b"", "image/jpeg"))], headers=key(gallery, "ingest")
    )
    assert (empty.status_code, empty.json()["code"]) == (422, "invalid_value")
    mixed = client.post(
        "/v1/collections/news/images",
        files=[*files(small), ("files", ("notes.jpg", b"not an image at all", "image/jpeg"))],
        headers=key(gallery, "ingest"),
    ).json()
    assert mixed["report"]["skipped_already_indexed"] == 1
    assert [f["path"] for f in mixed["report"]["failed"]] == ["notes.jpg"]
    assert client.get("/v1/collections/news", headers=key(gallery, "auditor")).json()["image_count"] == 1


def test_an_ingest_key_adds_only_to_its_collections(serve: Client, gallery: Gallery) -> None:
    client = serve()
    admin = key(gallery, "admin")
    created = client.post(
        "/v1/collections",
        json={
            "name": "hr",
            "purpose": "Badge photos of employees for door access",
            "lawful_basis": "contract",
            "biometric_condition": "employment",
            "retention": "1y",
        },
        headers=admin,
    )
    assert created.status_code == 201, created.json()
    refused = client.post("/v1/collections/hr/images", files=files(PENNY), headers=key(gallery, "ingest"))
    assert (refused.status_code, refused.json()["code"]) == (403, "forbidden_collection")


def test_admin_creates_a_key_over_http_and_it_works_once_shown(serve: Client, gallery: Gallery) -> None:
    client = serve()
    made = client.post(
        "/v1/keys", json={"owner": "desk 2", "role": "search", "purpose": "Fact checks"}, headers=key(gallery, "admin")
    ).json()
    assert client.get("/v1/me", headers={"X-API-Key": made["token"]}).json()["owner"] == "desk 2"
    listed = client.get("/v1/keys", headers=key(gallery, "admin")).json()["items"]
    assert all("token" not in item and "secret_hash" not in item for item in listed)
    no_purpose = client.post("/v1/keys", json={"owner": "x", "role": "search"}, headers=key(gallery, "admin"))
    assert (no_purpose.status_code, no_purpose.json()["code"]) == (422, "invalid_value")


def test_subjects_need_consent_and_withdrawal_erases_them(serve: Client, gallery: Gallery) -> None:
    client = serve()
    ingest = key(gallery, "ingest")
    refused = client.post("/v1/subjects", json={"name": "Barack"}, headers=ingest)
    assert refused.status_code == 422
    enrolled = client.post(
        "/v1/subjects",
        json={"name": "Barack", "consent_given_by": "Barack himself", "consent_scope": "Door access at the office"},
        headers=ingest,
    )
    assert enrolled.status_code == 201, enrolled.json()
    example = client.post("/v1/subjects/Barack/examples", files=files(OBAMA[0], field="file"), headers=ingest)
    assert example.status_code == 201, example.json()
    no_face = client.post(
        "/v1/subjects/Barack/examples", files=files(FIXTURES / "noface" / "banana.jpg", field="file"), headers=ingest
    )
    assert no_face.json()["code"] == "no_face"
    group = client.post(
        "/v1/subjects/Barack/examples", files=files(FIXTURES / "multi" / "two_people.jpg", field="file"), headers=ingest
    )
    assert (group.status_code, group.json()["code"]) == (422, "too_many_faces")  # no bystander is enrolled
    listed = client.get("/v1/subjects", headers=ingest).json()["items"]
    assert [(s["name"], s["examples"], s["consent_given_by"]) for s in listed] == [("Barack", 1, "Barack himself")]
    withdrawn = client.delete("/v1/subjects/Barack?reason=consent withdrawn by email", headers=key(gallery, "rights"))
    assert withdrawn.status_code == 200, withdrawn.json()
    assert withdrawn.json()["receipt"]["faces_removed"] == 1
    assert client.get("/v1/subjects", headers=ingest).json()["items"] == []
    assert client.get("/v1/collections/subjects", headers=ingest).json()["face_count"] == 0
    actions = [
        e["details"].get("change")
        for e in client.get("/v1/audit?action=subject", headers=key(gallery, "auditor")).json()["items"]
    ]
    assert actions == ["enrolled", "consent-withdrawn"]


def test_errors_are_json_with_a_code_and_no_stack_trace(
    serve: Client, gallery: Gallery, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = serve()
    missing = client.get("/v1/no-such-thing")
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
    bad_param = client.get("/v1/audit?limit=0", headers=key(gallery, "auditor"))
    assert (bad_param.status_code, bad_param.json()["code"]) == (422, "invalid_request")
    assert "limit" in bad_param.json()["message"]

    def broken() -> None:
        raise RuntimeError("secret internals /etc/passwd")

    engine = client.app.state.service.engine  # type: ignore[attr-defined]
    monkeypatch.setattr(engine, "collections", broken)
    faulty = TestClient(client.app, raise_server_exceptions=False).get(
        "/v1/collections", headers=key(gallery, "search")
    )
    assert (faulty.status_code, faulty.json()["code"]) == (500, "internal")
    assert "passwd" not in faulty.text and "Traceback" not in faulty.text


def test_health_readiness_and_offline_docs(serve: Client) -> None:
    client = serve()
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json()["status"] == "ready"
    schema = client.get("/openapi.json").json()
    assert "/v1/search" in schema["paths"] and "/api/v1/recognition/recognize" in schema["paths"]
    docs = client.get("/docs").text
    assert "swagger-ui-bundle.js" in docs and "cdn." not in docs
    asset = docs.split('src="')[1].split('"')[0]
    assert client.get(asset).status_code == 200
    ui = client.get("/ui/")
    assert ui.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in ui.headers["content-security-policy"]
