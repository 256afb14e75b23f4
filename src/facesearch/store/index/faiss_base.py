"""What the faiss backends share: vectors keyed by face id, Euclidean (not squared) distances, physical
removal, and faiss's own serialization, checked when it is read back."""

from __future__ import annotations

from typing import Generic, TypeVar

import faiss
import numpy as np
import numpy.typing as npt

from facesearch.store.index.base import Ids, Vectors
from facesearch.store.index.files import IndexFileError

FaissT = TypeVar("FaissT", bound=faiss.Index)


class FaissIndex(Generic[FaissT]):
    backend: str

    def __init__(self, dimension: int, index: FaissT) -> None:
        self.dimension = dimension
        self._index = index

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def add(self, ids: Ids, vectors: Vectors) -> None:
        if len(ids) == 0:
            return
        matrix = as_matrix(vectors, self.dimension)
        if matrix.shape[0] != len(ids):
            raise ValueError(f"{len(ids)} ids for {matrix.shape[0]} vectors")
        self._index.add_with_ids(matrix, np.ascontiguousarray(ids, dtype=np.int64))

    def remove(self, ids: Ids) -> int:
        if len(ids) == 0:
            return 0
        selector = faiss.IDSelectorBatch(np.ascontiguousarray(ids, dtype=np.int64))
        return int(self._index.remove_ids(selector))

    def search(self, queries: Vectors, k: int, *, exhaustive: bool = False) -> tuple[npt.NDArray[np.float32], Ids]:
        matrix = as_matrix(queries, self.dimension)
        if len(self) == 0 or k <= 0:
            return empty_result(matrix.shape[0], k)
        squared, ids = self._search(matrix, k, exhaustive)
        distances = np.sqrt(np.maximum(squared, 0.0)).astype(np.float32)
        distances[ids < 0] = np.inf
        return distances, ids.astype(np.int64)

    def serialize(self) -> bytes:
        return bytes(faiss.serialize_index(self._index).tobytes())

    def _search(
        self, matrix: npt.NDArray[np.float32], k: int, exhaustive: bool
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """faiss's squared distances and ids; approximate backends set their breadth here."""
        squared, ids = self._index.search(matrix, k)
        return squared, ids


def read_faiss(payload: bytes, kind: type[FaissT], dimension: int, backend: str) -> FaissT:
    """A faiss index from ``payload``, which must be a ``kind`` of ``dimension`` dimensions."""
    try:
        raw = faiss.deserialize_index(np.frombuffer(payload, dtype=np.uint8))
    except RuntimeError as exc:
        raise IndexFileError(f"index bytes cannot be read by faiss ({exc})") from None
    if not isinstance(raw, kind) or raw.d != dimension:
        raise IndexFileError(f"index holds a {type(raw).__name__} of {raw.d} dimensions, not {backend} of {dimension}")
    return raw


def empty_result(queries: int, k: int) -> tuple[npt.NDArray[np.float32], Ids]:
    """What a search finds in an empty index: rows of id -1 at distance inf."""
    return (
        np.full((queries, max(k, 0)), np.inf, dtype=np.float32),
        np.full((queries, max(k, 0)), -1, dtype=np.int64),
    )


def as_matrix(vectors: Vectors, dimension: int) -> npt.NDArray[np.float32]:
    matrix = np.ascontiguousarray(np.atleast_2d(vectors), dtype=np.float32)
    if matrix.shape[1] != dimension:
        raise ValueError(f"vectors have {matrix.shape[1]} dimensions, the index {dimension}")
    return matrix
