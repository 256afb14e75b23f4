"""Hypothesis over each route's parameters (ids, offsets, limits, dates, names, bodies) with a real key of a
role the route admits: no answer is a server error, and every error is JSON in the documented shape."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from facesearch.engine.engine import Engine
from facesearch.server.app import create_app
from server_support import FIXTURES, Gallery, prepare_gallery

EXAMPLES = 25
"""Generated requests per route."""
TRICKY_NUMBERS = ["1e20", "0x10", "-0", " 1", "1.5", "NaN", "inf", "", "9" * 30, str(2**63), str(2**63 - 1), "-1"]
TRICKY_DATES = ["2026-02-30", "9999-12-31", "9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00", "0.5", "1e9"]

integers = st.one_of(st.integers(min_value=-(2**70), max_value=2**70), st.integers(0, 20)).map(str)
numbers = st.one_of(integers, st.sampled_from(TRICKY_NUMBERS), st.text(max_size=12))
dates = st.one_of(
    st.datetimes().map(lambda moment: moment.isoformat()),
    st.dates().map(lambda day: day.isoformat()),
    st.sampled_from(TRICKY_DATES),
    st.floats(allow_nan=True).map(str),
    st.text(max_size=30),
)
names = st.one_of(st.text(max_size=80), st.sampled_from(["news-x", "..", "%00", "a/b", "subjects-", " ", "é" * 70]))
texts = st.text(max_size=200)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.integers(-(2**70), 2**70)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)

NO_QUERY: st.SearchStrategy[dict[str, Any]] = st.just({})


def optional(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=fields)


def body(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A JSON body with some of ``fields`` (or of any type), or any JSON value at all."""
    typed = {name: st.one_of(strategy, json_values) for name, strategy in fields.items()}
    return st.one_of(st.fixed_dictionaries({}, optional=typed), json_values)


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    role: str
    path: dict[str, st.SearchStrategy[str]]
    query: st.SearchStrategy[dict[str, Any]] = NO_QUERY
    json: st.SearchStrategy[Any] | None = None
    form: st.SearchStrategy[dict[str, Any]] | None = None

    def __str__(self) -> str:
        return f"{self.method} {self.template} ({self.role})"


PAGE = optional(offset=numbers, limit=numbers)
ROUTES = [
    Route("GET", "/v1/collections", "admin", {}, PAGE),
    Route("GET", "/v1/collections/{name}", "admin", {"name": names}),
    Route(
        "PATCH",
        "/v1/collections/{name}",
        "admin",
        {"name": names},
        json=body(people_allowed=st.booleans(), reason=texts),
    ),
    Route(
        "DELETE",
        "/v1/collections/{name}",
        "admin",
        {"name": names.filter(lambda n: n not in ("news", "subjects"))},
        optional(reason=texts),
    ),
    Route("GET", "/v1/collections/{name}/images", "search", {"name": names | st.just("news")}, PAGE),
    Route("GET", "/v1/collections/{name}/faces", "rights", {"name": names | st.just("news")}, PAGE),
    Route("GET", "/v1/images/{id}", "search", {"id": numbers}),
    Route("GET", "/v1/images/{id}/picture", "search", {"id": numbers}, optional(face=numbers)),
    Route("GET", "/v1/faces/{id}", "rights", {"id": numbers}),
    Route("GET", "/v1/faces/{id}/thumbnail", "search", {"id": numbers}),
    Route(
        "DELETE",
        "/v1/faces/{id}",
        "rights",
        {"id": numbers.filter(lambda n: n not in ("1", "2"))},
        optional(reason=texts),
    ),
    Route(
        "GET",
        "/v1/collections/{name}/people",
        "search",
        {"name": names | st.just("news")},
        optional(hidden=texts, offset=numbers, limit=numbers),
    ),
    Route(
        "POST",
        "/v1/collections/{name}/people/cluster/jobs",
        "ingest",
        {"name": names | st.just("news")},
        json=body(full=st.booleans()),
    ),
    Route("GET", "/v1/collections/{name}/people/cluster/jobs/{id}", "ingest", {"name": names, "id": numbers}),
    Route("GET", "/v1/people/{id}", "search", {"id": numbers}),
    Route("PATCH", "/v1/people/{id}", "search", {"id": numbers}, json=body(name=texts, hidden=st.booleans())),
    Route("POST", "/v1/people/{id}/merge", "search", {"id": numbers}, json=body(other=st.integers())),
    Route("POST", "/v1/people/{id}/split", "search", {"id": numbers}, json=body(face_ids=st.lists(st.integers()))),
    Route("GET", "/v1/subjects", "ingest", {}, PAGE),
    Route(
        "POST",
        "/v1/subjects",
        "ingest",
        {},
        json=body(name=names, consent_given_by=texts, consent_scope=texts, consent_at=dates),
    ),
    Route("DELETE", "/v1/subjects/{name}", "rights", {"name": names}, optional(reason=texts)),
    Route(
        "GET",
        "/v1/audit",
        "auditor",
        {},
        optional(actor=texts, action=texts, purpose=texts, since=dates, until=dates, offset=numbers, limit=numbers),
    ),
    Route("GET", "/v1/report", "auditor", {}, optional(since=dates, until=dates)),
    Route("GET", "/v1/keys", "admin", {}, PAGE),
    Route(
        "POST", "/v1/keys", "admin", {}, json=body(owner=texts, role=texts, purpose=texts, collections=st.lists(names))
    ),
    Route(
        "DELETE", "/v1/keys/{id}", "admin", {"id": numbers.filter(lambda n: n.strip() not in ("1", "2", "3", "4", "5"))}
    ),
    Route(
        "POST",
        "/v1/rights/erase",
        "rights",
        {},
        form=optional(reference=texts, face_ids=texts, image_ids=texts, objection=texts),
    ),
    Route("GET", "/api/v1/recognition/faces", "ingest", {}, optional(page=numbers, size=numbers, subject=names)),
    Route("DELETE", "/api/v1/recognition/faces/{id}", "ingest", {"id": numbers}),
    Route("PUT", "/api/v1/recognition/subjects/{name}", "ingest", {"name": names}, json=body(subject=names)),
    Route(
        "POST",
        "/api/v1/recognition/subjects",
        "ingest",
        {},
        json=body(subject=names, consent_given_by=texts, consent_scope=texts, consent_at=dates),
    ),
]


@pytest.fixture(scope="module")
def gallery(tmp_path_factory: pytest.TempPathFactory) -> Gallery:
    return prepare_gallery(tmp_path_factory.mktemp("fuzz"), ingest=False)


@pytest.fixture(scope="module")
def client(gallery: Gallery) -> Iterator[TestClient]:
    with (
        Engine.open(gallery.settings.replace(search_rate_per_minute=100_000)) as engine,
        TestClient(create_app(engine)) as test_client,
    ):
        photos = [FIXTURES / "identities" / name for name in ("obama__1.jpg", "bbt_penny__1.png")]
        sent = [("files", (p.name, p.read_bytes(), "application/octet-stream")) for p in photos]
        added = test_client.post(
            "/v1/collections/news/images", files=sent, headers={"X-API-Key": gallery.keys["ingest"]}
        )
        assert added.status_code == 200, added.json()
        yield test_client


def check_answer(route: Route, response: Any) -> None:
    assert response.status_code < 500, (str(route), response.request.url, response.text)
    if response.status_code < 400:
        return
    body = response.json()
    if route.template.startswith("/api/"):
        assert set(body) == {"message", "code", "error"} and isinstance(body["code"], int), body
    else:
        assert set(body) == {"status", "code", "message"} and body["status"] == response.status_code, body
        assert isinstance(body["code"], str) and isinstance(body["message"], str) and body["message"], body


@pytest.mark.parametrize("route", ROUTES, ids=str)
def test_no_parameter_makes_a_server_error_and_every_error_has_the_documented_shape(
    client: TestClient, gallery: Gallery, route: Route
) -> None:
    @given(st.data())
    @seed(20)
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def send(data: st.DataObject) -> None:
        path = route.template
        for name, strategy in route.path.items():
            value = data.draw(strategy, label=name)
            path = path.replace("{" + name + "}", quote(value, safe="") or "%20")
        query = data.draw(route.query, label="query")
        request: dict[str, Any] = {"params": query, "headers": {"X-API-Key": gallery.keys[route.role]}}
        if route.json is not None:
            request["json"] = data.draw(route.json, label="json")
        if route.form is not None:
            request["data"] = data.draw(route.form, label="form")
        check_answer(route, client.request(route.method, path, **request))

    send()
