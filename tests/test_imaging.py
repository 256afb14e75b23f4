"""Image decoding: every accepted format, orientation, modes, limits and broken files."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facesearch.core.errors import ImageError
from facesearch.vision.imaging import decode_image, load_image, read_image_file

LIMITS = {"max_pixels": 50_000_000}


def encoded(image: Image.Image, format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def gradient(width: int = 64, height: int = 48) -> Image.Image:
    x = np.linspace(0, 255, width, dtype=np.uint8)
    y = np.linspace(0, 255, height, dtype=np.uint8)
    pixels = np.stack(
        [np.tile(x, (height, 1)), np.tile(y[:, None], (1, width)), np.full((height, width), 128, np.uint8)], -1
    )
    return Image.fromarray(pixels)


@pytest.mark.parametrize(
    ("format", "mode"),
    [
        ("JPEG", "RGB"),
        ("PNG", "RGB"),
        ("WEBP", "RGB"),
        ("GIF", "P"),
        ("BMP", "RGB"),
        ("TIFF", "RGB"),
        ("PPM", "L"),
        ("PPM", "RGB"),
    ],
)
def test_each_accepted_format_decodes_to_rgb(format: str, mode: str) -> None:
    data = encoded(gradient().convert(mode), format)
    loaded = decode_image(data, name="x", **LIMITS)
    assert loaded.pixels.shape == (48, 64, 3)
    assert loaded.pixels.dtype == np.uint8
    assert (loaded.width, loaded.height, loaded.scale) == (64, 48, 1.0)
    assert loaded.format == format


def test_content_id_is_sha256_of_the_file_bytes() -> None:
    import hashlib

    data = encoded(gradient(), "PNG")
    assert decode_image(data, name="x", **LIMITS).content_id == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(("orientation", "swapped"), [(1, False), (3, False), (6, True), (8, True)])
def test_exif_orientation_is_applied(orientation: int, swapped: bool) -> None:
    image = gradient(80, 40)
    exif = Image.Exif()
    exif[0x0112] = orientation
    loaded = decode_image(encoded(image, "JPEG", exif=exif), name="x", **LIMITS)
    expected = (40, 80) if swapped else (80, 40)
    assert (loaded.width, loaded.height) == expected
    assert loaded.pixels.shape[:2] == (expected[1], expected[0])


def test_alpha_is_composited_on_white() -> None:
    transparent = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    loaded = decode_image(encoded(transparent, "PNG"), name="x", **LIMITS)
    assert (loaded.pixels == 255).all()


def test_sixteen_bit_grayscale_is_scaled_not_clipped() -> None:
    values = np.array([[0, 32768, 65535]], dtype=np.uint16)
    image = Image.fromarray(values)
    loaded = decode_image(encoded(image, "PNG"), name="x", **LIMITS)
    assert loaded.pixels[0, :, 0].tolist() == [0, 127, 255]


def test_gif_gives_its_first_frame() -> None:
    frames = [Image.new("RGB", (8, 8), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    loaded = decode_image(buffer.getvalue(), name="x", **LIMITS)
    red, _, blue = loaded.pixels[4, 4]
    assert red > 200 and blue < 50


def test_large_jpeg_is_decoded_at_reduced_scale_with_full_size_reported() -> None:
    data = encoded(gradient(4000, 3000), "JPEG")
    loaded = decode_image(data, name="x", max_pixels=50_000_000, max_side=1000)
    assert (loaded.width, loaded.height) == (4000, 3000)
    assert max(loaded.pixels.shape[:2]) <= 1000
    assert loaded.scale == pytest.approx(4000 / loaded.pixels.shape[1])


def test_large_png_is_resized_to_the_detection_size() -> None:
    loaded = decode_image(encoded(gradient(3000, 1000), "PNG"), name="x", max_pixels=50_000_000, max_side=1500)
    assert loaded.pixels.shape[:2] == (500, 1500)
    assert loaded.scale == 2.0


def test_too_many_pixels_is_refused_before_decoding() -> None:
    data = encoded(gradient(400, 300), "PNG")
    with pytest.raises(ImageError, match=r"photo.png: 400x300 is 120,000 pixels, over the limit of 100,000"):
        decode_image(data, name="photo.png", max_pixels=100_000)


@pytest.mark.parametrize(("side", "message"), [(12_000, "over the limit"), (30_000, "too many pixels")])
def test_decompression_bombs_are_refused(side: int, message: str) -> None:
    # A 1-bit PNG of side x side pixels compresses to a few hundred KB at most.
    bomb = encoded(Image.new("1", (side, side)), "PNG")
    assert len(bomb) < 1_000_000
    with pytest.raises(ImageError, match=f"bomb.png: .*{message}"):
        decode_image(bomb, name="bomb.png", max_pixels=90_000_000)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"this is a text file, not a photo", "not an image facesearch can read"),
        (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", "not an image facesearch can read"),
    ],
)
def test_non_images_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(ImageError, match=message):
        decode_image(data, name="x.jpg", **LIMITS)


def test_truncated_jpeg_is_refused_with_the_reason() -> None:
    data = encoded(gradient(640, 480), "JPEG")
    with pytest.raises(ImageError, match=r"half\.jpg: cannot decode image .*truncated"):
        decode_image(data[: len(data) // 2], name="half.jpg", **LIMITS)


def test_file_problems_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=r"missing\.jpg: no such file"):
        read_image_file(tmp_path / "missing.jpg", 1000)
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(ImageError, match=r"empty\.jpg: file is empty"):
        read_image_file(empty, 1000)
    big = tmp_path / "big.jpg"
    big.write_bytes(b"x" * 2000)
    with pytest.raises(ImageError, match=r"big\.jpg: file is 2,000 bytes, over the limit of 1,000"):
        read_image_file(big, 1000)
    with pytest.raises(ImageError, match="is a folder"):
        read_image_file(tmp_path, 1000)


def test_load_image_reads_and_decodes(tmp_path: Path) -> None:
    path = tmp_path / "photo.png"
    gradient().save(path)
    assert load_image(path, max_bytes=10_000_000, **LIMITS).pixels.shape == (48, 64, 3)
