"""JPEGs for people to look at: a held image with its face boxes drawn, and a face's thumbnail."""

from __future__ import annotations

import io
from collections.abc import Sequence

from PIL import Image, ImageDraw

from facesearch.core.records import Box
from facesearch.vision.imaging import decode_image

DISPLAY_SIDE = 1024
THUMBNAIL_SIDE = 160
BOX_COLOUR = (0, 200, 255)
HIGHLIGHT_COLOUR = (255, 200, 0)


def boxed_image(data: bytes, boxes: Sequence[Box], highlight: int | None, max_pixels: int) -> bytes:
    """The image (at most DISPLAY_SIDE px) with every box drawn; the box at ``highlight`` stands out."""
    loaded = decode_image(data, name="held image", max_pixels=max_pixels, max_side=DISPLAY_SIDE)
    image = Image.fromarray(loaded.pixels)
    scale = max(loaded.width / image.width, loaded.height / image.height)
    pen = ImageDraw.Draw(image)
    width = max(2, round(max(image.size) / 300))
    for number, box in enumerate(boxes):
        colour = HIGHLIGHT_COLOUR if number == highlight else BOX_COLOUR
        corners = [box.left / scale, box.top / scale, (box.right - 1) / scale, (box.bottom - 1) / scale]
        pen.rectangle(corners, outline=colour, width=width * (2 if number == highlight else 1))
    return _jpeg(image)


def face_thumbnail(data: bytes, box: Box, max_pixels: int) -> bytes:
    """The face in ``box`` with a margin of a quarter of its size, at most THUMBNAIL_SIDE px."""
    loaded = decode_image(data, name="held image", max_pixels=max_pixels, max_side=2048)
    image = Image.fromarray(loaded.pixels)
    scale = max(loaded.width / image.width, loaded.height / image.height)
    margin = max(box.width, box.height) / 4
    crop = (
        max(0, round((box.left - margin) / scale)),
        max(0, round((box.top - margin) / scale)),
        min(image.width, round((box.right + margin) / scale)),
        min(image.height, round((box.bottom + margin) / scale)),
    )
    face = image.crop(crop)
    face.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
    return _jpeg(face)


def _jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()
