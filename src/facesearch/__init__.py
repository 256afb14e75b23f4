"""facesearch: a self-hosted face search engine with accountability by design.

Library use::

    import facesearch
    faces = facesearch.embed_faces("photo.jpg")
    facesearch.verify_faces(faces[0].embedding, other.embedding)

    with facesearch.Engine.open(facesearch.Settings.from_env()) as engine:
        engine.search(Path("probe.jpg"), facesearch.Actor("alice"), "case 2026-17")

The names below are imported on first use (PEP 562), so that a process importing one module (an ingest
worker imports ``facesearch.engine.ingest``) does not load the engine, the database layer and the web server: that
was 1 s of each worker's start.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from facesearch.core.errors import FacesearchError
    from facesearch.core.records import AnalysedFace, Box, DetectedFace
    from facesearch.core.settings import Settings
    from facesearch.engine.engine import Engine
    from facesearch.safeguards.audit import Actor
    from facesearch.safeguards.governance import BiometricCondition, CollectionSpec, LawfulBasis
    from facesearch.vision.api import detect_faces, embed_faces, face_distance, load_image_file, verify_faces

__version__ = "0.1.0"

_HOMES = {
    "Actor": "facesearch.safeguards.audit",
    "AnalysedFace": "facesearch.core.records",
    "BiometricCondition": "facesearch.safeguards.governance",
    "Box": "facesearch.core.records",
    "CollectionSpec": "facesearch.safeguards.governance",
    "DetectedFace": "facesearch.core.records",
    "Engine": "facesearch.engine.engine",
    "FacesearchError": "facesearch.core.errors",
    "LawfulBasis": "facesearch.safeguards.governance",
    "Settings": "facesearch.core.settings",
    "detect_faces": "facesearch.vision.api",
    "embed_faces": "facesearch.vision.api",
    "face_distance": "facesearch.vision.api",
    "load_image_file": "facesearch.vision.api",
    "verify_faces": "facesearch.vision.api",
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
