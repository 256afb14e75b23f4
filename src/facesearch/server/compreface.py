"""CompreFace-compatible endpoints (recognition, detection, verification) under ``/api/v1``, so that
integrations written for CompreFace, and its official ``compreface-sdk`` client, work unchanged with one key per
CompreFace service.

Mapped onto facesearch:
- Keys are facesearch keys in ``x-api-key``. A recognition key (``keys create --role recognition --collection
  subjects --consent-attestation "..."``) is a CompreFace recognition-service key: it enrols subjects, adds and
  removes their examples and recognises faces among them, in its face collection only (the subjects collection,
  ``FACESEARCH_SUBJECTS_COLLECTION``, when the key names it, else the first collection it names). Search keys are
  the detection and verification services' keys (and may recognise too); ingest keys naming the subjects
  collection may manage subjects as before.
- Consent stays mandatory: each enrolment records the key's consent attestation (where the signed consent is
  held) as who consented, under the key's purpose; a key without one is refused (403) unless the request sends
  ``consent_given_by`` and ``consent_scope`` itself. Adding an example to a subject not enrolled yet enrols it, as
  CompreFace does.
- An example must show exactly one face above ``det_prob_threshold`` (400, CompreFace's code 28 for none, 31 for
  more): a bystander is never enrolled.
- Images come as multipart uploads or as Base64 in a JSON body (CompreFace's Base64 form). An example's photo
  downloads from ``/recognition/faces/{image_id}/img`` (a counted, audited view); the direct-download URL with the
  key in its path is refused by design.
- ``image_id`` is facesearch's image id (as a string). ``similarity`` is ``max(0, 1 - distance / (2 *
  match_threshold))``: 1 for identical templates, 0.5 at the match threshold (0.6 by default).
- ``box.probability`` is the HOG detection score mapped to 0-1 by a logistic, ``1 / (1 + exp(-(2 * score + 1)))``:
  0.73 at score 0, the detector's default threshold. ``det_prob_threshold`` defaults to 0 (every face found).
- Plugins: ``landmarks`` is served (dlib's five points: the eyes' corners and the nose); ``age``, ``gender`` and
  ``mask`` are refused (facesearch infers no attributes), and ``calculator`` (template export) is refused by
  design: templates never leave. ``status=true`` adds each face's ``execution_time`` (milliseconds);
  ``plugins_versions`` names the models.
- The audit log records what each call returned: the example faces of the subjects a recognition named, the best
  similarity a verification answered.
"""

from __future__ import annotations

import base64
import binascii
import math
import time
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, File, Query, Request, Response, UploadFile

from facesearch.accountability.subjects import Consent, Subjects
from facesearch.core.errors import (
    ImageError,
    InvalidValueError,
    NoFaceError,
    NotFoundError,
    RefusedError,
    TooLargeError,
)
from facesearch.core.records import AnalysedFace, Embedding
from facesearch.safeguards.audit import SearchEvent, VerifyEvent
from facesearch.safeguards.governance import require_purpose
from facesearch.safeguards.roles import ApiKey, Role
from facesearch.server.api_subjects import subjects_for
from facesearch.server.compreface_shapes import (
    Answer,
    parse_plugins,
    plugins_versions,
    probability,
    score_at,
    similarity,
)
from facesearch.server.params import MAX_ROW_ID, RowId, parse_moment
from facesearch.server.pictures import boxed_image
from facesearch.server.service import KEY_PURPOSE, Service, allow, read_upload, service
from facesearch.server.statuses import EVERY_CALL, compreface_errors
from facesearch.vision.distance import face_distance

JPEG: dict[int | str, dict[str, Any]] = {200: {"content": {"image/jpeg": {}}, "description": "A JPEG to look at."}}
router = APIRouter(prefix="/api/v1", tags=["CompreFace-compatible"], responses=compreface_errors(*EVERY_CALL))
SEARCHER = allow(Role.SEARCH)
RECOGNISER = allow(Role.RECOGNITION, Role.SEARCH)
ENROLLER = allow(Role.RECOGNITION, Role.INGEST)
SUBJECT_CANDIDATES = 50
"""Gallery faces looked at per probe face to find ``prediction_count`` distinct subjects."""


async def base64_images(request: Request) -> dict[str, str]:
    """CompreFace's Base64 form of the image endpoints: a JSON body naming each image as its multipart field would
    (``{"file": "<base64>"}``, or ``source_image`` and ``target_image``); empty for any other body."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        return {}
    try:
        body = await request.json()
    except ValueError:
        raise InvalidValueError('the JSON body cannot be parsed: send {"file": "<base64 of the image>"}') from None
    if not isinstance(body, dict):
        raise InvalidValueError('the JSON body must be an object: {"file": "<base64 of the image>"}')
    return {name: value for name, value in body.items() if isinstance(value, str)}


def image_of(svc: Service, upload: UploadFile | None, encoded: dict[str, str] | None, field: str) -> tuple[str, bytes]:
    """The name and bytes of image ``field``: a multipart upload, or Base64 in a JSON body (a data URL's header is
    skipped); refused over the upload limit before decoding."""
    limit = svc.engine.settings.max_file_bytes
    if upload is not None:
        return read_upload(upload, limit)
    text = (encoded or {}).get(field)
    if text is None:
        raise InvalidValueError(
            f'send the image as the multipart/form-data field {field!r} or as JSON {{"{field}": "<base64>"}}'
        )
    text = text.partition(",")[2] if text.startswith("data:") else text
    if len(text) * 3 // 4 > limit + 2:
        raise TooLargeError(
            f"{field} is over the {limit:,}-byte upload limit; send a smaller image "
            "(an administrator sets FACESEARCH_MAX_FILE_BYTES)"
        )
    try:
        data = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ImageError(f"{field} is not valid Base64; send the image's bytes encoded as standard Base64") from None
    if not data:
        raise InvalidValueError(f"{field} is empty; send the image's bytes")
    return f"{field} (Base64)", data


ImageFile = Annotated[UploadFile | None, File(description="The image (or send it as Base64 in a JSON body).")]
Base64Images = Annotated[dict[str, str] | None, Depends(base64_images)]
Limit = Annotated[int, Query(ge=0, le=MAX_ROW_ID, description="Faces to recognise, largest first; 0 means all.")]
DetProb = Annotated[float, Query(ge=0, le=1, description="Minimum detection probability.")]
Plugins = Annotated[str, Query(description="Comma-separated: only 'landmarks' is served.")]


# -- recognition ---------------------------------------------------------------------------------------


@router.post(
    "/recognition/recognize",
    responses=compreface_errors(400, 413, 429),
    summary="Recognise the faces in an image among enrolled subjects",
)
def recognize(
    request: Request,
    key: Annotated[ApiKey, Depends(RECOGNISER)],
    file: ImageFile = None,
    encoded: Base64Images = None,
    limit: Limit = 0,
    prediction_count: Annotated[int, Query(ge=1, le=100)] = 1,
    det_prob_threshold: DetProb = 0.0,
    face_plugins: Plugins = "",
    status: bool = False,
) -> Any:
    svc = service(request)
    answer = Answer(parse_plugins(face_plugins), status)
    svc.count_search(key, "recognize")
    _, data = image_of(svc, file, encoded, "file")
    subjects = subjects_for(request, key)
    purpose = require_purpose(svc.purpose_of(key, None), "recognition", asked_as=KEY_PURPOSE)
    threshold = svc.engine.settings.match_threshold
    loaded, faces = svc.engine.analyser.analyse_or_fail(data, timings=answer.timings)  # no lock held
    chosen = _chosen(faces, limit, det_prob_threshold)
    with svc.reading():
        collection_id = svc.engine.catalog.collection_id(subjects.collection)
        found = svc.engine.find(faces, chosen, [collection_id], SUBJECT_CANDIDATES, min(1.99, 2 * threshold))
        names = {image_id: subject for image_id, subject in subjects.example_images()}
    result = []
    returned: list[int] = []
    for probe in found:
        best: dict[str, tuple[float, int]] = {}
        for match in probe.matches:
            subject = names.get(match.image_id)
            if subject is not None and subject not in best:
                best[subject] = (similarity(match.distance, threshold), match.face_id)
        ranked = sorted(best.items(), key=lambda item: -item[1][0])[:prediction_count]
        returned.extend(face_id for _, (_, face_id) in ranked)
        detection = faces[probe.probe_face].detection
        entry = answer.face(detection.box, detection.score, detection.landmarks)
        entry["subjects"] = [{"similarity": value, "subject": subject} for subject, (value, _) in ranked]
        result.append(answer.finish(entry))
    svc.engine.catalog.audit.record(
        SearchEvent(
            actor=key.actor,
            purpose=purpose,
            probe_sha256=loaded.content_id,
            collections=[subjects.collection],
            threshold=threshold,
            top_k=prediction_count,
            match_count=len(set(returned)),
            match_face_ids=sorted(set(returned)),
        )
    )
    return {"result": result, "plugins_versions": plugins_versions(svc.engine.models)}


def _chosen(faces: list[AnalysedFace], limit: int, det_prob_threshold: float) -> list[int]:
    """The positions of the faces above ``det_prob_threshold``, largest first, at most ``limit`` (0: all); none
    is CompreFace's "no face found"."""
    sure = [i for i, face in enumerate(faces) if probability(face.detection.score) >= det_prob_threshold]
    if not sure:
        raise NoFaceError(f"no face above det_prob_threshold {det_prob_threshold}; lower it or send another photo")
    sure.sort(key=lambda i: -faces[i].detection.box.area)
    return sure[: limit or None]


@router.post(
    "/recognition/faces",
    responses=compreface_errors(400, 404, 409, 413),
    status_code=201,
    summary="Add an example photo of a subject (enrolling a new subject under the key's consent attestation)",
)
def add_example(
    request: Request,
    subject: Annotated[str, Query(min_length=1)],
    key: Annotated[ApiKey, Depends(ENROLLER)],
    file: ImageFile = None,
    encoded: Base64Images = None,
    det_prob_threshold: DetProb = 0.0,
) -> Any:
    svc = service(request)
    filename, data = image_of(svc, file, encoded, "file")
    subjects = subjects_for(request, key)
    enrol_with = None if subjects.is_enrolled(subject) else _attested_consent(key, subjects)
    # The expensive part, with no lock held.
    prepared = subjects.prepare_example(
        subject, filename, data, only_face_above=score_at(det_prob_threshold), enrol_with=enrol_with
    )
    with svc.writing():
        added = subjects.write_example(prepared, key.actor)
    return {"image_id": str(added.image_id), "subject": subject.strip()}


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
    summary="Erase every example of a subject, or of every subject (receipt in the audit log)",
)
def delete_examples(
    request: Request,
    key: Annotated[ApiKey, Depends(ENROLLER)],
    subject: Annotated[str, Query(description="Whose examples; none: every subject's.")] = "",
) -> Any:
    with service(request).lock:
        subjects = subjects_for(request, key)
        image_ids = [image_id for image_id, _ in subjects.example_images(subject.strip() or None)]
        if image_ids:
            whose = "a subject" if subject.strip() else "every subject"
            subjects.remove_examples(
                image_ids, key.actor, f"CompreFace API: examples of {whose} deleted by {key.owner}"
            )
    return {"deleted": len(image_ids)}


@router.get(
    "/recognition/faces/{image_id}/img",
    responses={**JPEG, **compreface_errors(404, 429)},
    response_class=Response,
    summary="An example photo, to look at (counted and audited as a view)",
)
def example_picture(request: Request, image_id: RowId, key: Annotated[ApiKey, Depends(RECOGNISER)]) -> Response:
    svc = service(request)
    counted = svc.count_view(key, "CompreFace example image", image_ids=[image_id])
    with svc.reading():
        _example_subject(subjects_for(request, key), image_id)
        data = svc.engine.image_bytes(image_id)
    svc.record_view(key, "CompreFace example image", [], [image_id], counted=counted)
    picture = boxed_image(data, [], None, svc.engine.settings.max_image_pixels)
    return Response(picture, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


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
    key: Annotated[ApiKey, Depends(RECOGNISER)],
    file: ImageFile = None,
    encoded: Base64Images = None,
    limit: Limit = 0,
    det_prob_threshold: DetProb = 0.0,
    face_plugins: Plugins = "",
    status: bool = False,
) -> Any:
    svc = service(request)
    answer = Answer(parse_plugins(face_plugins), status)
    svc.count_search(key, "verify example")
    _, data = image_of(svc, file, encoded, "file")
    purpose = require_purpose(
        svc.purpose_of(key, f"CompreFace verify against example {image_id}"), "verification", asked_as=KEY_PURPOSE
    )
    threshold = svc.engine.settings.match_threshold
    # The expensive part, with no lock held; once per recipe held.
    probe = svc.engine.analyse_probe(data, timings=answer.timings)
    loaded, faces = probe.image, probe.faces
    chosen = _chosen(faces, limit, det_prob_threshold)
    with svc.reading():
        subjects = subjects_for(request, key)
        _example_subject(subjects, image_id)
        example = _example_template(svc, subjects, image_id)
        catalog = svc.engine.catalog
        recipe = catalog.collection_recipe(catalog.collection_id(subjects.collection))
    distances = [float(face_distance(example, faces[i].template(recipe))[0]) for i in chosen]
    best = min(distances)
    svc.engine.catalog.audit.record(
        VerifyEvent(
            actor=key.actor,
            purpose=purpose,
            a_sha256=loaded.content_id,
            b_sha256=f"image {image_id}",
            distance=round(best, 4),
            match=best <= threshold,
        )
    )
    result = []
    for i, distance in zip(chosen, distances, strict=True):
        detection = faces[i].detection
        entry = answer.face(detection.box, detection.score, detection.landmarks)
        entry["similarity"] = similarity(distance, threshold)
        result.append(answer.finish(entry))
    return {"result": result, "plugins_versions": plugins_versions(svc.engine.models)}


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


@router.get("/static/{api_key}/images/{image_id}", include_in_schema=False)
def direct_download(api_key: str, image_id: str) -> Any:
    """CompreFace's direct-download URL carries the API key in its path, where logs and browser histories keep it:
    refused by design, pointing to the download that sends the key as a header."""
    raise RefusedError(
        "the direct-download URL is not served: an API key in a URL leaks into logs and histories; download the "
        f"example with GET /api/v1/recognition/faces/{image_id}/img and the key in the x-api-key header"
    )


# -- subjects ------------------------------------------------------------------------------------------


@router.post(
    "/recognition/subjects",
    responses=compreface_errors(400, 404),
    status_code=201,
    summary="Enrol a subject, under the key's consent attestation (or consent_given_by and consent_scope)",
)
def add_subject(
    request: Request, key: Annotated[ApiKey, Depends(ENROLLER)], body: Annotated[dict[str, Any], Body()]
) -> Any:
    name = str(body.get("subject", "")).strip()
    with service(request).lock:
        subjects = subjects_for(request, key)
        enrolled = subjects.enrol(name, _consent(key, subjects, body), key.actor)
    return {"subject": enrolled.name}


def _consent(key: ApiKey, subjects: Subjects, body: dict[str, Any]) -> Consent:
    """The consent an enrolment records: the one the request states (``consent_given_by``, ``consent_scope``,
    ``consent_at``), else the key's attestation; a key with neither is refused, naming what is missing."""
    given_by = str(body.get("consent_given_by", "") or "")
    scope = str(body.get("consent_scope", "") or "")
    if not given_by and not scope:
        return _attested_consent(key, subjects)
    if not given_by or not scope:
        raise RefusedError("a consent record needs both consent_given_by (who consented) and consent_scope (to what)")
    try:
        given = body.get("consent_at")
        at = datetime.now(UTC) if given is None or given == "" else parse_moment(given, "consent_at")
    except ValueError as problem:
        raise InvalidValueError(str(problem)) from None
    return Consent(given_by, scope, at)


def _attested_consent(key: ApiKey, subjects: Subjects) -> Consent:
    """Consent as the key's attestation records it: where it is held, to the face collection's declared purpose."""
    if not key.consent_attestation:
        raise RefusedError(
            f"key {key.prefix} ({key.owner}) has no consent attestation, so it cannot enrol subjects: an "
            "administrator issues a key with one, e.g. facesearch keys create --role recognition --collection "
            f'{subjects.collection} --consent-attestation "signed forms held by HR, policy P-12" (or send '
            "consent_given_by and consent_scope with the subject)"
        )
    purpose = subjects.engine.collection(subjects.collection).purpose
    given_by = f"attested on key {key.prefix} ({key.owner}): {key.consent_attestation}"
    return Consent(given_by, purpose, datetime.now(UTC), attestation=f"key {key.prefix}: {key.consent_attestation}")


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
    key: Annotated[ApiKey, Depends(SEARCHER)],
    file: ImageFile = None,
    encoded: Base64Images = None,
    limit: Limit = 0,
    det_prob_threshold: DetProb = 0.0,
    face_plugins: Plugins = "",
    status: bool = False,
) -> Any:
    svc = service(request)
    answer = Answer(parse_plugins(face_plugins), status)
    svc.count_search(key, "detect")
    name, data = image_of(svc, file, encoded, "file")
    started = time.perf_counter()
    found = svc.engine.detect(data, name)
    answer.timings["detector"] = time.perf_counter() - started
    faces = [f for f in found.faces if probability(f.score) >= det_prob_threshold]
    if not faces:
        raise NoFaceError(f"{name}: no face above det_prob_threshold {det_prob_threshold}")
    faces.sort(key=lambda f: f.box.area, reverse=True)
    return {
        "result": [answer.finish(answer.face(f.box, f.score, f.landmarks)) for f in faces[: limit or None]],
        "plugins_versions": plugins_versions(svc.engine.models, recognition=False),
    }


@router.post(
    "/verification/verify",
    responses=compreface_errors(400, 413, 429),
    summary="Compare the largest face of the source image with every face of the target image",
)
def verify(
    request: Request,
    key: Annotated[ApiKey, Depends(SEARCHER)],
    source_image: ImageFile = None,
    target_image: ImageFile = None,
    encoded: Base64Images = None,
    limit: Limit = 0,
    det_prob_threshold: DetProb = 0.0,
    face_plugins: Plugins = "",
    status: bool = False,
) -> Any:
    svc = service(request)
    plugins = parse_plugins(face_plugins)
    source_answer, target_answer = Answer(plugins, status), Answer(plugins, status)
    svc.count_search(key, "verify")
    source_name, source = image_of(svc, source_image, encoded, "source_image")
    target_name, target = image_of(svc, target_image, encoded, "target_image")
    purpose = require_purpose(svc.purpose_of(key, "CompreFace verify"), "verification", asked_as=KEY_PURPOSE)
    threshold = svc.engine.settings.match_threshold
    analyser = svc.engine.analyser
    source_loaded, source_faces = analyser.analyse_or_fail(source, source_name, timings=source_answer.timings)
    target_loaded, target_faces = analyser.analyse_or_fail(target, target_name, timings=target_answer.timings)
    source_face = source_faces[_chosen(source_faces, 1, det_prob_threshold)[0]]
    chosen = [target_faces[i] for i in _chosen(target_faces, limit, det_prob_threshold)]
    distances = [float(face_distance(source_face.embedding, face.embedding)[0]) for face in chosen]
    best = min(distances)
    svc.engine.catalog.audit.record(
        VerifyEvent(
            actor=key.actor,
            purpose=purpose,
            a_sha256=source_loaded.content_id,
            b_sha256=target_loaded.content_id,
            distance=round(best, 4),
            match=best <= threshold,
        )
    )
    matches = []
    for face, distance in zip(chosen, distances, strict=True):
        entry = target_answer.face(face.detection.box, face.detection.score, face.detection.landmarks)
        entry["similarity"] = similarity(distance, threshold)
        matches.append(target_answer.finish(entry))
    detection = source_face.detection
    source_json = source_answer.face(detection.box, detection.score, detection.landmarks)
    return {
        "result": [
            {
                "source_image_face": source_answer.finish(source_json),
                "face_matches": matches,
                "plugins_versions": plugins_versions(svc.engine.models),
            }
        ]
    }
