"""Who am I, the audit log and transparency report (auditor), subject rights (rights), API keys (admin)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from pydantic import BaseModel, Field

from facesearch.accountability.rights import SubjectRights
from facesearch.accountability.transparency import transparency_report
from facesearch.core.errors import InvalidValueError
from facesearch.core.results import to_plain
from facesearch.safeguards.audit import Action, ExportEvent
from facesearch.safeguards.roles import ApiKey, Role
from facesearch.server.params import MAX_ROW_ID, Moment, RowId
from facesearch.server.service import Limit, Offset, allow, paged, read_upload, service
from facesearch.server.statuses import EVERY_CALL, errors
from facesearch.store.catalog.browse import check_page

router = APIRouter(prefix="/v1", tags=["accountability"], responses=errors(*EVERY_CALL))
REFERENCE_FIELD = "the form field 'reference'"
Reference = Annotated[str, Form(min_length=3, description="The request's reference, for the audit log.")]


class NewKey(BaseModel):
    owner: str = Field(description="The person or system the key is issued to.")
    role: str = Field(description="admin, ingest, search, auditor, rights or recognition.")
    purpose: str = Field("", description="Declared purpose (required for search keys), audited with every search.")
    collections: list[str] = Field(
        default_factory=list, description="Collections an ingest or recognition key may use."
    )
    consent_attestation: str = Field(
        "", description="Where the consent of the subjects the key enrols is held (recognition and ingest keys)."
    )


@router.get("/me", summary="The calling key: owner, role, declared purpose")
def me(key: Annotated[ApiKey, Depends(allow(*Role))]) -> Any:
    return to_plain(key)


@router.get("/audit", summary="Audit entries, oldest first, filtered and paged (auditor)")
def audit_entries(
    request: Request,
    key: Annotated[ApiKey, Depends(allow(Role.AUDITOR))],
    actor: str | None = None,
    action: str | None = None,
    purpose: Annotated[str | None, Query(description="Entries whose purpose contains this text.")] = None,
    since: Moment | None = None,
    until: Moment | None = None,
    offset: Offset = 0,
    limit: Limit = 100,
) -> Any:
    check_page(offset, limit)
    if action is not None and action not in {a.value for a in Action}:
        raise InvalidValueError(f"action {action!r} is not one of: {', '.join(a.value for a in Action)}")
    svc = service(request)
    with svc.reading():
        entries = svc.engine.catalog.audit.entries(
            actor=actor, action=action, purpose=purpose, since=since, until=until, limit=limit, offset=offset
        )
    return {"items": to_plain(entries), "offset": offset, "limit": limit}


@router.get("/audit/verify", summary="Check the audit log's hash chain (auditor)")
def audit_verify(request: Request, key: Annotated[ApiKey, Depends(allow(Role.AUDITOR))]) -> Any:
    svc = service(request)
    with svc.reading():
        return to_plain(svc.engine.catalog.audit.verify())


@router.get("/report", summary="Transparency report: what is held, why, until when; activity by purpose (auditor)")
def report(
    request: Request,
    key: Annotated[ApiKey, Depends(allow(Role.AUDITOR))],
    since: Moment | None = None,
    until: Moment | None = None,
) -> Any:
    svc = service(request)
    with svc.reading():
        return to_plain(transparency_report(svc.engine, since, until))


@router.post(
    "/rights/access",
    responses=errors(400, 413, 429),
    summary="Subject access: every held image of the person in a photo (rights)",
)
def rights_access(
    request: Request,
    file: Annotated[UploadFile, File(description="A photo of the person; analysed in memory, never stored.")],
    reference: Reference,
    key: Annotated[ApiKey, Depends(allow(Role.RIGHTS))],
) -> Any:
    svc = service(request)
    svc.count_search(key, "access request")
    _, data = read_upload(file, svc.engine.settings.max_file_bytes)
    rights = SubjectRights(svc.engine)
    probe = rights.analyse(data)  # the expensive part, with no lock held
    with svc.reading():
        answer = rights.access(probe, key.actor, reference, asked_as=REFERENCE_FIELD)
        svc.engine.catalog.audit.record(
            ExportEvent(
                actor=key.actor,
                purpose=answer.reference,
                what="subject access report",
                destination="HTTP response",
                items=len(answer.held),
            )
        )
    return to_plain(answer)


@router.post(
    "/rights/erase",
    responses=errors(400, 404, 413),
    summary="Erase the person in a photo, or faces or images, with a receipt (rights)",
)
def rights_erase(
    request: Request,
    reference: Reference,
    key: Annotated[ApiKey, Depends(allow(Role.RIGHTS))],
    file: Annotated[UploadFile | None, File(description="A photo of the person (never stored).")] = None,
    face_ids: Annotated[str, Form(description="Comma-separated face ids.")] = "",
    image_ids: Annotated[str, Form(description="Comma-separated image ids.")] = "",
    confirm: Annotated[
        str,
        Form(
            description="Comma-separated face ids of the photo's possible matches (an access request's 'to_review') "
            "that the person answering confirmed show the person: erased too."
        ),
    ] = "",
    objection: Annotated[
        str, Form(description="Where the person's agreement to a protected template is recorded.")
    ] = "",
) -> Any:
    svc = service(request)
    rights = SubjectRights(svc.engine)
    data = read_upload(file, svc.engine.settings.max_file_bytes)[1] if file is not None else None
    # The expensive part, with no lock held (for an objection, with a template of every recipe to protect).
    probe = rights.analyse(data, for_objection=bool(objection)) if data is not None else None
    with svc.writing():
        result = rights.erase(
            key.actor,
            reference,
            probe=probe,
            face_ids=_ids(face_ids, "face_ids"),
            image_ids=_ids(image_ids, "image_ids"),
            confirmed=_ids(confirm, "confirm"),
            objection_agreement=objection,
            asked_as=REFERENCE_FIELD,
            confirm_as="the form field 'confirm'",
        )
    return to_plain(result)


@router.get("/stats", summary="What the data folder holds: collections, images, faces, bytes (admin, auditor)")
def stats(request: Request, key: Annotated[ApiKey, Depends(allow(Role.ADMIN, Role.AUDITOR))]) -> Any:
    svc = service(request)
    with svc.reading():
        return to_plain(svc.engine.stats())


@router.post("/purge", summary="Remove everything held past its retention period now (admin)")
def purge(request: Request, key: Annotated[ApiKey, Depends(allow(Role.ADMIN))]) -> Any:
    svc = service(request)
    with svc.lock:
        return to_plain(svc.engine.purge(key.actor))


@router.get("/keys", summary="API keys (admin); secrets are never shown again")
def list_keys(
    request: Request, key: Annotated[ApiKey, Depends(allow(Role.ADMIN))], offset: Offset = 0, limit: Limit = 100
) -> Any:
    svc = service(request)
    with svc.reading():
        return paged(svc.keys.list_keys(), offset, limit)


@router.post(
    "/keys",
    responses=errors(409),
    status_code=201,
    summary="Create an API key (admin); the secret is in this response only",
)
def create_key(request: Request, body: NewKey, key: Annotated[ApiKey, Depends(allow(Role.ADMIN))]) -> Any:
    svc = service(request)
    with svc.lock:
        created, secret = svc.keys.create(
            body.owner,
            body.role,
            key.actor,
            purpose=body.purpose,
            collections=body.collections,
            consent_attestation=body.consent_attestation,
        )
    return {"key": to_plain(created), "token": secret}


@router.delete("/keys/{key_id}", responses=errors(404), summary="Revoke an API key (admin)")
def revoke_key(request: Request, key_id: RowId, key: Annotated[ApiKey, Depends(allow(Role.ADMIN))]) -> Any:
    svc = service(request)
    with svc.lock:
        return to_plain(svc.keys.revoke(key_id, key.actor))


def _ids(text: str, what: str) -> list[int]:
    try:
        ids = [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise InvalidValueError(f"{what} must be comma-separated numbers, got {text!r}") from None
    if not all(1 <= i <= MAX_ROW_ID for i in ids):
        raise InvalidValueError(f"{what} must be ids between 1 and {MAX_ROW_ID}, got {text!r}")
    return ids
