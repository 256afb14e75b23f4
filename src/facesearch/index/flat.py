"""Exact search on faiss: every query is compared with every template. The reference the approximate
backends are held against, and the default up to a few hundred thousand faces per collection."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import numpy.typing as npt

from facesearch.index.base import Ids, Vectors
from facesearch.index.files import IndexFileError, read_index_file, write_index_file

BACKEND = "faiss-flat"


class FlatIndex:
    """``IndexIDMap2(IndexFlatL2)``: ``remove`` shifts the remaining vectors down, so removed bytes are gone."""

    def __init__(self, dimension: int, index: faiss.IndexIDMap2 | None = None) -> None:
        self.dimension = dimension
        self._index = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatL2(dimension))

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def add(self, ids: Ids, vectors: Vectors) -> None:
        if len(ids) == 0:
            return
        matrix = _as_matrix(vectors, self.dimension)
        if matrix.shape[0] != len(ids):
            raise ValueError(f"{len(ids)} ids for {matrix.shape[0]} vectors")
        self._index.add_with_ids(matrix, np.ascontiguousarray(ids, dtype=np.int64))

    def remove(self, ids: Ids) -> int:
        if len(ids) == 0:
            return 0
        selector = faiss.IDSelectorBatch(np.ascontiguousarray(ids, dtype=np.int64))
        return int(self._index.remove_ids(selector))

    def search(self, queries: Vectors, k: int) -> tuple[npt.NDArray[np.float32], Ids]:
        matrix = _as_matrix(queries, self.dimension)
        if len(self) == 0 or k <= 0:
            return (
                np.full((matrix.shape[0], max(k, 0)), np.inf, dtype=np.float32),
                np.full((matrix.shape[0], max(k, 0)), -1, dtype=np.int64),
            )
        squared, ids = self._index.search(matrix, k)
        distances = np.sqrt(np.maximum(squared, 0.0)).astype(np.float32)
        distances[ids < 0] = np.inf
        return distances, ids.astype(np.int64)

    def ids(self) -> Ids:
        return faiss.vector_to_array(self._index.id_map).astype(np.int64)

    def save(self, path: Path, generation: int) -> None:
        payload = faiss.serialize_index(self._index).tobytes()
        header = {
            "backend": BACKEND,
            "dimension": self.dimension,
            "count": len(self),
            "generation": generation,
            "payload_bytes": len(payload),
        }
        write_index_file(path, header, payload)

    @classmethod
    def load(cls, path: Path) -> tuple[FlatIndex, int]:
        """The index saved at ``path`` and the catalog generation it reflects."""
        stored = read_index_file(path)
        if stored.header.get("backend") != BACKEND:
            raise IndexFileError(f"{path} holds a {stored.header.get('backend')!r} index, not {BACKEND!r}")
        try:
            raw = faiss.deserialize_index(np.frombuffer(stored.payload, dtype=np.uint8))
        except RuntimeError as exc:
            raise IndexFileError(f"{path} cannot be read by faiss ({exc})") from None
        if not isinstance(raw, faiss.IndexIDMap2):
            raise IndexFileError(f"{path} holds a {type(raw).__name__}, not an id-mapped flat index")
        return cls(int(stored.header["dimension"]), raw), stored.generation


def _as_matrix(vectors: Vectors, dimension: int) -> npt.NDArray[np.float32]:
    matrix = np.ascontiguousarray(np.atleast_2d(vectors), dtype=np.float32)
    if matrix.shape[1] != dimension:
        raise ValueError(f"vectors have {matrix.shape[1]} dimensions, the index {dimension}")
    return matrix
