"""HOG where a face was proposed: each YuNet proposal is cut out with a margin, rescaled so that the face is
about GUIDE_FACE_SIDE pixels across, and dlib's HOG detector decides on it there, without doubling the photo.

HOG's boxes and scores keep their meaning (thresholds, landmarks and templates are unchanged), while HOG looks at
a few small crops instead of the whole photo doubled. Faces YuNet misses are left to the whole-photo pass, which
runs when no proposal is confirmed.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from facesearch.core.records import Box, RGBImage
from facesearch.vision.models.base import FaceDetector
from facesearch.vision.models.yunet import non_maximum_suppression

PROPOSAL_THRESHOLD = 0.3
"""YuNet score from which a region is shown to HOG. Low on purpose: HOG decides. On 300 LFW crops YuNet
proposes nothing for 7 at 0.5 and 30 at 0.6 (grayscale crops score low)."""
GUIDE_FACE_SIDE = 111
"""Pixels across the proposal is rescaled to; HOG's pyramid then steps down to its 80 px window, so a larger
side only adds pyramid levels where no face of this size can be found. On all 2,022 dev pairs (with
GUIDE_MARGIN): 111 px 98.52 % at 9 ms of HOG per image, 160 px with a margin of 0.5 98.47 % at 21 ms."""
GUIDE_MARGIN = 0.35
"""Context around the proposal, as a share of its longer side on each side: enough for HOG's window and its
cell border at the level where the face is found (0.25 gave 98.37 %, 0.5 no better than 0.35)."""
PYRAMID_STEP = 6 / 5
"""dlib's HOG pyramid shrinks each level to 5/6 of the one before."""
HOG_CELL = 8
"""Pixels per HOG cell at the scale HOG looks at."""
SAME_FACE_OVERLAP = 0.5
"""Confirmations from overlapping proposals overlapping by more than this (intersection over union) are one face."""


def detect_guided(
    pixels: RGBImage, proposals: list[tuple[Box, float]], detector: FaceDetector, threshold: float
) -> list[tuple[Box, float]]:
    """HOG's faces in ``pixels`` near the ``proposals``, in ``pixels`` coordinates, best first. A face is boxed
    a little differently than on the whole photo (templates move by 0.035 in the median, as between two
    photos' worth of box jitter); verification accuracy on the dev pairs is in bench/README.md."""
    found: list[tuple[Box, float]] = []
    for proposal, _ in proposals:
        side = max(proposal.width, proposal.height)
        margin = round(GUIDE_MARGIN * side)
        factor = pyramid_scale(GUIDE_FACE_SIDE / side)
        # Crops start on a grid of HOG cells (8 px at the crop's scale) fixed to the photo, so that two nearly
        # equal proposals give the same crop and the same box (HOG places boxes cell by cell).
        cell = HOG_CELL / factor
        left, top = (math.floor((edge - margin) / cell) * cell for edge in (proposal.left, proposal.top))
        left, top = round(left), round(top)
        right, bottom = proposal.right + margin, proposal.bottom + margin
        crop = _scaled_region(pixels, left, top, right, bottom, factor)
        # The crop's actual scale, after rounding its size to whole pixels.
        scale_x, scale_y = crop.shape[1] / (right - left), crop.shape[0] / (bottom - top)
        for box, score in detector.detect(crop, 0, threshold):
            mapped = Box(
                left + round(box.left / scale_x),
                top + round(box.top / scale_y),
                left + round(box.right / scale_x),
                top + round(box.bottom / scale_y),
            )
            found.append((mapped, score))
    return _one_per_face(found)


def pyramid_scale(wanted: float) -> float:
    """The power of 6/5 nearest ``wanted`` (HOG's pyramid steps by 5/6): a proposal a few pixels larger or
    smaller then gives the same scale, hence the same box."""
    steps = round(math.log(wanted) / math.log(PYRAMID_STEP))
    return float(PYRAMID_STEP**steps)


def _scaled_region(pixels: RGBImage, left: int, top: int, right: int, bottom: int, factor: float) -> RGBImage:
    """The region scaled by ``factor``, black where it runs past the image: a face filling a tight crop (ID
    photos, avatars) then still has the context HOG's window needs, as the whole-photo pass's black-border
    retry gives it. Boxes found there may reach past the image; they are clipped when reported. The part
    inside the image is scaled first and the border added after, on the smaller array."""
    height, width = pixels.shape[:2]
    inside = pixels[max(0, top) : min(height, bottom), max(0, left) : min(width, right)]
    size = (max(1, round(inside.shape[1] * factor)), max(1, round(inside.shape[0] * factor)))
    if size != (inside.shape[1], inside.shape[0]):
        inside = np.asarray(Image.fromarray(inside).resize(size, Image.Resampling.BILINEAR))
    border = [
        (round(max(0, -top) * factor), round(max(0, bottom - height) * factor)),
        (round(max(0, -left) * factor), round(max(0, right - width) * factor)),
        (0, 0),
    ]
    if not any(any(side) for side in border):
        return np.ascontiguousarray(inside)
    return np.pad(inside, border, mode="constant")


def _one_per_face(found: list[tuple[Box, float]]) -> list[tuple[Box, float]]:
    if len(found) < 2:
        return found
    boxes = np.asarray([(b.left, b.top, b.right, b.bottom) for b, _ in found], dtype=np.float32)
    scores = np.asarray([score for _, score in found], dtype=np.float32)
    return [found[index] for index in non_maximum_suppression(boxes, scores, SAME_FACE_OVERLAP)]
