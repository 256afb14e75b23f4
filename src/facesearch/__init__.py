"""facesearch: a self-hosted face search engine with accountability by design.

Library use::

    import facesearch
    faces = facesearch.embed_faces("photo.jpg")
    facesearch.verify_faces(faces[0].embedding, other.embedding)

    with facesearch.Engine.open(facesearch.Settings.from_env()) as engine:
        engine.search(Path("probe.jpg"), facesearch.Actor("alice"), "case 2026-17")

The names below are imported on first use (PEP 562), so that a process importing one module (an ingest
worker imports ``facesearch.ingest``) does not load the engine, the database layer and the web server: that
was 1 s of each worker's start.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from facesearch.api import detect_faces, embed_faces, face_distance, load_image_file, verify_faces
    from facesearch.audit import Actor
    from facesearch.engine import Engine
    from facesearch.errors import FacesearchError
    from facesearch.governance import BiometricCondition, CollectionSpec, LawfulBasis
    from facesearch.records import AnalysedFace, Box, DetectedFace
    from facesearch.settings import Settings

__version__ = "0.1.0"

_HOMES = {
    "Actor": "facesearch.audit",
    "AnalysedFace": "facesearch.records",
    "BiometricCondition": "facesearch.governance",
    "Box": "facesearch.records",
    "CollectionSpec": "facesearch.governance",
    "DetectedFace": "facesearch.records",
    "Engine": "facesearch.engine",
    "FacesearchError": "facesearch.errors",
    "LawfulBasis": "facesearch.governance",
    "Settings": "facesearch.settings",
    "detect_faces": "facesearch.api",
    "embed_faces": "facesearch.api",
    "face_distance": "facesearch.api",
    "load_image_file": "facesearch.api",
    "verify_faces": "facesearch.api",
}

__all__ = [
    "Actor",
    "AnalysedFace",
    "BiometricCondition",
    "Box",
    "CollectionSpec",
    "DetectedFace",
    "Engine",
    "FacesearchError",
    "LawfulBasis",
    "Settings",
    "detect_faces",
    "embed_faces",
    "face_distance",
    "load_image_file",
    "verify_faces",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'facesearch' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES})
