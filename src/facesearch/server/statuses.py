"""The statuses the API answers with, described once: routes name the ones they can return (``errors(404)``),
every router adds those of every call with a key (``EVERY_CALL``), and the OpenAPI schema documents them with
the error body's shape (``tests/test_api_schema.py`` holds the service to it)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorBody(BaseModel):
    """What every error of the native API (``/v1``) answers."""

    status: int = Field(description="The HTTP status, again.")
    code: str = Field(description="A stable name for the problem: not_found, forbidden_role, rate_limited, ...")
    message: str = Field(description="What is wrong and what to do, for a person.")


class CompreFaceErrorBody(BaseModel):
    """What every error of the CompreFace-compatible API (``/api/v1``) answers, as CompreFace does."""

    message: str
    code: int = Field(description="CompreFace's numeric code (facesearch's exit code).")
    error: str = Field(description="facesearch's name for the problem.")


DESCRIPTIONS: dict[int, str] = {
    400: "The image cannot be read: not an image, corrupt or truncated.",
    401: "No API key, or one that is wrong or revoked.",
    403: "The key's role or collections do not allow this call, or a purpose it needs is missing.",
    404: "No collection, image, face, person, subject or key by that name or id.",
    409: "It exists already.",
    413: "Over a size limit: bytes, pixels or files in one request.",
    422: "A parameter or the body is not valid, or no face where one is needed.",
    429: "Over the key's search budget for the last minute; retry after Retry-After seconds.",
    503: "The data folder or the catalog does not answer.",
}
RETRY_AFTER = {"Retry-After": {"description": "Seconds until the key may call again.", "schema": {"type": "integer"}}}
EVERY_CALL = (401, 403, 422)
"""What any call with a key can get: no valid key, a key whose role does not allow it, an invalid request."""


def errors(*statuses: int, body: type[BaseModel] = ErrorBody) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` of ``statuses``, each with its description and the error body."""
    documented: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        documented[status] = {"model": body, "description": DESCRIPTIONS[status]}
        if status == 429:
            documented[status]["headers"] = RETRY_AFTER
    return documented


COMPREFACE_400 = (
    "The image cannot be read, or shows no face (CompreFace's code 28) or, for an example, more than one (31); "
    "or the subject exists already (43); or a parameter is missing (33, a file 34) or not valid (26, 36)."
)


def compreface_errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """As ``errors``, with CompreFace's error body, and 400 on every route: CompreFace answers an invalid request
    with 400 (never 422)."""
    documented = errors(*dict.fromkeys((400, *statuses)), body=CompreFaceErrorBody)
    if 400 in documented:
        documented[400] = {**documented[400], "description": COMPREFACE_400}
    return documented
