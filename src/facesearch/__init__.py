"""facesearch: a self-hosted face search engine with accountability by design.

Library use::

    import facesearch
    faces = facesearch.embed_faces("photo.jpg")
    facesearch.verify_faces(faces[0].embedding, other.embedding)

    with facesearch.Engine.open(facesearch.Settings.from_env()) as engine:
        engine.search(Path("probe.jpg"), facesearch.Actor("alice"), "case 2026-17")
"""

from facesearch.api import detect_faces, embed_faces, face_distance, load_image_file, verify_faces
from facesearch.audit import Actor
from facesearch.engine import Engine
from facesearch.errors import FacesearchError
from facesearch.governance import BiometricCondition, CollectionSpec, LawfulBasis
from facesearch.records import AnalysedFace, Box, DetectedFace
from facesearch.settings import Settings

__version__ = "0.1.0"

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
