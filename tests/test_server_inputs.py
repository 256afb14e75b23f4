"""Values no catalog can hold, dates that are not dates, and errors nobody expected: each gets a JSON answer
that names the problem, and the server keeps the connection open."""

from __future__ import annotations

import http.client
import json
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from facesearch.engine.engine import Engine
from facesearch.server.app import create_app
from server_support import Gallery, free_port, key, prepare_gallery

HUGE = "99999999999999999999999"
BIGGEST = str(2**63 - 1)


@pytest.fixture(scope="module")
def gallery(tmp_path_factory: pytest.TempPathFactory) -> Gallery:
    return prepare_gallery(tmp_path_factory.mktemp("inputs"), ingest=False)


@pytest.fixture(scope="module")
def client(gallery: Gallery) -> Iterator[TestClient]:
    with Engine.open(gallery.settings) as engine, TestClient(create_app(engine)) as test_client:
        yield test_client


def assert_error(response: Any, status: int, *words: str) -> None:
    body = response.json()
    assert response.status_code == status, body
    assert set(body) == {"status", "code", "message"} and body["status"] == status, body
    assert all(word in body["message"] for word in words), body


@pytest.mark.parametrize(
    ("role", "method", "path", "words"),
    [
        ("search", "GET", f"/v1/images/{HUGE}", ["image_id"]),
        ("search", "GET", f"/v1/images/{HUGE}/picture", ["image_id"]),
        ("search", "GET", f"/v1/images/1/picture?face={HUGE}", ["face"]),
        ("search", "GET", f"/v1/faces/{HUGE}/thumbnail", ["face_id"]),
        ("rights", "DELETE", f"/v1/faces/{HUGE}?reason=ER-1", ["face_id"]),
        ("admin", "DELETE", f"/v1/keys/{HUGE}", ["key_id"]),
        ("search", "GET", f"/v1/people/{HUGE}", ["person_id"]),
        ("search", "GET", "/v1/collections/news/faces?offset=1e20", ["offset"]),
        ("search", "GET", f"/v1/collections/news/faces?offset={HUGE}", ["offset"]),
        ("admin", "GET", f"/v1/keys?offset={HUGE}", ["offset"]),
        ("auditor", "GET", f"/v1/audit?offset={HUGE}", ["offset"]),
        ("ingest", "DELETE", f"/api/v1/recognition/faces/{HUGE}", ["image_id"]),
        ("ingest", "GET", f"/api/v1/recognition/faces?page={HUGE}", ["page"]),
    ],
)
def test_integers_no_catalog_can_hold_are_refused_by_name(
    client: TestClient, gallery: Gallery, role: str, method: str, path: str, words: list[str]
) -> None:
    response = client.request(method, path, headers=key(gallery, role))
    if path.startswith("/api/"):  # CompreFace's error shape and status: 400 with its code for a value out of bounds
        answer = response.json()
        assert (response.status_code, answer["code"]) == (400, 26), answer
        assert all(w in answer["message"] for w in words), answer
    else:
        assert_error(response, 422, *words)


def test_the_biggest_id_the_catalog_holds_is_simply_not_found(client: TestClient, gallery: Gallery) -> None:
    assert_error(client.get(f"/v1/faces/{BIGGEST}", headers=key(gallery, "search")), 404)
    assert_error(client.delete(f"/v1/keys/{BIGGEST}", headers=key(gallery, "admin")), 404)
    erased = client.post(
        "/v1/rights/erase", data={"reference": "ER-1", "face_ids": HUGE}, headers=key(gallery, "rights")
    )
    assert_error(erased, 422, "face_ids")


@pytest.mark.parametrize(
    "consent_at", ["garbage", "2026-02-30", "1e9", 1e9, 0, "9999-12-31", "9999-12-31T23:59:59-01:00"]
)
def test_a_consent_date_that_is_not_a_real_past_date_is_refused(
    client: TestClient, gallery: Gallery, consent_at: object
) -> None:
    body = {"name": "Ada", "consent_given_by": "Ada herself", "consent_scope": "front desk recognition of staff"}
    response = client.post("/v1/subjects", json={**body, "consent_at": consent_at}, headers=key(gallery, "ingest"))
    assert_error(response, 422, "consent_at")
    compreface = client.post(
        "/api/v1/recognition/subjects",
        json={"subject": "Ada", **{k: v for k, v in body.items() if k != "name"}, "consent_at": consent_at},
        headers=key(gallery, "ingest"),
    )
    assert compreface.status_code == 400 and "consent_at" in compreface.json()["message"], compreface.json()


def test_a_real_past_consent_date_is_kept(client: TestClient, gallery: Gallery) -> None:
    body = {"name": "Grace", "consent_given_by": "Grace", "consent_scope": "front desk recognition of staff"}
    enrolled = client.post("/v1/subjects", json={**body, "consent_at": "2024-02-29"}, headers=key(gallery, "ingest"))
    assert enrolled.status_code == 201, enrolled.json()
    assert enrolled.json()["consent_at"].startswith("2024-02-29T00:00:00")


@pytest.mark.parametrize("until", ["0.5", "1e9", "garbage", "2026-13-01", "1700000000"])
def test_dates_in_queries_are_iso_8601_only(client: TestClient, gallery: Gallery, until: str) -> None:
    assert_error(client.get(f"/v1/report?until={until}", headers=key(gallery, "auditor")), 422, "until")
    assert_error(client.get(f"/v1/audit?since={until}", headers=key(gallery, "auditor")), 422, "since")


def test_iso_dates_and_datetimes_in_queries_are_taken(client: TestClient, gallery: Gallery) -> None:
    for until in ("2026-01-01", "2026-01-01T09:30:00Z", "2026-01-01T09:30:00+01:00"):
        report = client.get("/v1/report", params={"until": until}, headers=key(gallery, "auditor"))
        assert report.status_code == 200, report.json()
    assert client.get("/v1/audit?since=2000-01-01", headers=key(gallery, "auditor")).json()["items"]


def test_a_405_names_the_methods_allowed(client: TestClient, gallery: Gallery) -> None:
    response = client.put("/v1/collections", headers=key(gallery, "admin"))
    assert_error(response, 405)
    assert set(response.headers["Allow"].replace(" ", "").split(",")) == {"GET", "POST"}


@pytest.fixture
def failing_server(gallery: Gallery) -> Iterator[int]:
    """A real uvicorn server over the app, with one route that fails as a bug would."""
    with Engine.open(gallery.settings) as engine:
        app: FastAPI = create_app(engine)

        @app.get("/v1/boom")
        def boom() -> None:
            raise RuntimeError("secret detail of a bug")

        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 60
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        try:
            yield port
        finally:
            server.should_exit = True
            thread.join(timeout=20)


def test_an_unexpected_error_is_a_json_500_logged_and_the_connection_stays(
    failing_server: int, gallery: Gallery, caplog: pytest.LogCaptureFixture
) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", failing_server, timeout=10)
    with caplog.at_level(logging.ERROR, logger="facesearch.server"):
        connection.request("GET", "/v1/boom")
        failed = connection.getresponse()
        body = json.loads(failed.read())
    assert failed.status == 500 and failed.getheader("Connection") != "close"
    assert body == {
        "status": 500,
        "code": "internal",
        "message": "internal error (a bug: the server log has the details; please report it)",
    }
    assert "secret detail of a bug" in caplog.text and "Traceback" in caplog.text
    connection.request("GET", "/health")  # the same connection still answers
    again = connection.getresponse()
    assert (again.status, json.loads(again.read())) == (200, {"status": "ok"})
    connection.close()
