"""HOG where a face was proposed: each YuNet proposal is cut out with a margin, rescaled so that the face is
about GUIDE_FACE_SIDE pixels across, and dlib's HOG detector decides on it there, without doubling the photo.

HOG's boxes and scores keep their meaning (thresholds, landmarks and templates are unchanged), while HOG looks at
a few small crops instead of the whole photo doubled: on the dev set's LFW crops, 5 ms of YuNet and about 5 ms of
HOG against 52 ms. Faces YuNet misses are left to the whole-photo pass, which runs when no proposal is confirmed.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from facesearch.models.base import FaceDetector
from facesearch.models.yunet import non_maximum_suppression
from facesearch.records import Box, RGBImage

PROPOSAL_THRESHOLD = 0.3
"""YuNet score from which a region is shown to HOG. Low on purpose: HOG decides. On 300 LFW crops YuNet
proposes nothing for 7 at 0.5 and 30 at 0.6 (grayscale crops score low)."""
GUIDE_FACE_SIDE = 110
"""Pixels across the proposal is rescaled to: HOG's 80 px window then meets the face in the first pyramid
levels (a HOG box is about four fifths of YuNet's, which includes the forehead)."""
GUIDE_MARGIN = 0.5
"""Context around the proposal, as a share of its longer side on each side."""
SAME_FACE_OVERLAP = 0.5
"""Confirmations from overlapping proposals overlapping by more than this (intersection over union) are one face."""


def detect_guided(
    pixels: RGBImage, proposals: list[tuple[Box, float]], detector: FaceDetector, threshold: float
) -> list[tuple[Box, float]]:
    """HOG's faces in ``pixels`` near the ``proposals``, in ``pixels`` coordinates, best first. A face is boxed
    a little differently than on the whole photo (templates move by 0.035 in the median, as between two
    photos' worth of box jitter); verification accuracy on the dev pairs is in bench/README.md."""
    height, width = pixels.shape[:2]
    found: list[tuple[Box, float]] = []
    for proposal, _ in proposals:
        side = max(proposal.width, proposal.height)
        margin = round(GUIDE_MARGIN * side)
        left, top = max(0, proposal.left - margin), max(0, proposal.top - margin)
        right, bottom = min(width, proposal.right + margin), min(height, proposal.bottom + margin)
        factor = GUIDE_FACE_SIDE / side
        crop = _resized(pixels[top:bottom, left:right], factor)
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


def _resized(crop: RGBImage, factor: float) -> RGBImage:
    height, width = crop.shape[:2]
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    if size == (width, height):
        return np.ascontiguousarray(crop)
    return np.asarray(Image.fromarray(crop).resize(size, Image.Resampling.BILINEAR))


def _one_per_face(found: list[tuple[Box, float]]) -> list[tuple[Box, float]]:
    if len(found) < 2:
        return found
    boxes = np.asarray([(b.left, b.top, b.right, b.bottom) for b, _ in found], dtype=np.float32)
    scores = np.asarray([score for _, score in found], dtype=np.float32)
    return [found[index] for index in non_maximum_suppression(boxes, scores, SAME_FACE_OVERLAP)]
