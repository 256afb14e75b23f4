"""Files derived from installed model weights, kept in the user's cache folder beside a checksum.

A derived file (the ONNX graph of dlib's ResNet, dlib's HOG detector in its own serialisation) is written
atomically with a ``.sha256`` file beside it; a file whose checksum does not match is treated as missing and
rebuilt by its owner, so a torn or altered cache never reaches a model.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "facesearch"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def checksum_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def is_intact(path: Path) -> bool:
    """Whether ``path`` and its checksum file exist and agree."""
    recorded = checksum_path(path)
    if not (path.is_file() and recorded.is_file()):
        return False
    return recorded.read_text(encoding="ascii").strip() == sha256_file(path)


def store_checked(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` and its checksum beside it, each atomically."""
    atomic_write(path, data)
    atomic_write(checksum_path(path), (hashlib.sha256(data).hexdigest() + "\n").encode("ascii"))


def atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        Path(temp).replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            Path(temp).unlink()
        raise
