"""A copy of an image with each face's box, number and landmarks drawn, for people to look at."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageOps

from facesearch.core.errors import ImageError
from facesearch.core.results import FaceInfo

BOX_COLOUR = (0, 200, 255)
LANDMARK_COLOUR = (255, 60, 60)


def draw_faces(source: Path, faces: Sequence[FaceInfo], target: Path) -> None:
    with Image.open(source) as opened:
        image = ImageOps.exif_transpose(opened).convert("RGB")
    pen = ImageDraw.Draw(image)
    width = max(2, round(max(image.size) / 400))
    for number, face in enumerate(faces):
        box = face.box
        pen.rectangle([box.left, box.top, box.right - 1, box.bottom - 1], outline=BOX_COLOUR, width=width)
        pen.text((box.left + width, box.top + width), str(number), fill=BOX_COLOUR)
        for x, y in face.landmarks:
            pen.ellipse([x - width, y - width, x + width, y + width], fill=LANDMARK_COLOUR)
    try:
        image.save(target)
    except (OSError, ValueError) as exc:
        raise ImageError(
            f"{target}: cannot write the drawn copy ({exc}); use a .jpg or .png path in a writable folder"
        ) from None
