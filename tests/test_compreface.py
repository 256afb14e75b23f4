"""The official CompreFace Python client (compreface-sdk), unchanged and through its documented calls only, against a
real ``facesearch serve``: one test per flow of the SDK's README and CompreFace's REST documentation, with one key
per CompreFace service, and the responses compared field by field with CompreFace's documented examples
(``fixtures/compreface_rest/documented_responses.json``)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from compreface import CompreFace  # type: ignore[import-untyped]

from server_support import CONSENT_ATTESTATION, FIXTURES, Gallery, key, live_server, prepare_gallery

IDENTITIES = FIXTURES / "identities"
OBAMA = [str(IDENTITIES / f"obama__{n}.jpg") for n in (1, 2, 3)]
PENNY = [str(IDENTITIES / f"bbt_penny__{n}.png") for n in (1, 2, 3)]
SHELDON = [str(IDENTITIES / f"bbt_sheldon__{n}.png") for n in (1, 2, 3)]
DARYL = [str(IDENTITIES / f"twd_daryl__{n}.jpg") for n in (1, 2, 3)]
TWO_PEOPLE = str(FIXTURES / "multi" / "two_people.jpg")
THREE_PEOPLE = str(FIXTURES / "multi" / "three_people.jpg")
NO_FACE = str(FIXTURES / "noface" / "banana.jpg")
DOCUMENTED = json.loads((FIXTURES / "compreface_rest" / "documented_responses.json").read_text())
ATTRIBUTES = frozenset({"age", "gender", "mask", "embedding"})
"""Fields of CompreFace's examples that facesearch refuses to produce by design (attributes, template export)."""
FULL = {"limit": 0, "det_prob_threshold": 0.5, "prediction_count": 1, "face_plugins": "landmarks", "status": "true"}


@pytest.fixture(scope="module")
def gallery(tmp_path_factory: pytest.TempPathFactory) -> Gallery:
    return prepare_gallery(tmp_path_factory.mktemp("compreface"), ingest=False)


@pytest.fixture(scope="module")
def compreface(gallery: Gallery) -> Iterator[tuple[str, CompreFace]]:
    with live_server(gallery, FACESEARCH_SEARCH_RATE_PER_MINUTE="1000") as base:
        host, port = base.rsplit(":", 1)
        yield base, CompreFace(domain=host, port=port)


@pytest.fixture(scope="module")
def recognition(compreface: tuple[str, CompreFace], gallery: Gallery) -> Any:
    """The recognition service, with the one recognition key (consent attested on it)."""
    return compreface[1].init_face_recognition(gallery.keys["recognition"])


def same_shape(documented: Any, ours: Any, where: str = "", leave_out: frozenset[str] = ATTRIBUTES) -> None:
    """``ours`` has the fields of ``documented`` (less ``leave_out``) and no others, each of the same JSON type;
    every item of a list is held to the documented list's first item."""
    if isinstance(documented, dict):
        assert isinstance(ours, dict), where
        assert set(ours) == set(documented) - leave_out, (where, sorted(ours), sorted(documented))
        for name, value in ours.items():
            same_shape(documented[name], value, f"{where}.{name}", leave_out)
    elif isinstance(documented, list):
        assert isinstance(ours, list) and ours, where
        for item in ours:
            same_shape(documented[0], item, f"{where}[]", leave_out)
    else:
        assert type(ours) is type(documented), (where, ours, documented)


def consent_records(base: str, gallery: Gallery) -> dict[str, dict[str, Any]]:
    listed = httpx2.get(f"{base}/v1/subjects?limit=1000", headers=key(gallery, "ingest")).json()
    return {item["name"]: item for item in listed["items"]}


def audit(base: str, gallery: Gallery, action: str) -> list[dict[str, Any]]:
    found = httpx2.get(f"{base}/v1/audit?action={action}&limit=1000", headers=key(gallery, "auditor")).json()
    entries: list[dict[str, Any]] = found["items"]
    return entries


def test_the_readme_flow_enrols_by_adding_an_example_then_recognises(
    compreface: tuple[str, CompreFace], recognition: Any, gallery: Gallery
) -> None:
    """The SDK README's flow with one recognition key: an example added to a new subject enrols it, under the
    key's consent attestation, and recognition finds it."""
    base, _ = compreface
    added = recognition.get_face_collection().add(OBAMA[0], "Barack Obama")
    assert set(added) == {"image_id", "subject"} and added["subject"] == "Barack Obama", added
    assert "Barack Obama" in recognition.get_subjects().list()["subjects"]
    answer = recognition.recognize(OBAMA[2])
    assert answer["result"][0]["subjects"][0]["subject"] == "Barack Obama"
    assert answer["result"][0]["subjects"][0]["similarity"] >= 0.5
    record = consent_records(base, gallery)["Barack Obama"]
    assert CONSENT_ATTESTATION in record["consent_given_by"] and "front desk" in record["consent_given_by"]
    assert record["consent_scope"].startswith("Recognise staff")  # the subjects collection's declared purpose
    enrolled = [e for e in audit(base, gallery, "subject") if e["details"]["change"] == "enrolled"][-1]
    assert CONSENT_ATTESTATION in enrolled["details"]["consent_attestation"] and "front desk" in enrolled["actor"]


def test_subjects_are_added_renamed_listed_and_deleted(recognition: Any) -> None:
    subjects = recognition.get_subjects()
    assert subjects.add("Al Gore") == {"subject": "Al Gore"}
    assert subjects.add("Al Gore")["code"] == 43  # CompreFace's "subject already exists"
    assert subjects.update("Al Gore", "Albert Gore") == {"updated": True}
    subjects.add("Tipper Gore")
    assert subjects.update("Tipper Gore", "Albert Gore")["error"] == "conflict"  # refused, never merged
    assert subjects.delete("Tipper Gore") == {"subject": "Tipper Gore"}
    assert "Albert Gore" in subjects.list()["subjects"] and "Al Gore" not in subjects.list()["subjects"]
    assert subjects.delete("Albert Gore") == {"subject": "Albert Gore"}
    assert subjects.delete("Albert Gore")["code"] == 42  # CompreFace's "subject not found"
    assert "Albert Gore" not in subjects.list()["subjects"]


def test_examples_are_listed_and_deleted_one_by_one_or_by_subject(recognition: Any) -> None:
    faces = recognition.get_face_collection()
    first, second = (faces.add(path, "Daryl Dixon") for path in DARYL[:2])
    listed = faces.list()
    mine = {face["image_id"] for face in listed["faces"] if face["subject"] == "Daryl Dixon"}
    assert mine == {first["image_id"], second["image_id"]} and listed["total_elements"] >= 2
    assert faces.delete(first["image_id"]) == {"image_id": first["image_id"], "subject": "Daryl Dixon"}
    assert faces.delete_all("Daryl Dixon") == {"deleted": 1}
    assert "Daryl Dixon" in recognition.get_subjects().list()["subjects"]  # examples gone, subject kept
    assert recognition.get_subjects().delete("Daryl Dixon") == {"subject": "Daryl Dixon"}


def test_deleting_every_subject_erases_them_with_receipts(compreface: tuple[str, CompreFace], gallery: Gallery) -> None:
    """On a key of its own collection, so that the other tests' subjects stay."""
    base, client = compreface
    made = httpx2.post(
        f"{base}/v1/keys",
        json={
            "owner": "kiosk",
            "role": "recognition",
            "collections": ["news"],
            "consent_attestation": "signed forms held by the kiosk team",
        },
        headers=key(gallery, "admin"),
    )
    assert made.status_code == 201, made.text
    kiosk = client.init_face_recognition(made.json()["token"])
    kiosk.get_face_collection().add(SHELDON[0], "Sheldon")
    kiosk.get_subjects().add("Leonard")
    before = len(audit(base, gallery, "erasure"))
    kiosk.get_face_collection().add(SHELDON[1], "Leonard")
    everyone = httpx2.delete(f"{base}/api/v1/recognition/faces", headers={"x-api-key": made.json()["token"]})
    assert everyone.json() == {"deleted": 2}  # no subject named: every subject's examples (REST documentation)
    assert kiosk.get_face_collection().list()["total_elements"] == 0
    assert kiosk.get_subjects().delete_all() == {"deleted": 2}
    assert kiosk.get_subjects().list() == {"subjects": []}
    assert len(audit(base, gallery, "erasure")) == before + 1  # both examples, erased with one receipt


def test_a_key_without_a_consent_attestation_cannot_enrol(compreface: tuple[str, CompreFace], gallery: Gallery) -> None:
    base, client = compreface
    made = httpx2.post(
        f"{base}/v1/keys",
        json={"owner": "lobby", "role": "recognition", "collections": ["subjects"]},
        headers=key(gallery, "admin"),
    )
    assert made.status_code == 201, made.text
    lobby = client.init_face_recognition(made.json()["token"])
    for refused in (lobby.get_subjects().add("Rose"), lobby.get_face_collection().add(PENNY[0], "Rose")):
        assert refused["error"] == "refused" and "no consent attestation" in refused["message"], refused
        assert "--consent-attestation" in refused["message"]
    assert "Rose" not in lobby.get_subjects().list()["subjects"]
    issued = httpx2.get(f"{base}/v1/keys?limit=1000", headers=key(gallery, "admin")).json()["items"]
    attestations = {k["owner"]: k["consent_attestation"] for k in issued}  # what an administrator reviews
    assert attestations["lobby"] == "" and attestations["front desk"] == CONSENT_ATTESTATION


def test_an_ingest_key_enrols_with_the_consent_the_request_states(
    compreface: tuple[str, CompreFace], gallery: Gallery
) -> None:
    """Not a flow of the SDK (it cannot send these fields): an ingest key has no attestation, so it states consent."""
    base, _ = compreface
    url, ingest = f"{base}/api/v1/recognition/subjects", {"x-api-key": gallery.keys["ingest"]}
    refused = httpx2.post(url, json={"subject": "Amy"}, headers=ingest)
    assert refused.status_code == 403 and "consent_given_by" in refused.json()["message"]
    stated = {"consent_given_by": "the subject, in writing", "consent_scope": "Recognition at the front desk"}
    assert httpx2.post(url, json={"subject": "Amy", **stated}, headers=ingest).json() == {"subject": "Amy"}
    assert consent_records(base, gallery)["Amy"]["consent_given_by"] == "the subject, in writing"


def test_an_example_must_show_exactly_one_face(
    compreface: tuple[str, CompreFace], recognition: Any, gallery: Gallery
) -> None:
    """A group photo is refused (CompreFace's 31), so no bystander is enrolled; a photo with no face too (28)."""
    base, _ = compreface
    faces = recognition.get_face_collection()
    crowd = faces.add(TWO_PEOPLE, "Someone In A Crowd")
    assert crowd["code"] == 31 and "exactly one" in crowd["message"], crowd
    empty = faces.add(NO_FACE, "Someone In A Crowd")
    assert empty["code"] == 28 and empty["message"].startswith("No face is found in the given image"), empty
    assert "Someone In A Crowd" not in recognition.get_subjects().list()["subjects"]
    assert "Someone In A Crowd" not in consent_records(base, gallery)
    raw = httpx2.post(
        f"{base}/api/v1/recognition/faces?subject=Someone",
        files={"file": ("two_people.jpg", (FIXTURES / "multi" / "two_people.jpg").read_bytes())},
        headers={"x-api-key": gallery.keys["recognition"]},
    )
    assert raw.status_code == 400


def test_recognise_answers_as_documented(recognition: Any) -> None:
    recognition.get_face_collection().add(PENNY[0], "Penny")
    answer = recognition.recognize(PENNY[1], FULL)
    same_shape(DOCUMENTED["recognize"], answer)
    face = answer["result"][0]
    assert face["subjects"][0]["subject"] == "Penny" and len(face["landmarks"]) == 5
    assert face["execution_time"]["detector"] > 0 and face["execution_time"]["calculator"] > 0
    two = recognition.recognize(PENNY[2], {**FULL, "prediction_count": 2})["result"][0]["subjects"]
    assert len(two) == 2 and two[0]["similarity"] >= 0.5 > two[1]["similarity"]
    plain = recognition.recognize(PENNY[2])
    assert set(plain["result"][0]) == {"box", "subjects"}  # no plugin, no status: only what was asked
    no_face = recognition.recognize(NO_FACE)
    assert no_face["code"] == 28 and no_face["message"].startswith("No face is found")


def test_verify_against_an_example_answers_as_documented(recognition: Any) -> None:
    faces = recognition.get_face_collection()
    example = faces.add(SHELDON[1], "Sheldon Cooper")
    same = faces.verify(SHELDON[2], example["image_id"], {"face_plugins": "landmarks", "status": "true"})
    same_shape(DOCUMENTED["verify_example"], same)
    other = faces.verify(THREE_PEOPLE, example["image_id"])
    assert len(other["result"]) == 3 and all(face["similarity"] < 0.5 for face in other["result"])
    assert same["result"][0]["similarity"] >= 0.5


def test_subject_and_example_answers_have_the_documented_fields(recognition: Any) -> None:
    subjects, faces = recognition.get_subjects(), recognition.get_face_collection()
    same_shape(DOCUMENTED["add_subject"], subjects.add("Howard"))
    same_shape(DOCUMENTED["rename_subject"], subjects.update("Howard", "Howard Wolowitz"))
    same_shape(DOCUMENTED["list_subjects"], subjects.list())
    added = faces.add(DARYL[2], "Howard Wolowitz")
    same_shape(DOCUMENTED["add_example"], added)
    same_shape(DOCUMENTED["list_examples"], faces.list())
    same_shape(DOCUMENTED["delete_example"], faces.delete(added["image_id"]))
    same_shape(DOCUMENTED["delete_examples"], faces.delete_all("Howard Wolowitz"))
    same_shape(DOCUMENTED["delete_subject"], subjects.delete("Howard Wolowitz"))


def test_detection_answers_as_documented(compreface: tuple[str, CompreFace], gallery: Gallery) -> None:
    detection = compreface[1].init_face_detection(gallery.keys["search"])
    found = detection.detect(THREE_PEOPLE, {"face_plugins": "landmarks", "status": "true"})
    # The documented example ran the calculator plugin (its embedding), which facesearch refuses.
    same_shape(DOCUMENTED["detect"], found, leave_out=ATTRIBUTES | {"calculator"})
    assert len(found["result"]) == 3
    areas = [(f["box"]["x_max"] - f["box"]["x_min"]) * (f["box"]["y_max"] - f["box"]["y_min"]) for f in found["result"]]
    assert areas == sorted(areas, reverse=True)
    assert len(detection.detect(THREE_PEOPLE, {"limit": 1})["result"]) == 1
    assert detection.detect(NO_FACE)["code"] == 28


def test_verification_compares_with_every_target_face(compreface: tuple[str, CompreFace], gallery: Gallery) -> None:
    verification = compreface[1].init_face_verification(gallery.keys["search"])
    verdict = verification.verify(OBAMA[2], OBAMA[1], {"face_plugins": "landmarks", "status": "true"})
    same_shape(DOCUMENTED["verification"], verdict)
    assert verdict["result"][0]["face_matches"][0]["similarity"] >= 0.5
    crowd = verification.verify(OBAMA[2], THREE_PEOPLE, {"face_plugins": "landmarks"})["result"][0]
    assert len(crowd["face_matches"]) == 3 and all(len(m["landmarks"]) == 5 for m in crowd["face_matches"])
    assert len(crowd["source_image_face"]["landmarks"]) == 5
    assert all(match["similarity"] < 0.5 for match in crowd["face_matches"])
    limited = verification.verify(OBAMA[2], THREE_PEOPLE, {"limit": 2})["result"][0]
    assert len(limited["face_matches"]) == 2
    assert verification.verify(OBAMA[2], NO_FACE)["code"] == 28


@pytest.mark.parametrize("plugins", ["calculator", "age,gender", "landmarks,mask"])
def test_attribute_and_template_plugins_are_refused_by_design(
    compreface: tuple[str, CompreFace], recognition: Any, gallery: Gallery, plugins: str
) -> None:
    detection = compreface[1].init_face_detection(gallery.keys["search"])
    for refused in (
        recognition.recognize(OBAMA[2], {"face_plugins": plugins}),
        detection.detect(OBAMA[2], {"face_plugins": plugins}),
    ):
        assert refused["error"] == "refused" and "is not served" in refused["message"], refused


def test_the_audit_log_records_what_a_recognition_returned(
    compreface: tuple[str, CompreFace], recognition: Any, gallery: Gallery
) -> None:
    """Each recognition's entry names the example faces of the subjects it returned, not every candidate."""
    base, _ = compreface
    faces = recognition.get_face_collection()
    for path, name in ((OBAMA[1], "Obama Again"), (SHELDON[0], "Sheldon Again"), (DARYL[0], "Daryl Again")):
        faces.add(path, name)
    recognition.recognize(PENNY[2], {"prediction_count": 1})
    one = audit(base, gallery, "search")[-1]["details"]
    recognition.recognize(PENNY[2], {"prediction_count": 3})
    three = audit(base, gallery, "search")[-1]["details"]
    assert (one["match_count"], len(one["match_face_ids"])) == (1, 1)
    assert (three["match_count"], len(three["match_face_ids"])) == (3, 3)
    assert set(one["match_face_ids"]) < set(three["match_face_ids"])
    entry = audit(base, gallery, "search")[-1]
    assert entry["purpose"].startswith("subjects: Recognise staff")  # the face collection's declared purpose


def test_a_recognition_key_reaches_its_own_collection_only(
    compreface: tuple[str, CompreFace], recognition: Any, gallery: Gallery
) -> None:
    base, client = compreface
    example = recognition.get_face_collection().add(OBAMA[2], "Obama Elsewhere")
    made = httpx2.post(
        f"{base}/v1/keys",
        json={"owner": "newsroom desk", "role": "recognition", "collections": ["news"]},
        headers=key(gallery, "admin"),
    )
    elsewhere = client.init_face_recognition(made.json()["token"])
    assert "Obama Elsewhere" not in elsewhere.get_subjects().list()["subjects"]
    assert elsewhere.get_face_collection().verify(OBAMA[0], example["image_id"])["error"] == "not_found"
    assert elsewhere.get_face_collection().delete(example["image_id"])["error"] == "not_found"
    wrong_role = client.init_face_recognition(gallery.keys["auditor"]).recognize(OBAMA[2])
    assert wrong_role["error"] == "forbidden_role"


def test_the_base64_and_download_flows_of_the_rest_documentation(
    compreface: tuple[str, CompreFace], gallery: Gallery
) -> None:
    """CompreFace's REST documentation also sends images as Base64 in a JSON body and downloads an example's image
    (the SDK does neither): raw HTTP."""
    base, _ = compreface

    def encoded(path: str) -> str:
        return base64.b64encode(Path(path).read_bytes()).decode()

    def post(path: str, role: str, body: dict[str, str]) -> httpx2.Response:
        return httpx2.post(f"{base}/api/v1/{path}", json=body, headers={"x-api-key": gallery.keys[role]}, timeout=60)

    added = post("recognition/faces?subject=Rajesh", "recognition", {"file": encoded(SHELDON[2])})
    assert added.status_code == 201 and added.json()["subject"] == "Rajesh", added.text
    recognised = post("recognition/recognize", "recognition", {"file": f"data:image/png;base64,{encoded(SHELDON[1])}"})
    assert recognised.json()["result"][0]["subjects"][0]["subject"] in {"Rajesh", "Sheldon Cooper", "Sheldon Again"}
    example = added.json()["image_id"]
    verified = post(f"recognition/faces/{example}/verify", "recognition", {"file": encoded(SHELDON[1])})
    assert verified.json()["result"][0]["similarity"] >= 0.5
    picture = httpx2.get(f"{base}/api/v1/recognition/faces/{example}/img", headers=key(gallery, "recognition"))
    assert picture.headers["content-type"] == "image/jpeg" and picture.content[:2] == b"\xff\xd8"
    direct = httpx2.get(f"{base}/api/v1/static/{gallery.keys['recognition']}/images/{example}")
    assert direct.status_code == 403 and "x-api-key header" in direct.json()["message"]  # refused by design
    viewed = audit(base, gallery, "view")[-1]["details"]
    assert (viewed["request"], viewed["image_ids"]) == ("CompreFace example image", [int(example)])
    assert len(post("detection/detect", "search", {"file": encoded(THREE_PEOPLE)}).json()["result"]) == 3
    pair = {"source_image": encoded(OBAMA[2]), "target_image": encoded(THREE_PEOPLE)}
    assert len(post("verification/verify", "search", pair).json()["result"][0]["face_matches"]) == 3
    broken = post("detection/detect", "search", {"file": "not base64!"})
    assert broken.status_code == 400 and "Base64" in broken.json()["message"]
    missing = post("verification/verify", "search", {"source_image": encoded(OBAMA[2])})
    assert missing.status_code == 400 and "target_image" in missing.json()["message"]
    # Invalid requests are CompreFace's 400 with its codes, never 422: a value out of bounds, a wrong type.
    out_of_bounds = post("recognition/recognize?limit=-1", "recognition", {"file": encoded(SHELDON[1])})
    assert (out_of_bounds.status_code, out_of_bounds.json()["code"]) == (400, 26), out_of_bounds.text
    wrong_type = post("recognition/recognize?det_prob_threshold=high", "recognition", {"file": encoded(SHELDON[1])})
    assert (wrong_type.status_code, wrong_type.json()["code"]) == (400, 36), wrong_type.text
