"""The official CompreFace Python client (compreface-sdk), unchanged, against a real ``facesearch serve``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from compreface import CompreFace  # type: ignore[import-untyped]

from server_support import FIXTURES, Gallery, live_server, prepare_gallery

IDENTITIES = FIXTURES / "identities"
OBAMA = [str(IDENTITIES / f"obama__{n}.jpg") for n in (1, 2, 3)]
PENNY = [str(IDENTITIES / f"bbt_penny__{n}.png") for n in (1, 2, 3)]
CONSENT = {"consent_given_by": "the subject, in writing", "consent_scope": "Recognition at the office front desk"}


@pytest.fixture(scope="module")
def gallery(tmp_path_factory: pytest.TempPathFactory) -> Gallery:
    return prepare_gallery(tmp_path_factory.mktemp("compreface"), ingest=False)


@pytest.fixture(scope="module")
def server(gallery: Gallery) -> Iterator[tuple[str, CompreFace]]:
    with live_server(gallery, FACESEARCH_SEARCH_RATE_PER_MINUTE="1000") as base:
        host, port = base.rsplit(":", 1)
        yield base, CompreFace(domain=host, port=port)


def enrol(base: str, gallery: Gallery, name: str) -> dict[str, Any]:
    """Enrolment with the consent record CompreFace's API has no field for (the SDK cannot send it)."""
    response = httpx2.post(
        f"{base}/api/v1/recognition/subjects",
        json={"subject": name, **CONSENT},
        headers={"x-api-key": gallery.keys["ingest"]},
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def test_recognition_detection_and_verification_through_the_sdk(
    server: tuple[str, CompreFace], gallery: Gallery
) -> None:
    base, compreface = server
    enrolment = compreface.init_face_recognition(gallery.keys["ingest"])
    recognition = compreface.init_face_recognition(gallery.keys["search"])
    refused = enrolment.get_subjects().add("obama")
    assert "consent" in refused["message"]
    assert enrol(base, gallery, "obama") == {"subject": "obama"}
    assert enrol(base, gallery, "penny") == {"subject": "penny"}
    faces = enrolment.get_face_collection()
    added = [faces.add(OBAMA[0], "obama"), faces.add(OBAMA[1], "obama"), faces.add(PENNY[0], "penny")]
    assert [a["subject"] for a in added] == ["obama", "obama", "penny"]
    assert sorted(enrolment.get_subjects().list()["subjects"]) == ["obama", "penny"]
    listed = faces.list()
    assert listed["total_elements"] == 3
    assert {f["image_id"] for f in listed["faces"]} == {a["image_id"] for a in added}

    answer = recognition.recognize(OBAMA[2], {"limit": 0, "prediction_count": 2, "det_prob_threshold": 0.5})
    ranked = answer["result"][0]["subjects"]
    assert ranked[0]["subject"] == "obama" and ranked[0]["similarity"] >= 0.5
    assert len(ranked) == 2 and ranked[1]["subject"] == "penny" and ranked[1]["similarity"] < 0.5
    box = answer["result"][0]["box"]
    assert box["x_min"] < box["x_max"] and box["y_min"] < box["y_max"] and 0 < box["probability"] <= 1
    assert recognition.recognize(PENNY[1])["result"][0]["subjects"][0]["subject"] == "penny"

    same = recognition.get_face_collection().verify(OBAMA[2], added[0]["image_id"])
    other = recognition.get_face_collection().verify(PENNY[2], added[0]["image_id"])
    assert same["result"][0]["similarity"] >= 0.5 > other["result"][0]["similarity"]

    detection = compreface.init_face_detection(gallery.keys["search"])
    detected = detection.detect(OBAMA[2], {"face_plugins": "landmarks"})
    assert len(detected["result"]) == 1 and len(detected["result"][0]["landmarks"]) == 5

    verification = compreface.init_face_verification(gallery.keys["search"])
    verdict = verification.verify(OBAMA[2], OBAMA[0])
    assert verdict["result"][0]["face_matches"][0]["similarity"] >= 0.5
    assert verification.verify(OBAMA[2], PENNY[0])["result"][0]["face_matches"][0]["similarity"] < 0.5

    audit = httpx2.get(f"{base}/v1/audit?action=search", headers={"x-api-key": gallery.keys["auditor"]}).json()
    assert all(entry["purpose"].startswith("Newsroom fact checks") for entry in audit["items"])
    assert len(audit["items"]) == 2  # one per recognize call


def test_deleting_through_the_sdk_erases_with_receipts(server: tuple[str, CompreFace], gallery: Gallery) -> None:
    base, compreface = server
    enrol(base, gallery, "daryl")
    enrolment = compreface.init_face_recognition(gallery.keys["ingest"])
    faces = enrolment.get_face_collection()
    daryl = [str(IDENTITIES / f"twd_daryl__{n}.jpg") for n in (1, 2)]
    first, _ = (faces.add(path, "daryl") for path in daryl)
    assert faces.delete(first["image_id"]) == {"image_id": first["image_id"], "subject": "daryl"}
    assert faces.delete_all("daryl") == {"deleted": 1}
    assert enrolment.get_subjects().delete("daryl") == {"subject": "daryl"}
    assert "daryl" not in enrolment.get_subjects().list()["subjects"]
    erasures = httpx2.get(f"{base}/v1/audit?action=erasure", headers={"x-api-key": gallery.keys["auditor"]}).json()
    assert [e["details"]["faces_removed"] for e in erasures["items"]][-2:] == [1, 1]
    wrong_role = compreface.init_face_recognition(gallery.keys["auditor"]).recognize(OBAMA[2])
    assert wrong_role["error"] == "forbidden_role"
