"""What the service analyses and computes with no lock held: the probe of an access or erasure request, a
subject's example photo (REST and CompreFace routes), the grouping of a collection into people; and a grouping
computed while the collection changed is computed again, so that no change made meanwhile is lost."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

import facesearch.people.service as people_service
from facesearch.engine.engine import Engine
from facesearch.people.algorithms import reciprocal_jaccard
from facesearch.people.service import People
from facesearch.safeguards.governance import CollectionSpec
from facesearch.server.app import create_app
from facesearch.server.service import Service
from server_support import ADMIN, FAMILY, FIXTURES, Gallery, key, prepare_gallery

OBAMA = FIXTURES / "identities" / "obama__1.jpg"


@pytest.fixture(scope="module")
def gallery(tmp_path_factory: pytest.TempPathFactory) -> Gallery:
    return prepare_gallery(tmp_path_factory.mktemp("scopes"))


@contextmanager
def watched(client: TestClient) -> Iterator[list[bool]]:
    """Whether the service's lock was held during each image analysis the client's requests made."""
    service: Service = client.app.state.service  # type: ignore[attr-defined]
    analyser = service.engine.analyser
    held: list[bool] = []
    analyse = analyser.analyse

    def spied(*args: Any, **kwargs: Any) -> Any:
        held.append(service.access.held())
        return analyse(*args, **kwargs)

    analyser.analyse = spied  # type: ignore[method-assign]
    try:
        yield held
    finally:
        analyser.analyse = analyse  # type: ignore[method-assign]


def test_rights_requests_and_subject_examples_are_analysed_with_no_lock_held(gallery: Gallery) -> None:
    with Engine.open(gallery.settings) as engine, TestClient(create_app(engine)) as client, watched(client) as held:
        probe = {"file": ("probe.jpg", OBAMA.read_bytes())}
        access = client.post(
            "/v1/rights/access", files=probe, data={"reference": "SAR-1"}, headers=key(gallery, "rights")
        )
        assert access.status_code == 200 and access.json()["held"]
        enrolled = client.post(
            "/v1/subjects",
            json={"name": "Barack", "consent_given_by": "Barack", "consent_scope": "front desk"},
            headers=key(gallery, "ingest"),
        )
        assert enrolled.status_code == 201
        example = client.post("/v1/subjects/Barack/examples", files=probe, headers=key(gallery, "ingest"))
        assert example.status_code == 201, example.text
        second = {"file": ("second.jpg", (FIXTURES / "identities" / "obama__2.jpg").read_bytes())}
        compreface = client.post(
            "/api/v1/recognition/faces", params={"subject": "Barack"}, files=second, headers=key(gallery, "ingest")
        )
        assert compreface.status_code == 201, compreface.text
        erased = client.post(
            "/v1/rights/erase", files=probe, data={"reference": "ER-1"}, headers=key(gallery, "rights")
        )
        assert erased.status_code == 200 and erased.json()["receipt"]["faces_removed"] >= 2
        assert held == [False] * 4


def test_clustering_groups_with_no_lock_held(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    small = prepare_gallery(tmp_path, ingest=False)
    with Engine.open(small.settings) as engine, TestClient(create_app(engine)) as client:
        service: Service = client.app.state.service  # type: ignore[attr-defined]
        assert client.post("/v1/collections", json=FAMILY, headers=key(small, "admin")).status_code == 201
        made = client.post(
            "/v1/keys",
            json={"owner": "importer", "role": "ingest", "collections": ["family"]},
            headers=key(small, "admin"),
        )
        ingest = {"X-API-Key": made.json()["token"]}
        photos = sorted((FIXTURES / "identities").iterdir())
        uploads = [("files", (p.name, p.read_bytes())) for p in photos]
        assert client.post("/v1/collections/family/images", files=uploads, headers=ingest).status_code == 200
        held: list[bool] = []

        def spied(*args: Any, **kwargs: Any) -> Any:
            held.append(service.access.held())
            return reciprocal_jaccard(*args, **kwargs)

        monkeypatch.setattr(people_service, "reciprocal_jaccard", spied)
        run = client.post("/v1/collections/family/people/cluster", json={"full": True}, headers=ingest)
        assert run.status_code == 200 and run.json()["faces"] > 0
        assert held == [False]


def test_a_grouping_computed_while_people_changed_is_computed_again(tmp_path: Path) -> None:
    """A split made while a full grouping was computed is kept: the grouping read before the split is dropped
    and computed again, and the split's faces stay apart from their old person."""
    small = prepare_gallery(tmp_path, ingest=False)
    with Engine.open(small.settings) as engine:
        engine.create_collection(CollectionSpec.parse(**FAMILY), ADMIN)  # type: ignore[arg-type]
        engine.ingest("family", sorted((FIXTURES / "identities").iterdir()), ADMIN, workers=1)
        people = People(engine)
        people.cluster("family", ADMIN, full=True)
        grouped = next(p for p in people.list_people("family") if p.face_count > 1)
        moved = people.show(grouped.id).faces[0].face_id
        writes: list[str] = []

        def writing() -> AbstractContextManager[None]:
            if not writes:  # another request's split, between the grouping's read and its write
                people.split(grouped.id, [moved], ADMIN)
            writes.append("write")
            return _nothing()

        people.cluster("family", ADMIN, full=True, writing=writing)
        assert len(writes) == 2  # the first grouping was dropped, the second written
        detail = people.show(grouped.id)
        assert moved not in [face.face_id for face in detail.faces]


@contextmanager
def _nothing() -> Iterator[None]:
    yield
