"""Plain-data functions in the spirit of face_recognition: arrays and small records in, the same out.

Each takes a path or an RGB array, uses the process's shared models (loaded on first use) and the
default settings unless given others.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import numpy.typing as npt

from facesearch.core.errors import ImageError
from facesearch.core.records import AnalysedFace, DetectedFace, Embedding, LoadedImage, RGBImage
from facesearch.core.settings import Settings
from facesearch.vision.distance import face_distance, is_match
from facesearch.vision.imaging import check_reducible, fit_pixels, load_image
from facesearch.vision.models.registry import ModelSet, configured_models
from facesearch.vision.pipeline import AnalysisOptions, analyse_image
from facesearch.vision.pipeline import detect_faces as _detect

ImageInput = str | Path | RGBImage

__all__ = ["detect_faces", "embed_faces", "face_distance", "load_image_file", "verify_faces"]


def load_image_file(path: str | Path, settings: Settings | None = None) -> RGBImage:
    """The upright RGB pixels (H x W x 3, uint8) of an image file, at full resolution."""
    settings = settings or Settings()
    return load_image(Path(path), max_bytes=settings.max_file_bytes, max_pixels=settings.max_image_pixels).pixels


def detect_faces(image: ImageInput, settings: Settings | None = None) -> list[DetectedFace]:
    """Every face in ``image``: box, detection score and five landmarks, in full-resolution pixels.

    HOG (the default detector) is fast on CPUs and finds frontal faces from about 40 px across.
    """
    settings = settings or Settings()
    return _detect(_loaded(image, settings), _models(settings), AnalysisOptions.from_settings(settings))


def embed_faces(image: ImageInput, settings: Settings | None = None) -> list[AnalysedFace]:
    """Every face in ``image`` with its template (``.embedding``; 256-d with the default recipe, 128-d with dlib's)."""
    settings = settings or Settings()
    return analyse_image(_loaded(image, settings), _models(settings), AnalysisOptions.from_settings(settings))


def verify_faces(a: Embedding | npt.ArrayLike, b: Embedding | npt.ArrayLike, threshold: float | None = None) -> bool:
    """Whether two templates belong to the same person at ``threshold`` (default: the measured 0.6)."""
    limit = Settings().match_threshold if threshold is None else threshold
    return is_match(float(face_distance(np.asarray(a), np.asarray(b))[0]), limit)


def _models(settings: Settings) -> ModelSet:
    return configured_models(settings.embedder_choice())


def _loaded(image: ImageInput, settings: Settings) -> LoadedImage:
    if isinstance(image, str | Path):
        return load_image(
            Path(image),
            max_bytes=settings.max_file_bytes,
            max_pixels=settings.max_image_pixels,
            max_side=settings.detect_max_side,
        )
    pixels = np.ascontiguousarray(image, dtype=np.uint8)
    if pixels.ndim == 2:
        pixels = np.ascontiguousarray(np.stack([pixels] * 3, axis=-1))
    if pixels.ndim != 3 or pixels.shape[2] != 3 or not pixels.size:
        raise ImageError(f"an array of shape {pixels.shape} is not an image; pass H x W x 3 RGB or H x W grey")
    height, width = pixels.shape[:2]
    if height * width > settings.max_image_pixels:
        raise ImageError(
            f"a {width}x{height} array is {height * width:,} pixels, over the limit of "
            f"{settings.max_image_pixels:,}; downscale it or raise max_image_pixels"
        )
    check_reducible("the array", width, height, settings.detect_max_side)
    content_id = hashlib.sha256(pixels.tobytes()).hexdigest()
    fitted = fit_pixels(pixels, settings.detect_max_side)
    return LoadedImage(
        pixels=fitted,
        content_id=content_id,
        width=width,
        height=height,
        format="array",
        byte_size=pixels.nbytes,
        scale=width / fitted.shape[1],
    )
