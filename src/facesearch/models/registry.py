"""Lazy, once-per-process loading of the models a pipeline uses."""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import cache
from typing import Any, TypeVar

from facesearch.models.base import FaceDetector, FaceEmbedder, LandmarkModel

_Model = TypeVar("_Model")


class ModelSet:
    """The detector, landmark model and embedder, each created on first use under a lock."""

    def __init__(self) -> None:
        self._loaded: dict[str, Any] = {}
        self._lock = threading.Lock()

    @property
    def detector(self) -> FaceDetector:
        from facesearch.models.dlib_models import DlibHogDetector

        return self._get("detector", DlibHogDetector)

    @property
    def landmarks(self) -> LandmarkModel:
        from facesearch.models.dlib_models import DlibFivePointLandmarks

        return self._get("landmarks", DlibFivePointLandmarks)

    @property
    def embedder(self) -> FaceEmbedder:
        from facesearch.models.dlib_models import DlibResNetEmbedder

        return self._get("embedder", DlibResNetEmbedder)

    def _get(self, role: str, factory: Callable[[], _Model]) -> _Model:
        with self._lock:
            if role not in self._loaded:
                self._loaded[role] = factory()
            model: _Model = self._loaded[role]
            return model


@cache
def shared_models() -> ModelSet:
    """The process's one model set (models inside it still load only when first used)."""
    return ModelSet()
