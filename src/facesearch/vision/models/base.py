"""What each kind of face model must offer. A new detector or embedder is a new module that fits these."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

from facesearch.core.records import Box, Point, RGBImage


class FaceDetector(Protocol):
    name: str

    def detect(self, pixels: RGBImage, upsample: int, threshold: float) -> list[tuple[Box, float]]:
        """Boxes (in ``pixels`` coordinates) and scores of the faces in ``pixels``, best first."""
        ...


class FaceProposer(Protocol):
    name: str

    def propose(self, pixels: RGBImage, threshold: float, min_face_side: int) -> list[tuple[Box, float]]:
        """Regions (in ``pixels`` coordinates) likely to hold a face of ``min_face_side`` pixels or more, scoring
        at least ``threshold``, best first."""
        ...

    def locate(
        self, pixels: RGBImage, threshold: float, min_face_side: int
    ) -> list[tuple[Box, float, tuple[Point, ...]]]:
        """What ``propose`` finds, each face with its five points (the person's right eye first, then the left
        eye, the nose tip, the right and left mouth corners)."""
        ...


class LandmarkModel(Protocol):
    name: str

    def landmarks(self, pixels: RGBImage, box: Box) -> tuple[Point, ...]:
        """The five alignment points of the face in ``box``."""
        ...


class FaceEmbedder(Protocol):
    name: str
    dimension: int
    chip_size: int
    chip_padding: float

    def embed(self, chips: Sequence[RGBImage]) -> npt.NDArray[np.float32]:
        """Templates (n x dimension, float32) of aligned face chips of ``chip_size`` pixels."""
        ...
