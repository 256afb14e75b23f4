"""CompreFace-compatible endpoints (recognition, detection, verification) under ``/api/v1``, so that
integrations written for CompreFace, and its official ``compreface-sdk`` client, work unchanged.

Mapped onto facesearch:
- CompreFace's "face collection" is the subjects collection (``FACESEARCH_SUBJECTS_COLLECTION``); its
  ``image_id`` is facesearch's image id (as a string).
- Keys are facesearch keys in ``x-api-key``: ingest keys (naming the subjects collection) manage
  subjects and examples; search keys recognise, detect and verify, audited under their declared purpose.
- ``similarity`` is ``max(0, 1 - distance / (2 * match_threshold))``: 1 for identical templates, 0.5 at
  the match threshold (0.6 by default), so a match is a similarity of at least 0.5.
- ``box.probability`` is the HOG detection score mapped to 0-1 by a logistic, ``1 / (1 + exp(-(2 * score
  + 1)))``: 0.73 at score 0, the detector's default threshold. ``det_prob_threshold`` defaults to 0
  (every face the detector reports).
- Enrolment needs a consent record, which CompreFace's API has no field for: ``POST .../subjects`` takes
  ``consent_given_by`` and ``consent_scope`` (and optional ``consent_at``) beside ``subject``, and refuses
  without them; adding an example to a subject that was not enrolled that way is refused too.
- Plugins: ``landmarks`` is served; ``age``, ``gender`` and ``mask`` are not (facesearch infers no
  attributes), and ``calculator`` (template export) is refused by design: templates never leave.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, File, Query, Request, UploadFile

from facesearch.accountability.subjects import Consent, Subjects
from facesearch.core.errors import InvalidValueError, NotFoundError, RefusedError
from facesearch.core.records import Box, Embedding, Point
from facesearch.safeguards.audit import VerifyEvent
from facesearch.safeguards.roles import ApiKey, Role
from facesearch.server.api_subjects import subjects_for
from facesearch.server.params import MAX_ROW_ID, RowId, parse_moment
from facesearch.server.service import KEY_PURPOSE, Service, allow, read_upload, service
from facesearch.server.statuses import EVERY_CALL, compreface_errors
from facesearch.vision.distance import face_distance

router = APIRouter(prefix="/api/v1", tags=["CompreFace-compatible"], responses=compreface_errors(*EVERY_CALL))
SEARCHER = allow(Role.SEARCH)
ENROLLER = allow(Role.INGEST)
SUBJECT_CANDIDATES = 50
"""Gallery faces looked at per probe face to find ``prediction_count`` distinct subjects."""

Limit = Annotated[int, Query(ge=0, le=MAX_ROW_ID, description="Faces to recognise, largest first; 0 means all.")]
DetProb = Annotated[float, Query(ge=0, le=1, description="Minimum detection probability.")]
Plugins = Annotated[str, Query(description="Comma-separated: only 'landmarks' is served.")]


def similarity(distance: float, threshold: float) -> float:
    return round(max(0.0, 1.0 - distance / (2.0 * threshold)), 5)


def probability(score: float) -> float:
    return round(1.0 / (1.0 + math.exp(-(2.0 * score + 1.0))), 5)


def box_json(box: Box, score: float) -> dict[str, Any]:
    return {
        "probability": probability(score),
        "x_min": box.left,
        "y_min": box.top,
        "x_max": box.right,
        "y_max": box.bottom,
    }


def _plugins(face_plugins: str) -> set[str]:
    wanted = {p.strip() for p in face_plugins.split(",") if p.strip()}
    if "calculator" in wanted:
        raise RefusedError("the calculator plugin (template export) is not served: facesearch templates never leave")
    return wanted


def _face_json(box: Box, score: float, landmarks: tuple[Point, ...], plugins: set[str]) -> dict[str, Any]:
    face: dict[str, Any] = {"box": box_json(box, score)}
    if "landmarks" in plugins:
        face["landmarks"] = [[round(x), round(y)] for x, y in landmarks]
    return face


# -- recognition ---------------------------------------------------------------------------------------


@router.post(
    "/recognition/recognize",
    responses=compreface_errors(400, 413, 429),
    summary="Recognise the faces in an image among enrolled subjects",
)
def recognize(
    request: Request,
    file: Annotated[UploadFile, File()],
    key: Annotated[ApiKey, Depends(SEARCHER)],
    limit: Limit = 0,
    prediction_count: Annotated[int, Query(ge=1, le=100)] = 1,
    det_prob_threshold: DetProb = 0.0,
    face_plugins: Plugins = "",
    status: bool = False,
) -> Any:
    svc = service(request)
    plugins = _plugins(face_plugins)
    svc.count_search(key, "recognize")
    _, data = read_upload(file, svc.engine.settings.max_file_bytes)
    subjects = subjects_for(request, key)
    threshold = svc.engine.settings.match_threshold
    analysed = svc.engine.analyse_probe(data)  # the expensive part, with no lock held
    with svc.reading():
        found = svc.engine.search(
            analysed,
            key.actor,
            svc.purpose_of(key, "CompreFace recognize"),
            top_k=SUBJECT_CANDIDATES,
            threshold=min(1.99, 2 * threshold),
            collections=[subjects.collection],
            asked_as=KEY_PURPOSE,
        )
        names = {image_id: subject for image_id, subject in subjects.example_images()}
    faces = [r for r in found.results if probability(r.score) >= det_prob_threshold]
    faces.sort(key=lambda r: r.box.area, reverse=True)
    result = []
    for probe in faces[: limit or None]:
        best: dict[str, float] = {}
        for match in probe.matches:
            subject = names.get(match.image_id)
            if subject is not None and subject not in best:
                best[subject] = similarity(match.distance, threshold)
        ranked = sorted(best.items(), key=lambda item: -item[1])[:prediction_count]
        entry = _face_json(probe.box, probe.score, (), plugins - {"landmarks"})
        entry["subjects"] = [{"subject": subject, "similarity": value} for subject, value in ranked]
        result.append(entry)
    return {"result": result, "plugins_versions": {"detector": "dlib-hog", "calculator": "dlib-resnet-v1"}}


@router.post(
    "/recognition/faces",
    responses=compreface_errors(400, 404, 413),
    status_code=201,
    summary="Add an example photo of an enrolled subject",
)
def add_example(
    request: Request,
    file: Annotated[UploadFile, File()],
    subject: Annotated[str, Query(min_length=1)],
    key: Annotated[ApiKey, Depends(ENROLLER)],
    det_prob_threshold: DetProb = 0.0,
) -> Any:
    svc = service(request)
    filename, data = read_upload(file, svc.engine.settings.max_file_bytes)
    subjects = subjects_for(request, key)
    prepared = subjects.prepare_example(subject, filename, data)  # the expensive part, with no lock held
    with svc.writing():
        added = subjects.write_example(prepared, key.actor)
    return {"image_id": str(added.image_id), "subject": subject}


@router.get(
    "/recognition/faces", responses=compreface_errors(404), summary="Example photos, paged (CompreFace's page and size)"
)
def list_examples(
    request: Request,
    key: Annotated[ApiKey, Depends(ENROLLER)],
    page: Annotated[int, Query(ge=0, le=MAX_ROW_ID)] = 0,
    size: Annotated[int, Query(ge=1, le=1000)] = 20,
    subject: str | None = None,
) -> Any:
    with service(request).reading():
        examples = subjects_for(request, key).example_images(subject or None)
    chunk = examples[page * size : (page + 1) * size]
    return {
        "faces": [{"image_id": str(image_id), "subject": name} for image_id, name in chunk],
        "page_number": page,
        "page_size": size,
        "total_pages": math.ceil(len(examples) / size),
        "total_elements": len(examples),
    }


@router.delete(
    "/recognition/faces",
    responses=compreface_errors(404),
    summary="Erase every example of a subject (receipt in the audit log)",
)
def delete_examples(
    request: Request, subject: Annotated[str, Query(min_length=1)], key: Annotated[ApiKey, Depends(ENROLLER)]
) -> Any:
    with service(request).lock:
        subjects = subjects_for(request, key)
        image_ids = [image_id for image_id, _ in subjects.example_images(subject)]
        if image_ids:
            subjects.remove_examples(
                image_ids, key.actor, f"CompreFace API: examples of a subject deleted by {key.owner}"
            )
    return {"deleted": len(image_ids)}


@router.delete("/recognition/faces/{image_id}", responses=compreface_errors(404), summary="Erase one example")
def delete_example(request: Request, image_id: RowId, key: Annotated[ApiKey, Depends(ENROLLER)]) -> Any:
    with service(request).lock:
        subjects = subjects_for(request, key)
        subject = _example_subject(subjects, image_id)
        subjects.remove_examples([image_id], key.actor, f"CompreFace API: example deleted by {key.owner}")
    return {"image_id": str(image_id), "subject": subject}


@router.post(
    "/recognition/faces/{image_id}/verify",
    responses=compreface_errors(400, 404, 413, 429),
    summary="Compare the faces of an image with one example",
)
def verify_example(
    request: Request,
    image_id: RowId,
    file: Annotated[UploadFile, File()],
    key: Annotated[ApiKey, Depends(SEARCHER)],
    limit: Limit = 0,
    det_prob_threshold: DetProb = 0.0,
    face_plugins: Plugins = "",
    status: bool = False,
) -> Any:
    svc = service(request)
    plugins = _plugins(face_plugins)
    svc.count_search(key, "verify example")
    _, data = read_upload(file, svc.engine.settings.max_file_bytes)
    threshold = svc.engine.settings.match_threshold
    loaded, faces = svc.engine.analyser.analyse_or_fail(data)  # the expensive part, with no lock held
    with svc.reading():
        subjects = subjects_for(request, key)
        _example_subject(subjects, image_id)
        example = _example_template(svc, subjects, image_id)
        distances = [float(face_distance(example, face.embedding)[0]) for face in faces]
        best = min(distances)
        svc.engine.catalog.audit.record(
            VerifyEvent(
                actor=key.actor,
                purpose=svc.purpose_of(key, f"CompreFace verify against example {image_id}"),
                a_sha256=loaded.content_id,
                b_sha256=f"image {image_id}",
                distance=round(best, 4),
                match=best <= threshold,
            )
        )
    ranked = sorted(zip(faces, distances, strict=True), key=lambda pair: -pair[0].detection.box.area)
    result = []
    for face, distance in ranked[: limit or None]:
        if probability(face.detection.score) < det_prob_threshold:
            continue
        entry = _face_json(face.detection.box, face.detection.score, face.detection.landmarks, plugins)
        entry["similarity"] = similarity(distance, threshold)
        result.append(entry)
    return {"result": result}


def _example_subject(subjects: Subjects, image_id: int) -> str:
    subject = subjects.subject_of_image(image_id)
    if subject is None:
        raise NotFoundError(f"image {image_id} is not an example of any enrolled subject")
    return subject


def _example_template(svc: Service, subjects: Subjects, image_id: int) -> Embedding:
    collection_id = svc.engine.catalog.collection_id(subjects.collection)
    face_ids = svc.engine.catalog.face_ids_of_images([image_id])
    cipher = svc.engine.cipher(collection_id)
    _, vectors = svc.engine.catalog.embeddings(collection_id, cipher.open_template, face_ids)
    example: Embedding = vectors[0]
    return example


# -- subjects ------------------------------------------------------------------------------------------


@router.post(
    "/recognition/subjects",
    responses=compreface_errors(404, 409),
    status_code=201,
    summary="Enrol a subject, with consent_given_by and consent_scope",
)
def add_subject(
    request: Request, key: Annotated[ApiKey, Depends(ENROLLER)], body: Annotated[dict[str, Any], Body()]
) -> Any:
    name = str(body.get("subject", "")).strip()
    given_by = str(body.get("consent_given_by", ""))
    scope = str(body.get("consent_scope", ""))
    if not given_by or not scope:
        raise RefusedError(
            "enrolling a subject needs a consent record: send consent_given_by (who consented) and consent_scope "
            "(to what) with the subject, and consent_at (ISO 8601) if it was not given now"
        )
    try:
        given = body.get("consent_at")
        at = datetime.now(UTC) if given is None or given == "" else parse_moment(given, "consent_at")
    except ValueError as problem:
        raise InvalidValueError(str(problem)) from None
    with service(request).lock:
        enrolled = subjects_for(request, key).enrol(name, Consent(given_by, scope, at), key.actor)
    return {"subject": enrolled.name}


@router.get("/recognition/subjects", responses=compreface_errors(404), summary="Names of the enrolled subjects")
def list_subjects(request: Request, key: Annotated[ApiKey, Depends(ENROLLER)]) -> Any:
    with service(request).reading():
        return {"subjects": [s.name for s in subjects_for(request, key).all()]}


@router.put("/recognition/subjects/{name}", responses=compreface_errors(404, 409), summary="Rename a subject")
def rename_subject(
    request: Request, name: str, key: Annotated[ApiKey, Depends(ENROLLER)], body: Annotated[dict[str, Any], Body()]
) -> Any:
    new_name = str(body.get("subject", "")).strip()
    if not new_name:
        raise InvalidValueError('send the new name as {"subject": "..."}')
    with service(request).lock:
        subjects_for(request, key).rename(name, new_name, key.actor)
    return {"updated": True}


@router.delete(
    "/recognition/subjects/{name}",
    responses=compreface_errors(404),
    summary="Consent withdrawn: erase a subject and their examples",
)
def delete_subject(request: Request, name: str, key: Annotated[ApiKey, Depends(ENROLLER)]) -> Any:
    with service(request).lock:
        subjects_for(request, key).withdraw(name, key.actor, f"CompreFace API: subject deleted by {key.owner}")
    return {"subject": name}


@router.delete(
    "/recognition/subjects", responses=compreface_errors(404), summary="Erase every subject and their examples"
)
def delete_all_subjects(request: Request, key: Annotated[ApiKey, Depends(ENROLLER)]) -> Any:
    with service(request).lock:
        subjects = subjects_for(request, key)
        everyone = subjects.all()
        for subject in everyone:
            subjects.withdraw(subject.name, key.actor, f"CompreFace API: all subjects deleted by {key.owner}")
    return {"deleted": len(everyone)}


# -- detection and verification ------------------------------------------------------------------------


@router.post("/detection/detect", responses=compreface_errors(400, 413, 429), summary="Faces in an image")
def detect(
    request: Request,
    file: Annotated[UploadFile, File()],
    key: Annotated[ApiKey, Depends(SEARCHER)],
    limit: Limit = 0,
    det_prob_threshold: DetProb = 0.0,
    face_plugins: Plugins = "",
    status: bool = False,
) -> Any:
    svc = service(request)
    plugins = _plugins(face_plugins)
    svc.count_search(key, "detect")
    name, data = read_upload(file, svc.engine.settings.max_file_bytes)
    found = svc.engine.detect(data, name)
    faces = [f for f in found.faces if probability(f.score) >= det_prob_threshold]
    faces.sort(key=lambda f: f.box.area, reverse=True)
    return {
        "result": [_face_json(f.box, f.score, f.landmarks, plugins) for f in faces[: limit or None]],
        "plugins_versions": {"detector": "dlib-hog"},
    }


@router.post(
    "/verification/verify",
    responses=compreface_errors(400, 413, 429),
    summary="Whether the faces of two images are the same person",
)
def verify(
    request: Request,
    source_image: Annotated[UploadFile, File()],
    target_image: Annotated[UploadFile, File()],
    key: Annotated[ApiKey, Depends(SEARCHER)],
    limit: Limit = 0,
    det_prob_threshold: DetProb = 0.0,
    face_plugins: Plugins = "",
    status: bool = False,
) -> Any:
    svc = service(request)
    _plugins(face_plugins)
    svc.count_search(key, "verify")
    size = svc.engine.settings.max_file_bytes
    _, source = read_upload(source_image, size)
    _, target = read_upload(target_image, size)
    threshold = svc.engine.settings.match_threshold
    purpose = svc.purpose_of(key, "CompreFace verify")
    result = svc.engine.verify(source, target, key.actor, purpose, asked_as=KEY_PURPOSE)
    return {
        "result": [
            {
                "source_image_face": {"box": box_json(result.box_a, result.score_a)},
                "face_matches": [
                    {
                        "box": box_json(result.box_b, result.score_b),
                        "similarity": similarity(result.distance, threshold),
                    }
                ],
            }
        ]
    }
