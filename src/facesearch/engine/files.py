"""Finding the image files under the paths a person names."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

IMAGE_SUFFIXES = frozenset(
    {
        ".jpg",
        ".jpeg",
        ".jpe",
        ".png",
        ".webp",
        ".gif",
        ".bmp",
        ".dib",
        ".tif",
        ".tiff",
        ".pgm",
        ".ppm",
        ".pbm",
        ".pnm",
        ".ico",
    }
)


def iter_image_files(paths: Iterable[Path]) -> Iterator[Path]:
    """Files named directly (whatever their suffix: a wrong one gets a clear error later) and, under each
    folder, recursively and in name order, every non-hidden file with an image suffix. Yields lazily, so
    a folder of millions of files is never held in memory."""
    for path in paths:
        if path.is_dir():
            yield from _walk(path)
        else:
            yield path


def count_image_files(paths: Iterable[Path]) -> int:
    return sum(1 for _ in iter_image_files(paths))


def _walk(folder: Path) -> Iterator[Path]:
    try:
        entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        path = Path(entry.path)
        if entry.is_dir(follow_symlinks=False):
            yield from _walk(path)
        elif entry.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            yield path
