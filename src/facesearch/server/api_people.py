"""People: faces grouped into individuals, in collections whose purpose allows it.

Clustering is a processing run over a collection's faces, so it belongs to ingest keys (of that
collection); looking at people and correcting them (name, hide, merge, split) is work on faces, so it
belongs to search keys. Every run and correction is audited by the people service."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from facesearch.core.errors import NotFoundError
from facesearch.core.results import to_plain
from facesearch.people.service import CLUSTER_STEPS, People
from facesearch.safeguards.roles import ApiKey, Role
from facesearch.server.params import MAX_ROW_ID, RowId
from facesearch.server.service import Limit, Offset, allow, collection_allowed, paged, service
from facesearch.server.statuses import EVERY_CALL, errors

router = APIRouter(prefix="/v1", tags=["people"], responses=errors(*EVERY_CALL))


class Cluster(BaseModel):
    full: bool = Field(False, description="Regroup every face no person placed by hand (default: only new faces).")


class PersonChange(BaseModel):
    name: str | None = Field(None, description="A label (not an enrolment: no consent is implied).")
    hidden: bool | None = Field(None, description="Hide the person from lists, or show them again.")


class Merge(BaseModel):
    other: int = Field(ge=1, le=MAX_ROW_ID, description="The person whose faces join this one (it disappears).")


class Split(BaseModel):
    face_ids: list[Annotated[int, Field(ge=1, le=MAX_ROW_ID)]] = Field(
        description="Faces of this person that become a new person."
    )


def _scoped(key: ApiKey, collection: str) -> None:
    if key.collections or key.role is Role.INGEST:
        collection_allowed(key, collection)


@router.post(
    "/collections/{name}/people/cluster",
    responses=errors(404),
    summary="Group the collection's faces into people (ingest)",
)
def cluster(request: Request, name: str, body: Cluster, key: Annotated[ApiKey, Depends(allow(Role.INGEST))]) -> Any:
    _scoped(key, name)
    svc = service(request)
    report = People(svc.engine).cluster(name, key.actor, full=body.full, reading=svc.reading, writing=svc.writing)
    return to_plain(report)


CLUSTER_JOB = "people-cluster"


@router.post(
    "/collections/{name}/people/cluster/jobs",
    responses=errors(404),
    status_code=202,
    summary="Start grouping the collection's faces into people in the background; poll the job (ingest)",
)
def start_cluster_job(
    request: Request, name: str, body: Cluster, key: Annotated[ApiKey, Depends(allow(Role.INGEST))]
) -> Any:
    """Answers the job at once: ``state`` running, done or failed; ``step`` of ``steps`` and the ``stage`` under
    way; when done, ``result`` is what ``POST .../people/cluster`` answers; when failed, ``error`` is the error
    body it would have answered. A job of this key still running on the collection is answered again."""
    _scoped(key, name)
    svc = service(request)
    People(svc.engine).check_allowed(name)  # catalog reads, no lock: refused now, not in the job (which checks again)

    def work(progress: Callable[[str], None]) -> Any:
        people = People(svc.engine)
        return people.cluster(
            name, key.actor, full=body.full, reading=svc.reading, writing=svc.writing, progress=progress
        )

    return svc.jobs.start(key.id, CLUSTER_JOB, name, CLUSTER_STEPS, work).view()


@router.get(
    "/collections/{name}/people/cluster/jobs/{job_id}",
    responses=errors(404),
    summary="A grouping job's progress and, once done, its result (the key that started it)",
)
def cluster_job(request: Request, name: str, job_id: RowId, key: Annotated[ApiKey, Depends(allow(Role.INGEST))]) -> Any:
    job = service(request).jobs.get(job_id, key.id)  # only this key's jobs: started within its collections
    if job.collection != name or job.kind != CLUSTER_JOB:
        raise NotFoundError(f"no job {job_id} grouping {name!r} into people was started by this key")
    return job.view()


@router.get(
    "/collections/{name}/people",
    responses=errors(404, 429),
    summary="People of a collection, largest first, with a representative face",
)
def list_people(
    request: Request,
    name: str,
    key: Annotated[ApiKey, Depends(allow(Role.SEARCH))],
    hidden: bool = False,
    offset: Offset = 0,
    limit: Limit = 100,
) -> Any:
    _scoped(key, name)
    svc = service(request)
    svc.count_search(key, "list people")
    with svc.reading():
        people = People(svc.engine)
        page = paged(people.list_people(name, include_hidden=hidden), offset, limit)
        low_quality = people.low_quality_faces(name)
        alone = people.faces_alone(name)
    shown = [p["representative"]["face_id"] for p in page["items"] if p["representative"]]
    svc.record_view(key, "list people", shown, [], counted=True)
    return {**page, "faces_alone": alone, "low_quality_faces": low_quality}


@router.get("/people/{person_id}", responses=errors(404, 429), summary="A person and their faces")
def show_person(request: Request, person_id: RowId, key: Annotated[ApiKey, Depends(allow(Role.SEARCH))]) -> Any:
    svc = service(request)
    svc.count_search(key, "person")
    with svc.reading():
        detail = People(svc.engine).show(person_id)
    _scoped(key, detail.info.collection)
    svc.record_view(key, "person", [f.face_id for f in detail.faces], [f.image_id for f in detail.faces], counted=True)
    return to_plain(detail)


@router.patch("/people/{person_id}", responses=errors(404), summary="Name, hide or show a person")
def change_person(
    request: Request, person_id: RowId, body: PersonChange, key: Annotated[ApiKey, Depends(allow(Role.SEARCH))]
) -> Any:
    svc = service(request)
    with svc.lock:
        people = People(svc.engine)
        _scoped(key, people.show(person_id).info.collection)
        if body.name is not None:
            people.name(person_id, body.name, key.actor)
        if body.hidden is not None:
            people.hide(person_id, key.actor, hidden=body.hidden)
        return to_plain(people.show(person_id).info)


@router.post("/people/{person_id}/merge", responses=errors(404), summary="Merge another person into this one")
def merge(request: Request, person_id: RowId, body: Merge, key: Annotated[ApiKey, Depends(allow(Role.SEARCH))]) -> Any:
    svc = service(request)
    with svc.lock:
        people = People(svc.engine)
        _scoped(key, people.show(person_id).info.collection)
        people.merge(person_id, body.other, key.actor)
        return to_plain(people.show(person_id).info)


@router.post(
    "/people/{person_id}/split", responses=errors(404), summary="Split faces out of a person into a new person"
)
def split(request: Request, person_id: RowId, body: Split, key: Annotated[ApiKey, Depends(allow(Role.SEARCH))]) -> Any:
    svc = service(request)
    with svc.lock:
        people = People(svc.engine)
        _scoped(key, people.show(person_id).info.collection)
        new_id = people.split(person_id, body.face_ids, key.actor)
        return to_plain(people.show(new_id).info)
