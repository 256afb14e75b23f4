"""Search a probe face across collections, verify two faces, detect faces: the search role's calls.

Each counts against the key's rate limit; search and verify are audited under the key's declared
purpose (and the case reference the caller adds)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile

from facesearch.core.errors import CollectionScopeError
from facesearch.core.results import to_plain
from facesearch.safeguards.roles import ApiKey, Role
from facesearch.server.service import KEY_PURPOSE, allow, read_upload, service
from facesearch.server.statuses import EVERY_CALL, errors

router = APIRouter(prefix="/v1", tags=["search"], responses=errors(*EVERY_CALL))
Case = Annotated[str, Form(description="Case reference, added to the key's declared purpose in the audit log.")]
Threshold = Annotated[float | None, Form(gt=0, lt=2, description="Match distance (default: the setting, 0.6).")]


@router.post("/search", responses=errors(400, 404, 413, 429), summary="Every held photo of the faces in a probe image")
def search(
    request: Request,
    file: Annotated[UploadFile, File(description="The probe image.")],
    key: Annotated[ApiKey, Depends(allow(Role.SEARCH))],
    case: Case = "",
    top_k: Annotated[int | None, Form(ge=1, le=1000, description="Matches per probe face.")] = None,
    threshold: Annotated[
        float | None,
        Form(
            gt=0,
            lt=2,
            description="Match distance (default: chosen from the setting search_false_matches and the faces "
            "searched, at most 0.6; the response's operating_point says what it implies).",
        ),
    ] = None,
    collections: Annotated[
        str, Form(description="Comma-separated collections (default: all the key may search).")
    ] = "",
) -> Any:
    svc = service(request)
    svc.count_search(key, "search")
    _, data = read_upload(file, svc.engine.settings.max_file_bytes)
    wanted = [c.strip() for c in collections.split(",") if c.strip()] or key.collections or None
    if key.collections and not set(wanted or ()) <= set(key.collections):
        raise CollectionScopeError(f"this key may search only {', '.join(key.collections)}")
    probe = svc.engine.analyse_probe(data)  # the expensive part, with no lock held
    with svc.reading():
        result = svc.engine.search(
            probe,
            key.actor,
            svc.purpose_of(key, case),
            top_k=top_k,
            threshold=threshold,
            collections=wanted,
            asked_as=KEY_PURPOSE,
        )
    matches = [match for probe in result.results for match in probe.matches]
    svc.shown.add(key.id, [m.face_id for m in matches], [m.image_id for m in matches])  # their pictures follow
    return to_plain(result)


@router.post(
    "/verify", responses=errors(400, 413, 429), summary="Whether the largest faces of two images are the same person"
)
def verify(
    request: Request,
    a: Annotated[UploadFile, File(description="First image.")],
    b: Annotated[UploadFile, File(description="Second image.")],
    key: Annotated[ApiKey, Depends(allow(Role.SEARCH))],
    case: Case = "",
    threshold: Threshold = None,
) -> Any:
    svc = service(request)
    svc.count_search(key, "verify")
    limit = svc.engine.settings.max_file_bytes
    _, first = read_upload(a, limit)
    _, second = read_upload(b, limit)
    purpose = svc.purpose_of(key, case)
    result = svc.engine.verify(first, second, key.actor, purpose, threshold=threshold, asked_as=KEY_PURPOSE)
    return to_plain(result)


@router.post("/detect", responses=errors(400, 413, 429), summary="Boxes, scores and landmarks of the faces in an image")
def detect(
    request: Request,
    file: Annotated[UploadFile, File(description="The image.")],
    key: Annotated[ApiKey, Depends(allow(Role.SEARCH))],
) -> Any:
    svc = service(request)
    svc.count_search(key, "detect")
    name, data = read_upload(file, svc.engine.settings.max_file_bytes)
    return to_plain(svc.engine.detect(data, name))
