"""Lazy, once-per-process loading of the models a pipeline uses."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import cache

from facesearch.models.base import FaceDetector, FaceEmbedder, LandmarkModel


@dataclass
class ModelSet:
    """The detector, landmark model and embedder, each created on first use under a lock."""

    _detector: FaceDetector | None = None
    _landmarks: LandmarkModel | None = None
    _embedder: FaceEmbedder | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def detector(self) -> FaceDetector:
        with self._lock:
            if self._detector is None:
                from facesearch.models.dlib_models import DlibHogDetector

                self._detector = DlibHogDetector()
            return self._detector

    @property
    def landmarks(self) -> LandmarkModel:
        with self._lock:
            if self._landmarks is None:
                from facesearch.models.dlib_models import DlibFivePointLandmarks

                self._landmarks = DlibFivePointLandmarks()
            return self._landmarks

    @property
    def embedder(self) -> FaceEmbedder:
        with self._lock:
            if self._embedder is None:
                from facesearch.models.dlib_models import DlibResNetEmbedder

                self._embedder = DlibResNetEmbedder()
            return self._embedder


@cache
def shared_models() -> ModelSet:
    """The process's one model set (models inside it still load only when first used)."""
    return ModelSet()
