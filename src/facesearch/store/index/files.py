"""The on-disk form of an index: one file, written atomically, that names the catalog generation it reflects.

Layout: ``FACESEARCH-INDEX 1\\n`` + one JSON header line + the backend's own bytes. A single file means a
crash leaves either the old index or the new one, never a mix (temp file, fsync, rename, fsync folder).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facesearch.store.private import private_folder, write_private

MAGIC = b"FACESEARCH-INDEX 1\n"


@dataclass(frozen=True)
class IndexFile:
    header: dict[str, Any]
    payload: bytes

    @property
    def generation(self) -> int:
        return int(self.header.get("generation", -1))


class IndexFileError(Exception):
    """An index file is missing, truncated or not written by facesearch (the engine rebuilds it)."""


def write_index_file(path: Path, header: dict[str, Any], payload: bytes) -> None:
    private_folder(path.parent)
    temp = path.with_name(path.name + ".tmp")
    write_private(temp, MAGIC + json.dumps(header, sort_keys=True).encode() + b"\n" + payload, sync=True)
    temp.replace(path)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def read_index_file(path: Path) -> IndexFile:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise IndexFileError(f"{path} does not exist") from None
    if not data.startswith(MAGIC):
        raise IndexFileError(f"{path} is not a facesearch index file")
    end = data.find(b"\n", len(MAGIC))
    if end < 0:
        raise IndexFileError(f"{path} is truncated")
    try:
        header = json.loads(data[len(MAGIC) : end])
    except json.JSONDecodeError:
        raise IndexFileError(f"{path} has a corrupt header") from None
    payload = data[end + 1 :]
    if len(payload) != header.get("payload_bytes"):
        raise IndexFileError(f"{path} is truncated ({len(payload)} of {header.get('payload_bytes')} bytes)")
    return IndexFile(header=header, payload=payload)
