"""Operations on single images that need models but no data folder: detect, analyse, verify."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from facesearch.core.errors import InvalidValueError, NoFaceError
from facesearch.core.paths import path_text
from facesearch.core.records import AnalysedFace, LoadedImage
from facesearch.core.results import DetectionResult, FaceInfo, Verification
from facesearch.core.settings import Settings
from facesearch.vision.distance import face_distance, is_match
from facesearch.vision.imaging import decode_image, read_image_file
from facesearch.vision.models.registry import ModelSet, configured_models
from facesearch.vision.pipeline import AnalysisOptions, analyse_image, detect_faces

ImageSource = Path | bytes
"""A file, or the bytes of an upload."""


class FaceAnalyser:
    def __init__(self, settings: Settings, models: ModelSet | None = None) -> None:
        self.settings = settings
        self.models = models or configured_models(settings.embedder_choice())
        self._options = AnalysisOptions.from_settings(settings)

    @property
    def options(self) -> AnalysisOptions:
        return self._options

    def load(self, image: ImageSource, name: str | None = None) -> LoadedImage:
        data = read_image_file(image, self.settings.max_file_bytes) if isinstance(image, Path) else image
        return decode_image(
            data,
            name=name or _name(image),
            max_pixels=self.settings.max_image_pixels,
            max_side=self.settings.detect_max_side,
        )

    def analyse(
        self,
        image: ImageSource,
        name: str | None = None,
        *,
        recipe: str | None = None,
        also: Sequence[str] = (),
        timings: dict[str, float] | None = None,
    ) -> tuple[LoadedImage, list[AnalysedFace]]:
        """The image's faces with templates of ``recipe`` (default: the settings' recipe) and of each in ``also``;
        ``timings`` receives the seconds each stage took (``analyse_image``)."""
        loaded = self.load(image, name)
        options = self._options if recipe is None else replace(self._options, recipe=recipe)
        return loaded, analyse_image(loaded, self.models, options, also, timings)

    def detect(self, image: ImageSource, name: str | None = None) -> DetectionResult:
        loaded = self.load(image, name)
        faces = detect_faces(loaded, self.models, self._options)
        return DetectionResult(
            image=name or _name(image),
            width=loaded.width,
            height=loaded.height,
            faces=[FaceInfo(f.box, round(f.score, 4), f.landmarks, f.rotation) for f in faces],
        )

    def analyse_or_fail(
        self,
        image: ImageSource,
        name: str | None = None,
        *,
        recipe: str | None = None,
        also: Sequence[str] = (),
        timings: dict[str, float] | None = None,
    ) -> tuple[LoadedImage, list[AnalysedFace]]:
        """Like ``analyse``, but an image without a face is an error (a probe must show one)."""
        loaded, faces = self.analyse(image, name, recipe=recipe, also=also, timings=timings)
        if not faces:
            raise NoFaceError(
                f"{name or _name(image)}: no face found; use a photo where the face is upright, unobstructed "
                "and at least 40 pixels across"
            )
        return loaded, faces

    def verify(self, a: ImageSource, b: ImageSource, *, threshold: float | None = None) -> Verification:
        """Whether the largest face in ``a`` and the largest in ``b`` are the same person."""
        limit = self.threshold(threshold)
        loaded_a, faces_a = self.analyse_or_fail(a)
        loaded_b, faces_b = self.analyse_or_fail(b)
        face_a = max(faces_a, key=lambda f: f.detection.box.area)
        face_b = max(faces_b, key=lambda f: f.detection.box.area)
        distance = float(face_distance(face_a.embedding, face_b.embedding)[0])
        return Verification(
            distance=round(distance, 4),
            threshold=limit,
            match=is_match(distance, limit),
            faces_in_a=len(faces_a),
            faces_in_b=len(faces_b),
            box_a=face_a.detection.box,
            box_b=face_b.detection.box,
            a_sha256=loaded_a.content_id,
            b_sha256=loaded_b.content_id,
            score_a=round(face_a.detection.score, 4),
            score_b=round(face_b.detection.score, 4),
        )

    def threshold(self, threshold: float | None) -> float:
        value = self.settings.match_threshold if threshold is None else threshold
        if not 0.0 < value < 2.0:
            raise InvalidValueError(f"threshold must be between 0 and 2, got {value}")
        return value


def _name(image: ImageSource) -> str:
    return path_text(image) if isinstance(image, Path) else "the uploaded image"
