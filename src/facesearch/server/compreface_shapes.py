"""What the CompreFace-compatible endpoints answer, in CompreFace's shapes: similarities, detection probabilities,
boxes, landmarks, the plugins served and refused, execution times, plugin versions, and errors with CompreFace's
numeric codes (its ``ExceptionCode``: 28 no face, 31 too many faces, 42 subject not found, 43 subject exists)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from facesearch.accountability.subjects import SubjectExistsError, SubjectNotFoundError
from facesearch.core.errors import FacesearchError, InvalidValueError, NoFaceError, RefusedError, TooManyFacesError
from facesearch.core.records import Box, Point
from facesearch.vision.models.registry import ModelSet

SERVED_PLUGINS = frozenset({"landmarks"})
REFUSED_PLUGINS = {
    "calculator": "the calculator plugin (template export) is not served: facesearch templates never leave it",
    "age": "the age plugin is not served: facesearch infers no age, gender or mask from a face",
    "gender": "the gender plugin is not served: facesearch infers no age, gender or mask from a face",
    "mask": "the mask plugin is not served: facesearch infers no age, gender or mask from a face",
}
NO_FACE = 28
TOO_MANY_FACES = 31
SUBJECT_NOT_FOUND = 42
SUBJECT_EXISTS = 43
# CompreFace's codes for invalid requests (its CommonExceptionCode).
VALIDATION_CONSTRAINT_VIOLATION = 26
MISSING_REQUEST_PARAMETER = 33
MISSING_REQUEST_PART = 34
MISSING_PATH_VARIABLE = 35
INCORRECT_ARGUMENT = 36


def similarity(distance: float, threshold: float) -> float:
    """1 for identical templates, 0.5 at the match threshold, 0 at twice it and beyond."""
    return round(max(0.0, 1.0 - distance / (2.0 * threshold)), 5)


def probability(score: float) -> float:
    """The detector's score mapped to 0-1 by a logistic: 0.73 at score 0, its default threshold."""
    return round(1.0 / (1.0 + math.exp(-(2.0 * score + 1.0))), 5)


def score_at(det_prob_threshold: float) -> float:
    """The detector score whose ``probability`` is ``det_prob_threshold`` (the inverse of the logistic)."""
    if det_prob_threshold <= 0.0:
        return -math.inf
    if det_prob_threshold >= 1.0:
        return math.inf
    return (math.log(det_prob_threshold / (1.0 - det_prob_threshold)) - 1.0) / 2.0


def box_json(box: Box, score: float) -> dict[str, Any]:
    return {
        "probability": probability(score),
        "x_max": box.right,
        "y_max": box.bottom,
        "x_min": box.left,
        "y_min": box.top,
    }


def parse_plugins(face_plugins: str) -> frozenset[str]:
    """The plugins asked for: those served; refused by design or unknown ones are errors naming them."""
    wanted = {p.strip().lower() for p in face_plugins.split(",") if p.strip()}
    refused = sorted(wanted & REFUSED_PLUGINS.keys())
    if refused:
        raise RefusedError("; ".join(REFUSED_PLUGINS[name] for name in refused) + " (only 'landmarks' is served)")
    unknown = sorted(wanted - SERVED_PLUGINS)
    if unknown:
        raise InvalidValueError(f"unknown face plugin {', '.join(unknown)}: only 'landmarks' is served")
    return frozenset(wanted)


@dataclass(frozen=True)
class Answer:
    """How faces are written for one request: the plugins asked for, and whether ``status`` was true."""

    plugins: frozenset[str]
    status: bool
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds per stage of the request's analysis (``detector``, ``calculator``)."""

    def face(self, box: Box, score: float, landmarks: tuple[Point, ...]) -> dict[str, Any]:
        """A face's ``box``, ``landmarks`` when asked for; the caller adds ``subjects`` or ``similarity``."""
        face: dict[str, Any] = {"box": box_json(box, score)}
        if "landmarks" in self.plugins:
            face["landmarks"] = [[round(x), round(y)] for x, y in landmarks]
        return face

    def finish(self, face: dict[str, Any]) -> dict[str, Any]:
        """A face with its ``execution_time`` (milliseconds per stage) when ``status`` was asked for."""
        if self.status:
            face["execution_time"] = {stage: round(seconds * 1000.0, 1) for stage, seconds in self.timings.items()}
        return face


def plugins_versions(models: ModelSet, *, recognition: bool = True) -> dict[str, str]:
    """The models behind each stage, by CompreFace's plugin names."""
    versions = {"detector": f"facesearch.{models.detector.name}"}
    if recognition:
        versions["calculator"] = f"facesearch.{models.embedder.name}"
    return versions


def compreface_invalid_code(problem: Mapping[str, Any]) -> int:
    """CompreFace's code for one of a request's validation problems (pydantic's ``type`` and ``loc``): a missing
    query parameter, file or path part; a value of the wrong type; a value outside its bounds."""
    kind, where = str(problem.get("type", "")), tuple(problem.get("loc", ()))
    if kind == "missing":
        return {"query": MISSING_REQUEST_PARAMETER, "path": MISSING_PATH_VARIABLE}.get(
            str(where[0]) if where else "", MISSING_REQUEST_PART
        )
    if kind.endswith(("_parsing", "_type")):
        return INCORRECT_ARGUMENT
    return VALIDATION_CONSTRAINT_VIOLATION


def compreface_answer(error: FacesearchError) -> tuple[int, int, str]:
    """The HTTP status, CompreFace's numeric code and the message of an error on a CompreFace path; errors
    CompreFace has no code for keep facesearch's status and exit code."""
    if isinstance(error, NoFaceError):
        return 400, NO_FACE, f"No face is found in the given image: {error.message}"
    if isinstance(error, TooManyFacesError):
        return 400, TOO_MANY_FACES, error.message
    if isinstance(error, SubjectNotFoundError):
        return 404, SUBJECT_NOT_FOUND, error.message
    if isinstance(error, SubjectExistsError):
        return 400, SUBJECT_EXISTS, error.message
    if isinstance(error, InvalidValueError) and error.http_status == 422:  # CompreFace answers 400, never 422
        return 400, VALIDATION_CONSTRAINT_VIOLATION, error.message
    return error.http_status, error.exit_code, error.message
