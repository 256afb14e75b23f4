"""A face's template: dlib's ResNet descriptor averaged over a few views of the aligned face.

One view is dlib's template as published, from dlib's chip. Four views are that chip, its mirror image, the
chip shrunk by 6 % inside a border of its own edge pixels, and that mirrored. Each view's descriptor carries
noise of its own (a face is not quite symmetric, its crop not quite centred), so their mean lies closer to
the person's other faces. On the dev set's LFW identities, grouping recall at precision 0.981 rises from
0.861 (one view) to 0.908 (four; 0.894 with the mirror alone), and cross-validated verification accuracy on
the 2,022 LFW pairs from 98.5 % to 98.8 % (``bench/README.md``, "Templates from four views"). Four views
cost four descriptors per face, in one batch.

The views are part of a template's recipe (``recipes.py``), recorded with every template, so templates made one
way are never compared with templates made another.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from PIL import Image

from facesearch.core.records import Box, Point, RGBImage
from facesearch.core.settings import TEMPLATE_VIEWS
from facesearch.vision.alignment import face_chip
from facesearch.vision.models.base import FaceEmbedder

SHRINK = 0.94
"""Scale of the face in the four-view template's shrunk chips. Grouping recall at precision 0.98 on the dev
set's LFW identities (``bench/template_views.py``): 0.912 with chips shrunk this way; 0.888 shrunk to 0.88;
0.896 with a wider chip cut from the photo by dlib (padding 0.30) instead; 0.883 with blurred chips instead."""
VIEW_SCALE = {1: 1.0, 4: 1.033}
"""Averaging shrinks every distance a little, different people's too, so the four-view mean is scaled back to
dlib's one-view scale: by the factor that gives the match threshold (0.6) the false-match rate it was chosen
for. Over the 5.5 million different-person pairs among the dev set's LFW faces (3,315 faces of 903 people),
the distances at false-match rates of 1e-2, 1e-3 and 1e-4 were 1.031, 1.033 and 1.034 times smaller with
four views than with one. What averaging gains then shows as faces of one person lying closer together."""


def view_chips(
    pixels: RGBImage, box: Box, landmarks: Sequence[Point], embedder: FaceEmbedder, views: int
) -> list[RGBImage]:
    """The ``views`` chips of one face; the first is always dlib's own chip."""
    if views not in TEMPLATE_VIEWS:
        raise ValueError(f"template views must be one of {TEMPLATE_VIEWS}, got {views}")
    chip = face_chip(pixels, box, landmarks, embedder.chip_size, embedder.chip_padding)
    if views == 1:
        return [chip]
    return [view for upright in (chip, shrunk(chip, SHRINK)) for view in (upright, mirrored(upright))]


def mirrored(chip: RGBImage) -> RGBImage:
    """``chip`` flipped left to right (contiguous, as the embedder wants it)."""
    return np.ascontiguousarray(chip[:, ::-1])


def shrunk(chip: RGBImage, scale: float) -> RGBImage:
    """``chip`` with its content scaled by ``scale`` (< 1) about the centre, the border filled with its edge."""
    side = chip.shape[0]
    border = round((side / scale - side) / 2)
    padded = np.pad(chip, ((border, border), (border, border), (0, 0)), mode="edge")
    resized = Image.fromarray(padded).resize((side, side), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.uint8)


def face_templates(embedder: FaceEmbedder, chips_by_face: Sequence[Sequence[RGBImage]]) -> npt.NDArray[np.float32]:
    """One template per face: the mean descriptor of its views, all faces' views embedded in one batch."""
    if not chips_by_face:
        return np.zeros((0, embedder.dimension), dtype=np.float32)
    counts = {len(chips) for chips in chips_by_face}
    if len(counts) != 1:
        raise ValueError(f"every face needs the same number of views, got {sorted(counts)}")
    views = counts.pop()
    descriptors = embedder.embed([chip for chips in chips_by_face for chip in chips])
    means = descriptors.reshape(len(chips_by_face), views, -1).mean(axis=1, dtype=np.float32)
    scaled: npt.NDArray[np.float32] = means * np.float32(VIEW_SCALE[views]) if views > 1 else means
    return scaled
