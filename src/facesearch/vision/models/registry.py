"""Lazy, once-per-process loading of the models a pipeline uses.

The embedder is dlib's ResNet either way; ``embedder`` says how it runs: ``onnx`` (ONNX Runtime, the
graph built from dlib's own weights and cached; about 6-14x faster here), ``dlib`` (dlib's own code), or
``auto`` (ONNX, falling back to dlib with a warning when ONNX Runtime or the conversion fails). Both give
the same templates (bench/embed_speed.py reports the largest difference), hence the same model name.

Threads: ONNX Runtime sessions (the embedder, YuNet) and dlib's shape predictor may be called from several
threads at once, and are shared. dlib's HOG detector keeps each image's feature pyramid in the object and
dlib's ResNet its activations, so a model that says ``thread_safe = False`` is made once per thread. All of
them release the GIL while they compute, so threads analyse images side by side.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from facesearch.core.errors import DataFolderError
from facesearch.core.settings import EmbedderChoice
from facesearch.vision.models.base import FaceDetector, FaceEmbedder, FaceProposer, LandmarkModel

if TYPE_CHECKING:
    from facesearch.vision.models.onnx_facenet import FaceNetEmbedder

_Model = TypeVar("_Model")
log = logging.getLogger(__name__)


class ModelSet:
    """The detector, landmark model and embedder, each created on first use under a lock (and once per thread,
    the first thread's aside, for models that are not thread-safe)."""

    def __init__(self) -> None:
        self._loaded: dict[str, Any] = {}
        self._owners: dict[str, int] = {}  # role -> the thread that created the shared model
        self._own = threading.local()  # .models: (role, version) -> this thread's copy
        self._version = 0  # bumped when the embedder is dropped, so that threads' copies of it go too
        self._lock = threading.Lock()
        self._choice = EmbedderChoice()

    def configure(self, choice: EmbedderChoice) -> None:
        """How the embedder runs; an embedder already loaded another way is dropped."""
        with self._lock:
            if choice != self._choice:
                self._choice = choice
                self._loaded.pop("embedder", None)
                self._loaded.pop("facenet", None)
                self._loaded.pop("facenet-int8", None)
                self._version += 1

    @property
    def detector(self) -> FaceDetector:
        from facesearch.vision.models.dlib_models import DlibHogDetector

        return self._get("detector", lambda: DlibHogDetector(self._choice.cache_dir))

    @property
    def proposer(self) -> FaceProposer | None:
        """YuNet, or None (with one warning) where it cannot run: detection then scans whole photos with HOG."""
        return self._get("proposer", lambda: _make_proposer(self._choice.cache_dir))

    @property
    def landmarks(self) -> LandmarkModel:
        from facesearch.vision.models.dlib_models import DlibFivePointLandmarks

        return self._get("landmarks", DlibFivePointLandmarks)

    @property
    def embedder(self) -> FaceEmbedder:
        return self._get("embedder", self._make_embedder)

    def facenet(self, int8: bool) -> FaceNetEmbedder:
        """FaceNet on ONNX Runtime, in 32-bit floats or 8-bit integers (the fused recipes' second embedder,
        ``vision/recipes.py``)."""
        return self._get("facenet-int8" if int8 else "facenet", lambda: self._make_facenet(int8))

    def _make_facenet(self, int8: bool) -> FaceNetEmbedder:
        from facesearch.vision.models.facenet_h5 import FaceNetUnavailableError
        from facesearch.vision.models.facenet_int8 import ensure_int8_model
        from facesearch.vision.models.onnx_facenet import FaceNetEmbedder

        cache_dir = self._choice.cache_dir
        try:
            graph = ensure_int8_model(cache_dir=cache_dir) if int8 else None
            return FaceNetEmbedder(cache_dir=cache_dir, threads=self._choice.threads or 0, graph=graph)
        except ImportError as problem:
            raise DataFolderError(
                f"FaceNet cannot be quantised ({problem}); choose a dlib template recipe (FACESEARCH_TEMPLATE_RECIPE)"
            ) from None
        except FaceNetUnavailableError as problem:
            raise DataFolderError(
                f"FaceNet cannot run ({problem}); choose a dlib template recipe (FACESEARCH_TEMPLATE_RECIPE)"
            ) from None

    def _make_embedder(self) -> FaceEmbedder:
        from facesearch.vision.models.dlib_models import DlibResNetEmbedder
        from facesearch.vision.models.onnx_resnet import FastEmbedderUnavailableError, load_fast_embedder

        choice = self._choice
        if choice.runtime == "dlib":
            return DlibResNetEmbedder()
        try:
            return load_fast_embedder(cache_dir=choice.cache_dir, threads=choice.threads)
        except FastEmbedderUnavailableError as problem:
            if choice.runtime == "onnx":
                raise DataFolderError(
                    f"the ONNX embedder cannot run ({problem}); set FACESEARCH_EMBEDDER=dlib or auto"
                ) from None
            log.warning("ONNX embedder unavailable (%s); using dlib's, about 10x slower", problem)
            return DlibResNetEmbedder()

    def _get(self, role: str, factory: Callable[[], _Model]) -> _Model:
        me = threading.get_ident()
        with self._lock:
            if role not in self._loaded:
                self._loaded[role] = factory()
                self._owners[role] = me
            model: _Model = self._loaded[role]
            if getattr(model, "thread_safe", True) or self._owners[role] == me:
                return model
            copies: dict[tuple[str, int], Any] = self._own.__dict__.setdefault("models", {})
            key = (role, self._version)
            if key not in copies:
                copies[key] = factory()
            own: _Model = copies[key]
            return own


def _make_proposer(cache_dir: Path | None) -> FaceProposer | None:
    from facesearch.vision.models.yunet import ProposerUnavailableError, YuNetProposer

    try:
        return YuNetProposer(cache_dir=cache_dir)
    except ProposerUnavailableError as problem:
        log.warning("face proposals unavailable (%s); detection scans whole photos, several times slower", problem)
        return None


def build_model_files(choice: EmbedderChoice, facenet: bool, int8: bool) -> None:
    """Build the cached graphs a pipeline loads (dlib's ResNet on ONNX Runtime, and FaceNet's when ``facenet``, in 8
    bits when ``int8``) here and now, so that the worker processes started next find them instead of each building
    them at once on its first photo (FaceNet's take about 20 s and a gigabyte of memory). A graph that cannot be
    built raises nothing here: the worker that loads it says why."""
    from facesearch.vision.models import facenet_int8, onnx_facenet, onnx_resnet

    builders: list[Callable[[], object]] = []
    if choice.runtime != "dlib":
        builders.append(lambda: onnx_resnet.ensure_onnx_model(cache_dir=choice.cache_dir))
    if facenet:
        ensure_facenet = facenet_int8.ensure_int8_model if int8 else onnx_facenet.ensure_onnx_model
        builders.append(lambda: ensure_facenet(cache_dir=choice.cache_dir))
    for build in builders:
        try:
            build()
        except Exception as problem:  # any: the worker that loads the model reports it
            log.debug("a model file could not be built ahead of the workers: %s", problem)


@cache
def shared_models() -> ModelSet:
    """The process's one model set (models inside it still load only when first used)."""
    return ModelSet()


def configured_models(choice: EmbedderChoice) -> ModelSet:
    """The process's model set, its embedder running as ``choice`` says."""
    models = shared_models()
    models.configure(choice)
    return models
