"""Reading and decoding image files: checks first, then upright RGB pixels at a size fit for detection."""

from __future__ import annotations

import hashlib
import io
import math
import os
import stat
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from facesearch.core.errors import ImageError, UnsupportedFormatError
from facesearch.core.paths import path_text
from facesearch.core.records import LoadedImage, RGBImage

ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "DIB", "TIFF", "PPM", "ICO")
"""Pillow decoders facesearch lets open a file (JPEG covers camera MPO files, PPM covers PGM and PBM).
Restricting the list keeps decoders that run external programs (EPS) or are rarely audited away from
untrusted uploads."""

UNSUPPORTED_SUFFIXES = {
    ".heic": "HEIC",
    ".heif": "HEIF",
    ".hif": "HEIF",
    ".avif": "AVIF",
    ".jp2": "JPEG 2000",
    ".j2k": "JPEG 2000",
    ".j2c": "JPEG 2000",
    ".jpf": "JPEG 2000",
    ".jpx": "JPEG 2000",
    ".jxl": "JPEG XL",
}
"""Suffixes of image formats facesearch does not read, by format: ingest lists such files as skipped."""
_HEIF_BRANDS = {b"heic": "HEIC", b"heix": "HEIC", b"heim": "HEIC", b"heis": "HEIC", b"mif1": "HEIF", b"msf1": "HEIF"}
_AVIF_BRANDS = (b"avif", b"avis")

_SWAPS_AXES = {5, 6, 7, 8}  # EXIF orientations that turn the image a quarter
_EXIF_ORIENTATION_TAG = 0x0112


def content_id_of(data: bytes) -> str:
    """An image file's identity in a collection: the sha256 of its bytes (the same photo is held once)."""
    return hashlib.sha256(data).hexdigest()


def unsupported_advice(image_format: str) -> str:
    return f"{image_format} images are not read by facesearch; convert them to JPEG or PNG and ingest those"


def read_image_file(path: Path, max_bytes: int) -> bytes:
    """The bytes of ``path``, refusing what cannot be an image facesearch should read. The file is opened
    without blocking and checked to be a regular file before a byte is read: a FIFO or a device named like an
    image never hangs or floods a reader, even if it replaced a regular file after the folder was listed."""
    name = path_text(path)
    try:
        _check_regular(name, path.stat().st_mode)  # a FIFO or device is never opened
        handle = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        broken = path.is_symlink()
        raise ImageError(
            f"{name}: broken symbolic link (its target is missing); fix or remove it"
            if broken
            else f"{name}: no such file; check the path"
        ) from None
    except PermissionError:
        raise ImageError(f"{name}: permission denied; make the file readable by this user") from None
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise ImageError(f"{name}: cannot be read ({reason}); check the disk and the path") from None
    with os.fdopen(handle, "rb") as file:
        try:
            status = os.fstat(handle)
            _check_regular(name, status.st_mode)  # it may have been replaced since
            size = status.st_size
            if size == 0:
                raise ImageError(f"{name}: file is empty; re-copy it from its source")
            if size > max_bytes:
                raise ImageError(
                    f"{name}: file is {size:,} bytes, over the limit of {max_bytes:,}; "
                    "raise max_file_bytes if this photo is genuine"
                )
            data = file.read(max_bytes + 1)
        except OSError as exc:
            raise ImageError(f"{name}: cannot be read ({exc.strerror or exc}); check the disk and the path") from None
    if len(data) > max_bytes:
        raise ImageError(f"{name}: file grew past the limit of {max_bytes:,} bytes while being read; try again")
    return data


def _check_regular(name: str, mode: int) -> None:
    if stat.S_ISDIR(mode):
        raise ImageError(f"{name}: is a folder, not an image; pass image files or use ingest on folders")
    if not stat.S_ISREG(mode):
        raise ImageError(f"{name}: not a regular file (a FIFO, device or socket); pass an image file")


def unsupported_format(data: bytes) -> str | None:
    """The name of the format of ``data`` when it is an image format facesearch knows it does not read."""
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand in _AVIF_BRANDS:
            return "AVIF"
        if brand in _HEIF_BRANDS:
            return _HEIF_BRANDS[brand]
    if data.startswith(b"\x00\x00\x00\x0cjP  \r\n\x87\n") or data.startswith(b"\xff\x4f\xff\x51"):
        return "JPEG 2000"
    if data.startswith(b"\x00\x00\x00\x0cJXL \r\n\x87\n") or data.startswith(b"\xff\x0a"):
        return "JPEG XL"
    return None


def decode_image(data: bytes, *, name: str, max_pixels: int, max_side: int | None = None) -> LoadedImage:
    """Decode ``data`` into upright RGB pixels, at most ``max_side`` on the longest side when given.

    EXIF orientation is applied; grayscale, palette, alpha (composited on white), CMYK and 16-bit
    images become 8-bit RGB; GIF and TIFF give their first frame. Large JPEGs are decoded at 1/2, 1/4
    or 1/8 scale by the JPEG decoder itself, which is several times faster than decoding in full.
    """
    name = path_text(name)
    Image.init()  # registers every decoder named in ACCEPTED_FORMATS (idempotent)
    with warnings.catch_warnings():
        # Pillow's own bomb check uses a process-wide limit; facesearch checks its own setting below.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
        except UnidentifiedImageError:
            known = unsupported_format(data)
            if known:
                raise UnsupportedFormatError(f"{name}: {unsupported_advice(known)}", known) from None
            raise ImageError(
                f"{name}: not an image facesearch can read; use JPEG, PNG, WebP, GIF, BMP, TIFF or PGM/PPM"
            ) from None
        except Image.DecompressionBombError:
            raise ImageError(f"{name}: image has too many pixels to decode safely; downscale it first") from None
        except Exception as exc:  # Pillow raises many types for malformed headers
            raise ImageError(f"{name}: image header is corrupt ({exc}); re-export the image") from None

        stored_width, stored_height = image.size
        if stored_width * stored_height > max_pixels:
            raise ImageError(
                f"{name}: {stored_width}x{stored_height} is {stored_width * stored_height:,} pixels, over the "
                f"limit of {max_pixels:,}; downscale it or raise max_image_pixels"
            )
        check_reducible(name, stored_width, stored_height, max_side)
        orientation = _exif_orientation(image)
        full_width, full_height = (
            (stored_height, stored_width) if orientation in _SWAPS_AXES else (stored_width, stored_height)
        )
        if max_side and image.format in ("JPEG", "MPO") and max(image.size) > max_side:
            factor = max_side / max(image.size)
            image.draft("RGB", (math.ceil(stored_width * factor), math.ceil(stored_height * factor)))
        try:
            image.load()
            upright = ImageOps.exif_transpose(image) if orientation > 1 else image
            rgb = _to_rgb(upright)
        except Exception as exc:
            raise ImageError(
                f"{name}: cannot decode image ({exc}); the file is truncated or corrupt, re-copy it from its source"
            ) from None
    if max_side:
        rgb = _fitted(rgb, max_side)
    pixels: RGBImage = np.asarray(rgb, dtype=np.uint8)
    return LoadedImage(
        pixels=pixels,
        content_id=content_id_of(data),
        width=full_width,
        height=full_height,
        format=image.format or "unknown",
        byte_size=len(data),
        scale=full_width / pixels.shape[1],
    )


def check_reducible(name: str, width: int, height: int, max_side: int | None) -> None:
    """Refuse, before decoding, an image so thin that at ``max_side`` pixels long it would be under one pixel
    wide: it cannot hold a face, and a 1x90,000,000 PNG would cost gigabytes to decode and scan."""
    longer, shorter = max(width, height), min(width, height)
    if max_side and longer > max_side and shorter * max_side < longer:
        raise ImageError(
            f"{name}: {width}x{height} is too thin to hold a face (over {max_side}:1, the limit set by "
            "detect_max_side); crop it to the part that shows a face"
        )


def fit_pixels(pixels: RGBImage, max_side: int) -> RGBImage:
    """``pixels`` at most ``max_side`` on the longest side, resized as decoded images are."""
    if max(pixels.shape[:2]) <= max_side:
        return pixels
    return np.asarray(_fitted(Image.fromarray(pixels), max_side), dtype=np.uint8)


def _fitted(image: Image.Image, max_side: int) -> Image.Image:
    """``image`` resized to at most ``max_side`` on its longest side (bilinear, reducing in steps first)."""
    if max(image.size) <= max_side:
        return image
    factor = max_side / max(image.size)
    size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
    return image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)


def load_image(path: Path, *, max_bytes: int, max_pixels: int, max_side: int | None = None) -> LoadedImage:
    return decode_image(read_image_file(path, max_bytes), name=str(path), max_pixels=max_pixels, max_side=max_side)


def _exif_orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(_EXIF_ORIENTATION_TAG, 1)
    except Exception:  # a broken EXIF block must not make the photo unusable
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        values = np.asarray(image, dtype=np.float64)
        peak = float(values.max()) if values.size else 0.0
        if mode == "F" and peak > 0:
            values = values / peak * 255.0
        elif peak > 255:
            values = values / 257.0  # 16-bit samples
        gray = np.clip(values, 0, 255).astype(np.uint8)
        return Image.fromarray(gray).convert("RGB")
    if mode in ("RGBA", "LA", "PA", "La", "RGBa") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB") if mode != "RGB" else image
