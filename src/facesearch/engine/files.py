"""Finding the image files under the paths a person names, and saying why an entry found there cannot be read.

Every entry is looked at once with ``lstat``/``stat`` and nothing is opened here. Symbolic links to folders are
not followed (a link back up the tree cannot loop the walk); a link to a file is followed, and one that is
broken or loops, a FIFO, a device or a socket is reported as that file's failure, so one odd entry never stops
an ingest. Files of image formats facesearch does not read (HEIC, AVIF, JPEG 2000, JPEG XL) are reported as
skipped, with what to do.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from facesearch.core.paths import path_text
from facesearch.vision.imaging import UNSUPPORTED_SUFFIXES

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


@dataclass(frozen=True)
class FoundFile:
    """An entry to ingest, or one to report: ``problem`` says why it cannot be read (a failure), ``unsupported``
    names its format when facesearch does not read it (skipped)."""

    path: Path
    problem: str | None = None
    unsupported: str | None = None

    @property
    def readable(self) -> bool:
        return self.problem is None and self.unsupported is None


def find_files(paths: Iterable[Path]) -> Iterator[FoundFile]:
    """Files named directly (whatever their suffix: a wrong one gets a clear error later) and, under each
    folder, recursively and in name order, every non-hidden file with an image suffix (or the suffix of a
    format facesearch does not read). Yields lazily, so a folder of millions of files is never held in memory."""
    for path in paths:
        if _is_real_folder(path):
            yield from _walk(path)
        else:
            yield _classify(path)


def iter_image_files(paths: Iterable[Path]) -> Iterator[Path]:
    """The files of ``find_files`` that may be read."""
    return (found.path for found in find_files(paths) if found.readable)


def count_found_files(paths: Iterable[Path]) -> int:
    return sum(1 for _ in find_files(paths))


def _walk(folder: Path) -> Iterator[FoundFile]:
    try:
        entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        path = Path(entry.path)
        try:
            real_folder = entry.is_dir(follow_symlinks=False)
        except OSError:
            real_folder = False
        if real_folder:
            yield from _walk(path)
            continue
        suffix = path.suffix.lower()
        if suffix in UNSUPPORTED_SUFFIXES:
            yield FoundFile(path, unsupported=UNSUPPORTED_SUFFIXES[suffix])
        elif suffix in IMAGE_SUFFIXES:
            # the common case costs no system call: the listing already says it is a plain file
            found = FoundFile(path) if _plain_file(entry) else _classify(path)
            if found.problem != _LINKED_FOLDER:
                yield found


_LINKED_FOLDER = "a symbolic link to a folder"


def _plain_file(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_file(follow_symlinks=False)
    except OSError:
        return False


def _is_real_folder(path: Path) -> bool:
    try:
        return stat.S_ISDIR(path.stat().st_mode)
    except (OSError, ValueError):
        return False


def _classify(path: Path) -> FoundFile:
    """``path`` as a file to read, or why it is not one, without opening it."""
    name = path_text(path)
    try:
        mode = path.stat().st_mode
    except OSError as error:
        if error.errno == errno.ELOOP:
            return FoundFile(path, f"{name}: symbolic link loop; point the link at a file or remove it")
        if error.errno == errno.ENOENT and path.is_symlink():
            return FoundFile(path, f"{name}: broken symbolic link (its target is missing); fix or remove it")
        if error.errno in (errno.EACCES, errno.EPERM):
            return FoundFile(path, f"{name}: permission denied; make it readable by this user")
        return FoundFile(path, f"{name}: cannot be read ({error.strerror or error}); check the path")
    except ValueError as error:  # e.g. a NUL byte in a name given in code
        return FoundFile(path, f"{name}: not a usable path ({error})")
    if stat.S_ISREG(mode):
        return FoundFile(path)
    if stat.S_ISDIR(mode):
        return FoundFile(path, _LINKED_FOLDER)
    kind = "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device"
    return FoundFile(path, f"{name}: {kind}, not a regular file; facesearch reads only regular files")
