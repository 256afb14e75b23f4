"""Named subjects enrolled with consent (ingest keys that name the subjects collection), and consent
withdrawal (also open to the rights role, since it is the subject exercising a right)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Query, Request, UploadFile
from pydantic import BaseModel, Field

from facesearch.accountability.subjects import Consent, Subjects
from facesearch.core.results import to_plain
from facesearch.safeguards.roles import ApiKey, Role
from facesearch.server.params import Moment
from facesearch.server.service import Limit, Offset, allow, collection_allowed, paged, read_upload, service
from facesearch.server.statuses import EVERY_CALL, errors

router = APIRouter(prefix="/v1", tags=["subjects"], responses=errors(*EVERY_CALL))


class Enrolment(BaseModel):
    name: str = Field(description="The subject's name, as results will show it.")
    consent_given_by: str = Field(description="Who consented: the subject, or who may consent for them.")
    consent_scope: str = Field(description="What the consent covers, in a sentence.")
    consent_at: Moment | None = Field(
        None, description="When consent was given, ISO 8601, not in the future (default: now)."
    )


def subjects_for(request: Request, key: ApiKey) -> Subjects:
    svc = service(request)
    found = Subjects(svc.engine)
    if key.role is Role.RECOGNITION:
        return Subjects(svc.engine, face_collection(key, svc.engine.settings.subjects_collection))
    if key.role is Role.INGEST or (key.role is Role.SEARCH and key.collections):
        collection_allowed(key, found.collection)
    return found


def face_collection(key: ApiKey, subjects_collection: str) -> str:
    """A recognition key's face collection (CompreFace's): the subjects collection if the key names it, else the
    first collection it names."""
    return subjects_collection if subjects_collection in key.collections else key.collections[0]


@router.get("/subjects", responses=errors(404), summary="Enrolled subjects with their consent records")
def list_subjects(
    request: Request,
    key: Annotated[ApiKey, Depends(allow(Role.INGEST, Role.RIGHTS))],
    offset: Offset = 0,
    limit: Limit = 100,
) -> Any:
    with service(request).reading():
        return paged(subjects_for(request, key).all(), offset, limit)


@router.post(
    "/subjects",
    responses=errors(404, 409),
    status_code=201,
    summary="Enrol a subject, recording who consented, when, to what",
)
def enrol(request: Request, body: Enrolment, key: Annotated[ApiKey, Depends(allow(Role.INGEST))]) -> Any:
    consent = Consent(body.consent_given_by, body.consent_scope, body.consent_at or datetime.now(UTC))
    with service(request).lock:
        return to_plain(subjects_for(request, key).enrol(body.name, consent, key.actor))


@router.post(
    "/subjects/{name}/examples",
    responses=errors(400, 404, 413),
    status_code=201,
    summary="Add an example photo of a subject",
)
def add_example(
    request: Request,
    name: str,
    file: Annotated[UploadFile, File(description="A photo of the subject alone: one face, or it is refused.")],
    key: Annotated[ApiKey, Depends(allow(Role.INGEST))],
) -> Any:
    svc = service(request)
    filename, data = read_upload(file, svc.engine.settings.max_file_bytes)
    subjects = subjects_for(request, key)
    # The expensive part, with no lock held; a native example must show one face, whatever its score.
    prepared = subjects.prepare_example(name, filename, data, only_face_above=-math.inf)
    with svc.writing():
        return to_plain(subjects.write_example(prepared, key.actor))


@router.delete(
    "/subjects/{name}",
    responses=errors(404),
    summary="Consent withdrawn: erase the subject's faces (receipt) and the subject",
)
def withdraw(
    request: Request,
    name: str,
    reason: Annotated[str, Query(min_length=3, description="Reference of the withdrawal, for the audit log.")],
    key: Annotated[ApiKey, Depends(allow(Role.INGEST, Role.RIGHTS))],
) -> Any:
    with service(request).lock:
        return to_plain(subjects_for(request, key).withdraw(name, key.actor, reason))
