"""Aligned face chips (the input of the embedder) and the maths that maps points between image frames."""

from __future__ import annotations

from collections.abc import Sequence

import dlib
import numpy as np

from facesearch.core.records import Box, Point, RGBImage


def face_chip(pixels: RGBImage, box: Box, landmarks: Sequence[Point], size: int, padding: float) -> RGBImage:
    """The face rotated, scaled and cropped so that its five landmarks sit on dlib's mean-face template.

    Uses dlib's own ``get_face_chip`` so that templates are exactly those dlib's published accuracy refers to.
    """
    shape = dlib.full_object_detection(
        dlib.rectangle(box.left, box.top, box.right - 1, box.bottom - 1),
        [dlib.point(round(x), round(y)) for x, y in landmarks],
    )
    chip: RGBImage = np.asarray(dlib.get_face_chip(pixels, shape, size=size, padding=padding), dtype=np.uint8)
    return chip


def rotate_quarters(pixels: RGBImage, quarters: int) -> RGBImage:
    """``pixels`` turned ``quarters`` x 90 degrees counter-clockwise."""
    return np.ascontiguousarray(np.rot90(pixels, quarters % 4))


def unrotate_point(point: Point, quarters: int, width: int, height: int) -> Point:
    """Where ``point`` of an image turned ``quarters`` x 90 degrees counter-clockwise lies in the original
    ``width`` x ``height`` image (continuous pixel-edge coordinates)."""
    x, y = point
    match quarters % 4:
        case 0:
            return (x, y)
        case 1:
            return (width - y, x)
        case 2:
            return (width - x, height - y)
        case _:
            return (y, height - x)


def unrotate_box(box: Box, quarters: int, width: int, height: int) -> Box:
    corners = [
        unrotate_point((box.left, box.top), quarters, width, height),
        unrotate_point((box.right, box.bottom), quarters, width, height),
    ]
    xs = [c[0] for c in corners]
    ys = [c[1] for c in corners]
    return Box(round(min(xs)), round(min(ys)), round(max(xs)), round(max(ys)))


def scale_box(box: Box, factor: float, offset: tuple[float, float] = (0.0, 0.0)) -> Box:
    """``box`` moved by ``-offset`` then multiplied by ``factor``."""
    dx, dy = offset
    return Box(
        round((box.left - dx) * factor),
        round((box.top - dy) * factor),
        round((box.right - dx) * factor),
        round((box.bottom - dy) * factor),
    )


def clip_box(box: Box, width: int, height: int) -> Box:
    return Box(max(0, box.left), max(0, box.top), min(width, box.right), min(height, box.bottom))
