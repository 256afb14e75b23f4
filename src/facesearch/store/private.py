"""Files and folders of the data folder, readable by their owner only (0600 and 0700), whatever the umask.

The catalog, its SQLite write-ahead log and shared-memory files (SQLite gives them the database file's mode),
the vector index files and the uploads hold biometric data: nobody else on the machine may read them, even
encrypted. Modes are set explicitly after creation, because a umask can only take permissions away (a umask
of 0277 would otherwise leave the owner unable to write).
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

FILE_MODE = 0o600
FOLDER_MODE = 0o700


def private_folder(path: Path) -> None:
    """Create ``path`` and any missing parents, each made here owner-only; an existing ``path`` is tightened
    when this user owns it."""
    missing = []
    current = path
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    path.mkdir(parents=True, exist_ok=True)
    for created in missing:
        created.chmod(FOLDER_MODE)
    tighten(path, FOLDER_MODE)


def private_file(path: Path) -> None:
    """Create ``path`` empty and owner-only unless it exists; an existing one is tightened when this user owns it."""
    try:
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    except FileExistsError:
        tighten(path, FILE_MODE)
        return
    os.fchmod(handle, FILE_MODE)
    os.close(handle)


def write_private(path: Path, data: bytes, *, sync: bool = False) -> None:
    """Write ``data`` to a new or truncated owner-only file at ``path``."""
    handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, FILE_MODE)
    with os.fdopen(handle, "wb") as out:
        os.fchmod(out.fileno(), FILE_MODE)
        out.write(data)
        out.flush()
        if sync:
            os.fsync(out.fileno())


def tighten(path: Path, mode: int) -> None:
    """Set ``path``'s permissions to ``mode`` if this user owns it and they are wider (a folder made world-
    readable by an older facesearch); anything else is left alone."""
    with contextlib.suppress(OSError):
        status = path.stat()
        if status.st_uid == os.getuid() and stat.S_IMODE(status.st_mode) & ~mode:
            path.chmod(mode)
