"""Aligned face chips (the input of the embedder) and the maths that maps points between image frames."""

from __future__ import annotations

from collections.abc import Sequence

import dlib
import numpy as np
import numpy.typing as npt

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


ARCFACE_TEMPLATE_112: tuple[Point, ...] = (
    (38.2946, 51.6963),
    (73.5318, 51.5014),
    (56.0252, 71.7366),
    (41.5493, 92.3655),
    (70.7299, 92.2041),
)
"""ArcFace's (insightface's) five reference points in a 112x112 chip, in OpenCV's pixel-index coordinates: the eye
on the image's left, the other eye, the nose tip, the mouth corner on the image's left, the other corner (YuNet's
order: the person's right eye first)."""


def arcface_template(size: int) -> npt.NDArray[np.float64]:
    """ArcFace's five points scaled to a ``size`` x ``size`` chip, in continuous pixel-edge coordinates."""
    return np.array(ARCFACE_TEMPLATE_112, dtype=np.float64) * (size / 112) + 0.5


def similarity_transform(source: Sequence[Point], target: Sequence[Point]) -> npt.NDArray[np.float64]:
    """The 2x3 matrix of the rotation, uniform scale and translation (no reflection) that maps ``source`` onto
    ``target`` with the least squared error (Umeyama 1991)."""
    src, dst = np.asarray(source, dtype=np.float64), np.asarray(target, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(f"need two or more matching 2-D points, got {src.shape} and {dst.shape}")
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    src_var = (src_c**2).sum() / len(src)
    if src_var == 0:
        raise ValueError("the source points all coincide")
    u, s, vt = np.linalg.svd(dst_c.T @ src_c / len(src))
    flip = np.diag([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt)) or 1.0])
    rotation = u @ flip @ vt
    scale = float(np.trace(np.diag(s) @ flip)) / src_var
    shift = dst_mean - scale * rotation @ src_mean
    return np.hstack([scale * rotation, shift[:, None]])


def arcface_chip(pixels: RGBImage, points: Sequence[Point], size: int = 160) -> RGBImage:
    """The face whose five ``points`` (pixel-edge coordinates, YuNet's order) are given, turned, scaled and cropped
    so that they sit on ArcFace's template in a ``size`` x ``size`` chip (bilinear; black outside the photo)."""
    from PIL import Image

    forward = np.vstack([similarity_transform(points, arcface_template(size).tolist()), [0.0, 0.0, 1.0]])
    inverse = np.linalg.inv(forward)[:2].ravel()  # PIL maps each chip pixel back into the photo
    chip = Image.fromarray(pixels).transform(
        (size, size), Image.Transform.AFFINE, tuple(inverse.tolist()), Image.Resampling.BILINEAR, fillcolor=(0, 0, 0)
    )
    result: RGBImage = np.asarray(chip, dtype=np.uint8)
    return result
