"""The errors facesearch raises on purpose.

Each error carries a message a person can act on (what is wrong and what to do), an exit code for
the CLI and an HTTP status for the service. One place renders them (``cli.main`` today); anything
else that escapes is a bug and exits with code 1.
"""

from __future__ import annotations


class FacesearchError(Exception):
    """Base class: a problem with the user's input, data or settings, not a bug."""

    exit_code: int = 1
    http_status: int = 500
    code: str = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidValueError(FacesearchError):
    """A parameter or setting has a value facesearch cannot use."""

    exit_code = 2
    http_status = 422
    code = "invalid_value"


class ImageError(FacesearchError):
    """An input image is missing, unreadable, undecodable, truncated or too large."""

    exit_code = 3
    http_status = 400
    code = "bad_image"


class UnsupportedFormatError(ImageError):
    """An image in a format facesearch does not read (HEIC, AVIF, JPEG 2000, JPEG XL): skipped by ingest."""

    http_status = 415
    code = "unsupported_format"

    def __init__(self, message: str, image_format: str) -> None:
        super().__init__(message)
        self.image_format = image_format


class TooLargeError(ImageError):
    """An upload is over a size limit (bytes, pixels or files per request)."""

    http_status = 413
    code = "too_large"


class NoFaceError(FacesearchError):
    """An image that must show a face shows none that the detector finds."""

    exit_code = 4
    http_status = 422
    code = "no_face"


class TooManyFacesError(FacesearchError):
    """An image that must show exactly one face (an enrolment example) shows more than one."""

    exit_code = 4
    http_status = 422
    code = "too_many_faces"


class NotFoundError(FacesearchError):
    """A collection, image or face that was named does not exist."""

    exit_code = 5
    http_status = 404
    code = "not_found"


class ConflictError(FacesearchError):
    """The thing to create already exists."""

    exit_code = 6
    http_status = 409
    code = "conflict"


class DataFolderError(FacesearchError):
    """The data folder is missing, not initialised, or its files cannot be used."""

    exit_code = 8
    http_status = 503
    code = "data_folder"


class CatalogUnavailableError(DataFolderError):
    """The catalog's database server cannot be reached: a wrong URL, a server that is down or went away."""

    code = "catalog_unavailable"


class VectorStoreUnavailableError(DataFolderError):
    """The vector server (``FACESEARCH_VECTOR_STORE``, Milvus) cannot be reached or failed: a wrong URL, a server
    that is down or went away. The catalog keeps every template, so nothing is lost: the index is rebuilt from it."""

    code = "vector_store_unavailable"


class ClusterUnavailableError(FacesearchError):
    """The Ray cluster that ingest was told to analyse on cannot be reached: a wrong address, a cluster that is down
    or lost every node."""

    exit_code = 12
    http_status = 503
    code = "cluster_unavailable"


class RefusedError(FacesearchError):
    """The request is well formed but not allowed: a search without a purpose, a key without the role."""

    exit_code = 9
    http_status = 403
    code = "refused"


class UnauthorizedError(FacesearchError):
    """No credentials, or credentials that are wrong, revoked or not allowed to do this."""

    exit_code = 11
    http_status = 401
    code = "unauthorized"


class ForbiddenError(FacesearchError):
    """A valid API key whose role does not allow this call."""

    exit_code = 11
    http_status = 403
    code = "forbidden_role"


class CollectionScopeError(ForbiddenError):
    """A key used on a collection it is not issued for."""

    code = "forbidden_collection"


class RateLimitedError(FacesearchError):
    """Too many searches with one key in the last minute."""

    exit_code = 9
    http_status = 429
    code = "rate_limited"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StoppedError(FacesearchError):
    """A signal (SIGTERM, SIGINT) stopped a long run between two steps; what was committed stays. The exit code is
    128 + the signal's number, as a shell reports a process the signal killed (143 for SIGTERM, 130 for SIGINT)."""

    exit_code = 143
    http_status = 503
    code = "stopped"

    def __init__(self, message: str, signal_number: int) -> None:
        super().__init__(message)
        self.exit_code = 128 + signal_number


# Exit code 7 is the CLI's "ingest finished, but some files failed" (see cli/main.py); it is not an error.
INGEST_PARTIAL_EXIT_CODE = 7
