"""Plain-data records passed between the pipeline, the engine and its callers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

Embedding = npt.NDArray[np.float32]
"""A face template of some recipe (``vision/recipes.py``), float32."""

RGBImage = npt.NDArray[np.uint8]
"""An upright image as an H x W x 3 uint8 array."""


@dataclass(frozen=True)
class Box:
    """A face box in pixels of the upright, full-resolution image: left/top inclusive, right/bottom exclusive."""

    left: int
    top: int
    right: int
    bottom: int

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def area(self) -> int:
        return max(0, self.width) * max(0, self.height)

    def as_list(self) -> list[int]:
        return [self.left, self.top, self.right, self.bottom]


Point = tuple[float, float]


@dataclass(frozen=True)
class DetectedFace:
    """One face found in an image, before embedding."""

    box: Box
    score: float
    landmarks: tuple[Point, ...]
    """Five points (dlib's order: right eye outer, right eye inner, left eye outer, left eye inner, nose)."""
    rotation: int = 0
    """Degrees counter-clockwise the image had to be turned for the face to be upright (0, 90, 180, 270)."""


@dataclass(frozen=True)
class AnalysedFace:
    """A detected face with its template."""

    detection: DetectedFace
    embedding: Embedding = field(repr=False)
    sharpness: float = 0.0
    """Variance of the Laplacian of the aligned grey chip: low for blurred or upscaled tiny faces."""
    recipe: str = ""
    """The recipe of ``embedding`` (``vision/recipes.py``)."""
    templates: Mapping[str, Embedding] = field(default_factory=dict, repr=False)
    """Templates of other recipes, by recipe name, where the face was embedded for more than one."""

    def template(self, recipe: str) -> Embedding:
        """The face's template of ``recipe``; never one of another recipe."""
        if recipe == self.recipe:
            return self.embedding
        if recipe not in self.templates:
            raise ValueError(f"this face was not embedded with recipe {recipe!r}")
        return self.templates[recipe]


@dataclass(frozen=True)
class LoadedImage:
    """A decoded image ready for detection, with what is known about the file it came from."""

    pixels: RGBImage = field(repr=False)
    """Upright pixels, possibly decoded at reduced scale (see ``scale``)."""
    content_id: str
    """sha256 of the file bytes, hex."""
    width: int
    """Width of the upright image at full resolution."""
    height: int
    format: str
    byte_size: int
    scale: float = 1.0
    """Full-resolution size divided by the size of ``pixels`` (1.0, 2.0, 4.0 or 8.0 for reduced JPEG decodes)."""


@dataclass(frozen=True)
class NewImage:
    """An analysed image ready to be written."""

    content_id: str
    source_path: str
    width: int
    height: int
    format: str
    byte_size: int
    faces: Sequence[AnalysedFace]
    embedder: str
    """The recipe that made the templates (``vision/recipes.py``; stored with each face)."""
    subject_id: int | None = None
    """For an enrolment: the subject this image is an example of (linked in the same transaction)."""
