"""Collections, uploads, and what they hold: images and faces (list, get, picture, delete)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Query, Request, Response, UploadFile
from pydantic import BaseModel, Field

from facesearch.accountability.rights import SubjectRights
from facesearch.core.errors import TooLargeError
from facesearch.core.results import to_plain
from facesearch.safeguards.governance import CollectionSpec
from facesearch.safeguards.roles import ApiKey, Role
from facesearch.server.params import MAX_ROW_ID, RowId
from facesearch.server.pictures import boxed_image, face_thumbnail
from facesearch.server.service import (
    Limit,
    Offset,
    Service,
    allow,
    collection_allowed,
    collection_visible,
    paged,
    read_upload,
    service,
)
from facesearch.server.statuses import EVERY_CALL, errors
from facesearch.store.catalog.browse import Browser, FaceSummary, ImageSummary

router = APIRouter(prefix="/v1", tags=["collections, images and faces"], responses=errors(*EVERY_CALL))
EVERY_ROLE = tuple(Role)
VIEWERS = (Role.SEARCH, Role.RIGHTS)
REASON_PARAMETER = "the query parameter 'reason'"
Reason = Annotated[str, Query(min_length=3, description="Why: request or case reference, for the audit log.")]
JPEG: dict[int | str, dict[str, Any]] = {200: {"content": {"image/jpeg": {}}, "description": "A JPEG to look at."}}


class NewCollection(BaseModel):
    name: str = Field(description="1-63 lower-case letters, digits, '-' or '_'.")
    purpose: str = Field(description="Why these faces are processed, in a sentence.")
    lawful_basis: str = Field(description="GDPR Art. 6 basis: consent, contract, legal-obligation, ...")
    biometric_condition: str = Field(description="GDPR Art. 9(2) condition: explicit-consent, ...")
    retention: str = Field(description="How long images are held: 90d, 12w, 6m, 2y.")
    people_allowed: bool = Field(False, description="Whether the purpose allows grouping faces into people.")


class CollectionChange(BaseModel):
    people_allowed: bool
    reason: str = Field(min_length=3, description="Why the purpose changed, for the audit log.")


@router.get("/collections", summary="List collections: purpose, basis, retention, counts")
def list_collections(
    request: Request, key: Annotated[ApiKey, Depends(allow(*EVERY_ROLE))], offset: Offset = 0, limit: Limit = 100
) -> Any:
    svc = service(request)
    with svc.reading():
        return paged(svc.engine.collections(), offset, limit)


@router.post("/collections", responses=errors(409), status_code=201, summary="Create a collection (admin)")
def create_collection(request: Request, body: NewCollection, key: Annotated[ApiKey, Depends(allow(Role.ADMIN))]) -> Any:
    spec = CollectionSpec.parse(
        body.name, body.purpose, body.lawful_basis, body.biometric_condition, body.retention, body.people_allowed
    )
    svc = service(request)
    with svc.lock:
        return to_plain(svc.engine.create_collection(spec, key.actor))


@router.get("/collections/{name}", responses=errors(404), summary="One collection")
def get_collection(request: Request, name: str, key: Annotated[ApiKey, Depends(allow(*EVERY_ROLE))]) -> Any:
    svc = service(request)
    with svc.reading():
        return to_plain(svc.engine.collection(name))


@router.patch(
    "/collections/{name}", responses=errors(404), summary="Allow or withdraw grouping faces into people (admin)"
)
def change_collection(
    request: Request, name: str, body: CollectionChange, key: Annotated[ApiKey, Depends(allow(Role.ADMIN))]
) -> Any:
    svc = service(request)
    with svc.lock:
        changed = svc.engine.set_people_allowed(
            name, body.people_allowed, key.actor, body.reason, asked_as="the body's field 'reason'"
        )
        return to_plain(changed)


@router.delete(
    "/collections/{name}",
    responses=errors(404),
    status_code=204,
    summary="Delete a collection and shred its key (admin)",
)
def delete_collection(
    request: Request, name: str, reason: Reason, key: Annotated[ApiKey, Depends(allow(Role.ADMIN))]
) -> Response:
    svc = service(request)
    with svc.lock:
        svc.engine.delete_collection(name, key.actor, reason)
    return Response(status_code=204)


@router.post(
    "/collections/{name}/images",
    responses=errors(404, 413),
    summary="Upload one or more images into a collection (ingest)",
)
def upload_images(
    request: Request,
    name: str,
    files: Annotated[list[UploadFile], File(description="One or more images (repeat the 'files' field).")],
    key: Annotated[ApiKey, Depends(allow(Role.INGEST))],
) -> Any:
    collection_allowed(key, name)
    svc = service(request)
    settings = svc.engine.settings
    if len(files) > settings.max_upload_files:
        raise TooLargeError(
            f"{len(files)} files in one request is over the limit of {settings.max_upload_files}; send them in batches"
        )
    uploads = [read_upload(upload, settings.max_file_bytes) for upload in files]
    prepared = svc.engine.prepare_uploads(name, uploads)  # the expensive part, with no lock held
    with svc.writing():
        result = svc.engine.ingest_uploads(name, prepared, key.actor)
    return to_plain(result)


@router.get(
    "/collections/{name}/images",
    responses=errors(404, 429),
    summary="Images held in a collection, paged (counted and audited)",
)
def list_images(
    request: Request,
    name: str,
    key: Annotated[ApiKey, Depends(allow(*VIEWERS))],
    offset: Offset = 0,
    limit: Limit = 50,
) -> Any:
    collection_visible(key, name)
    svc = service(request)
    svc.count_search(key, "list images")
    with svc.reading():
        page = Browser(svc.engine.catalog).images(name, offset, limit)
    svc.record_view(key, "list images", [], [image.id for image in page.items], counted=True)
    return to_plain(page)


@router.get(
    "/collections/{name}/faces",
    responses=errors(404, 429),
    summary="Faces held in a collection, paged (counted and audited)",
)
def list_faces(
    request: Request,
    name: str,
    key: Annotated[ApiKey, Depends(allow(*VIEWERS))],
    offset: Offset = 0,
    limit: Limit = 50,
) -> Any:
    collection_visible(key, name)
    svc = service(request)
    svc.count_search(key, "list faces")
    with svc.reading():
        page = Browser(svc.engine.catalog).faces(name, offset, limit)
    svc.record_view(key, "list faces", [face.id for face in page.items], [], counted=True)
    return to_plain(page)


@router.get(
    "/images/{image_id}", responses=errors(404, 429), summary="An image: source, collection, dates and its faces"
)
def get_image(request: Request, image_id: RowId, key: Annotated[ApiKey, Depends(allow(*VIEWERS))]) -> Any:
    svc = service(request)
    counted = svc.count_view(key, "image", image_ids=[image_id])
    image = _visible_image(svc, key, image_id)
    svc.record_view(key, "image", [face.id for face in image.faces], [image_id], counted=counted)
    return to_plain(image)


@router.get(
    "/images/{image_id}/picture",
    responses={**JPEG, **errors(404, 429)},
    response_class=Response,
    summary="The image, boxes drawn",
)
def image_picture(
    request: Request,
    image_id: RowId,
    key: Annotated[ApiKey, Depends(allow(*VIEWERS))],
    face: Annotated[int | None, Query(ge=1, le=MAX_ROW_ID, description="Face id to highlight.")] = None,
) -> Response:
    svc = service(request)
    counted = svc.count_view(key, "image picture", image_ids=[image_id])
    image = _visible_image(svc, key, image_id)
    with svc.reading():
        data = svc.engine.image_bytes(image_id)
    svc.record_view(key, "image picture", [], [image_id], counted=counted)
    ids = [f.id for f in image.faces]
    highlight = ids.index(face) if face in ids else None
    picture = boxed_image(data, [f.box for f in image.faces], highlight, svc.engine.settings.max_image_pixels)
    return Response(picture, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


@router.delete(
    "/images/{image_id}", responses=errors(404), summary="Erase an image and its faces, with a receipt (rights)"
)
def delete_image(
    request: Request, image_id: RowId, reason: Reason, key: Annotated[ApiKey, Depends(allow(Role.RIGHTS))]
) -> Any:
    svc = service(request)
    with svc.lock:
        erased = SubjectRights(svc.engine).erase(key.actor, reason, image_ids=[image_id], asked_as=REASON_PARAMETER)
        return to_plain(erased)


@router.get("/faces/{face_id}", responses=errors(404, 429), summary="A face: box, detection score, image, collection")
def get_face(request: Request, face_id: RowId, key: Annotated[ApiKey, Depends(allow(*VIEWERS))]) -> Any:
    svc = service(request)
    counted = svc.count_view(key, "face", face_ids=[face_id])
    face = _visible_face(svc, key, face_id)
    svc.record_view(key, "face", [face_id], [face.image_id], counted=counted)
    return to_plain(face)


@router.get(
    "/faces/{face_id}/thumbnail",
    responses={**JPEG, **errors(404, 429)},
    response_class=Response,
    summary="The face, cropped",
)
def face_picture(request: Request, face_id: RowId, key: Annotated[ApiKey, Depends(allow(*VIEWERS))]) -> Response:
    svc = service(request)
    counted = svc.count_view(key, "face thumbnail", face_ids=[face_id])
    face = _visible_face(svc, key, face_id)
    with svc.reading():
        data = svc.engine.image_bytes(face.image_id)
    svc.record_view(key, "face thumbnail", [face_id], [], counted=counted)
    picture = face_thumbnail(data, face.box, svc.engine.settings.max_image_pixels)
    return Response(picture, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


def _visible_image(svc: Service, key: ApiKey, image_id: int) -> ImageSummary:
    with svc.reading():
        image = Browser(svc.engine.catalog).image(image_id)
    collection_visible(key, image.collection)
    return image


def _visible_face(svc: Service, key: ApiKey, face_id: int) -> FaceSummary:
    with svc.reading():
        face = Browser(svc.engine.catalog).face(face_id)
    collection_visible(key, face.collection)
    return face


@router.delete("/faces/{face_id}", responses=errors(404), summary="Erase one face, with a receipt (rights)")
def delete_face(
    request: Request, face_id: RowId, reason: Reason, key: Annotated[ApiKey, Depends(allow(Role.RIGHTS))]
) -> Any:
    svc = service(request)
    with svc.lock:
        erased = SubjectRights(svc.engine).erase(key.actor, reason, face_ids=[face_id], asked_as=REASON_PARAMETER)
        return to_plain(erased)
