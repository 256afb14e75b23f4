"""Images uploaded through the API, kept (encrypted with their collection's key) so that a match can be
shown with its source. Images ingested from a folder are not copied: they stay where the operator keeps them.

An upload lives exactly as long as its catalog row. The file is written before the row commits and
removed after the row is deleted; ``sweep`` removes any file whose row is gone (an interrupted write or
removal), and runs after every removal and whenever the data folder is opened.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path

from facesearch.core.errors import DataFolderError
from facesearch.safeguards.vault import CollectionCipher
from facesearch.store.private import private_folder, write_private

UPLOAD_SCHEME = "upload:"
UPLOAD_PURPOSE = "uploaded image"
_CONTENT_ID = re.compile(r"^[0-9a-f]{64}$")


def upload_source(name: str) -> str:
    """The source recorded for an uploaded file: where it came from, as its sender named it."""
    return UPLOAD_SCHEME + (Path(name).name or "unnamed")


def is_upload(source: str) -> bool:
    return source.startswith(UPLOAD_SCHEME)


class UploadStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, cipher: CollectionCipher, content_id: str, data: bytes) -> None:
        path = self._path(cipher.collection_id, content_id)
        private_folder(path.parent)
        partial = path.with_suffix(".partial")
        write_private(partial, cipher.seal(data, UPLOAD_PURPOSE))
        partial.replace(path)

    def get(self, cipher: CollectionCipher, content_id: str) -> bytes:
        path = self._path(cipher.collection_id, content_id)
        try:
            sealed = path.read_bytes()
        except FileNotFoundError:
            raise DataFolderError(f"the uploaded image {content_id[:12]} is missing from {path.parent}") from None
        return cipher.open(sealed, UPLOAD_PURPOSE)

    def sweep(self, held: Mapping[int, Iterable[str]]) -> int:
        """Delete every stored upload whose image is no longer held (``held``: content ids per collection
        id); returns how many were deleted."""
        if not self.root.exists():
            return 0
        deleted = 0
        for folder in self.root.iterdir():
            collection_id = int(folder.name) if folder.name.isdigit() else -1
            if collection_id not in held:
                shutil.rmtree(folder, ignore_errors=True)
                continue
            keep = set(held[collection_id])
            for path in folder.iterdir():
                if path.stem not in keep or path.suffix != ".sealed":
                    path.unlink(missing_ok=True)
                    deleted += 1
        return deleted

    def _path(self, collection_id: int, content_id: str) -> Path:
        if not _CONTENT_ID.match(content_id):
            raise ValueError(f"not a content id: {content_id!r}")
        return self.root / str(collection_id) / f"{content_id}.sealed"
