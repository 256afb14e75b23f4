"""Every endpoint against every role: the full matrix, written out here independently of the code.

Allowed calls are sent without their required parameters (or for things that do not exist), so they
fail validation or lookup and change nothing; what matters is that they get past the role check."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from facesearch.safeguards.roles import Role
from facesearch.server.app import create_app
from server_support import Gallery, prepare_gallery

EVERY = frozenset(Role)
VIEWERS = frozenset({Role.SEARCH, Role.RIGHTS})
A, IN, S, AU, R, RC = Role.ADMIN, Role.INGEST, Role.SEARCH, Role.AUDITOR, Role.RIGHTS, Role.RECOGNITION

MATRIX: dict[tuple[str, str], frozenset[Role]] = {
    ("GET", "/v1/me"): EVERY,
    ("GET", "/v1/collections"): EVERY,
    ("POST", "/v1/collections"): frozenset({A}),
    ("GET", "/v1/collections/{name}"): EVERY,
    ("PATCH", "/v1/collections/{name}"): frozenset({A}),
    ("DELETE", "/v1/collections/{name}"): frozenset({A}),
    ("POST", "/v1/collections/{name}/images"): frozenset({IN}),
    ("GET", "/v1/collections/{name}/images"): VIEWERS,
    ("GET", "/v1/collections/{name}/faces"): VIEWERS,
    ("GET", "/v1/images/{image_id}"): VIEWERS,
    ("GET", "/v1/images/{image_id}/picture"): VIEWERS,
    ("DELETE", "/v1/images/{image_id}"): frozenset({R}),
    ("GET", "/v1/faces/{face_id}"): VIEWERS,
    ("GET", "/v1/faces/{face_id}/thumbnail"): VIEWERS,
    ("DELETE", "/v1/faces/{face_id}"): frozenset({R}),
    ("POST", "/v1/search"): frozenset({S}),
    ("POST", "/v1/verify"): frozenset({S}),
    ("POST", "/v1/detect"): frozenset({S}),
    ("GET", "/v1/subjects"): frozenset({IN, R}),
    ("POST", "/v1/subjects"): frozenset({IN}),
    ("POST", "/v1/subjects/{name}/examples"): frozenset({IN}),
    ("DELETE", "/v1/subjects/{name}"): frozenset({IN, R}),
    ("GET", "/v1/audit"): frozenset({AU}),
    ("GET", "/v1/audit/verify"): frozenset({AU}),
    ("GET", "/v1/report"): frozenset({AU}),
    ("POST", "/v1/rights/access"): frozenset({R}),
    ("POST", "/v1/rights/erase"): frozenset({R}),
    ("POST", "/v1/collections/{name}/people/cluster"): frozenset({IN}),
    ("POST", "/v1/collections/{name}/people/cluster/jobs"): frozenset({IN}),
    ("GET", "/v1/collections/{name}/people/cluster/jobs/{job_id}"): frozenset({IN}),
    ("GET", "/v1/collections/{name}/people"): frozenset({S}),
    ("GET", "/v1/people/{person_id}"): frozenset({S}),
    ("PATCH", "/v1/people/{person_id}"): frozenset({S}),
    ("POST", "/v1/people/{person_id}/merge"): frozenset({S}),
    ("POST", "/v1/people/{person_id}/split"): frozenset({S}),
    ("GET", "/v1/stats"): frozenset({A, AU}),
    ("POST", "/v1/purge"): frozenset({A}),
    ("GET", "/v1/keys"): frozenset({A}),
    ("POST", "/v1/keys"): frozenset({A}),
    ("DELETE", "/v1/keys/{key_id}"): frozenset({A}),
    ("POST", "/api/v1/recognition/recognize"): frozenset({S, RC}),
    ("POST", "/api/v1/recognition/faces"): frozenset({IN, RC}),
    ("GET", "/api/v1/recognition/faces"): frozenset({IN, RC}),
    ("DELETE", "/api/v1/recognition/faces"): frozenset({IN, RC}),
    ("DELETE", "/api/v1/recognition/faces/{image_id}"): frozenset({IN, RC}),
    ("GET", "/api/v1/recognition/faces/{image_id}/img"): frozenset({S, RC}),
    ("POST", "/api/v1/recognition/faces/{image_id}/verify"): frozenset({S, RC}),
    ("POST", "/api/v1/recognition/subjects"): frozenset({IN, RC}),
    ("GET", "/api/v1/recognition/subjects"): frozenset({IN, RC}),
    ("PUT", "/api/v1/recognition/subjects/{name}"): frozenset({IN, RC}),
    ("DELETE", "/api/v1/recognition/subjects/{name}"): frozenset({IN, RC}),
    ("DELETE", "/api/v1/recognition/subjects"): frozenset({IN, RC}),
    ("POST", "/api/v1/detection/detect"): frozenset({S}),
    ("POST", "/api/v1/verification/verify"): frozenset({S}),
}
PATH_VALUES = {
    "{name}": "nobody-here",
    "{image_id}": "999999",
    "{face_id}": "999999",
    "{key_id}": "999999",
    "{person_id}": "999999",
    "{job_id}": "999999",
}


@pytest.fixture(scope="module")
def gallery(tmp_path_factory: pytest.TempPathFactory) -> Gallery:
    return prepare_gallery(tmp_path_factory.mktemp("roles"), ingest=False)


@pytest.fixture(scope="module")
def client(gallery: Gallery) -> Iterator[TestClient]:
    from facesearch.engine.engine import Engine

    with Engine.open(gallery.settings) as engine, TestClient(create_app(engine)) as test_client:
        yield test_client


def concrete(path: str) -> str:
    for placeholder, value in PATH_VALUES.items():
        path = path.replace(placeholder, value)
    return path


def served_routes(client: TestClient) -> set[tuple[str, str]]:
    """Every API operation the service serves, as its OpenAPI schema lists them."""
    paths = client.get("/openapi.json").json()["paths"]
    return {
        (method.upper(), path)
        for path, operations in paths.items()
        if path.startswith(("/v1/", "/api/v1/"))
        for method in operations
    }


def test_the_matrix_names_every_endpoint_the_service_serves(client: TestClient) -> None:
    assert served_routes(client) == set(MATRIX)


@pytest.mark.parametrize(("method", "path"), sorted(MATRIX))
def test_each_role_is_admitted_or_refused_as_the_matrix_says(
    client: TestClient, gallery: Gallery, method: str, path: str
) -> None:
    for role in Role:
        response = client.request(method, concrete(path), headers={"X-API-Key": gallery.keys[role.value]})
        body = response.json()
        code = body.get("error", body.get("code"))
        if role in MATRIX[(method, path)]:
            assert response.status_code not in (401, 403), (role, response.status_code, body)
        else:
            assert (response.status_code, code) == (403, "forbidden_role"), (role, body)
            assert role.value in body["message"]


@pytest.mark.parametrize(("method", "path"), sorted(MATRIX))
def test_every_endpoint_refuses_calls_without_a_valid_key(client: TestClient, method: str, path: str) -> None:
    for headers in ({}, {"X-API-Key": "fs_00000000_not-a-real-key"}, {"Authorization": "Bearer nonsense"}):
        response = client.request(method, concrete(path), headers=headers)
        assert response.status_code == 401, (headers, response.json())


def test_a_revoked_key_is_refused_and_a_bearer_token_works(tmp_path: Path) -> None:
    from facesearch.engine.engine import Engine
    from facesearch.store.keys import KeyStore

    gallery = prepare_gallery(tmp_path, ingest=False)
    with Engine.open(gallery.settings) as engine, TestClient(create_app(engine)) as test_client:
        bearer = {"Authorization": f"Bearer {gallery.keys['auditor']}"}
        assert test_client.get("/v1/me", headers=bearer).json()["role"] == "auditor"
        auditor = next(k for k in KeyStore(engine.catalog).list_keys() if k.role is Role.AUDITOR)
        admin = {"X-API-Key": gallery.keys["admin"]}
        assert test_client.delete(f"/v1/keys/{auditor.id}", headers=admin).json()["revoked_at"]
        refused = test_client.get("/v1/me", headers=bearer)
        assert refused.status_code == 401
        assert "revoked" in refused.json()["message"]


def test_a_key_scoped_to_some_collections_sees_no_face_or_photo_of_another(tmp_path: Path) -> None:
    from facesearch.engine.engine import Engine
    from facesearch.store.keys import KeyStore
    from server_support import ADMIN, FIXTURES

    gallery = prepare_gallery(tmp_path, ingest=False)
    photo = FIXTURES / "identities" / "obama__1.jpg"
    with Engine.open(gallery.settings) as engine, TestClient(create_app(engine)) as test_client:
        sent = [("files", (photo.name, photo.read_bytes(), "image/jpeg"))]
        added = test_client.post(
            "/v1/collections/news/images", files=sent, headers={"X-API-Key": gallery.keys["ingest"]}
        )
        assert added.status_code == 200, added.json()
        _, scoped = KeyStore(engine.catalog).create(
            "front desk", "search", ADMIN, purpose="Recognise enrolled staff", collections=["subjects"]
        )
        everywhere = {"X-API-Key": gallery.keys["search"]}
        face = test_client.get("/v1/collections/news/faces", headers=everywhere).json()["items"][0]
        gallery_reads = [
            "/v1/collections/news/images",
            "/v1/collections/news/faces",
            f"/v1/images/{face['image_id']}",
            f"/v1/images/{face['image_id']}/picture",
            f"/v1/faces/{face['id']}",
            f"/v1/faces/{face['id']}/thumbnail",
        ]
        for path in gallery_reads:
            assert test_client.get(path, headers=everywhere).status_code == 200, path
            refused = test_client.get(path, headers={"X-API-Key": scoped})
            assert (refused.status_code, refused.json()["code"]) == (403, "forbidden_collection"), path
            assert "subjects" in refused.json()["message"]
        own = test_client.get("/v1/collections/subjects/faces", headers={"X-API-Key": scoped})
        assert own.status_code == 200
