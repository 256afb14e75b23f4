"""Exact search on faiss: every query is compared with every template. The reference the approximate
backends are held against, and the default up to a few hundred thousand faces per collection."""

from __future__ import annotations

import faiss
import numpy as np
import numpy.typing as npt

from facesearch.index.base import Ids, Vectors
from facesearch.index.files import IndexFileError

BACKEND = "faiss-flat"


class FlatIndex:
    """``IndexIDMap2(IndexFlatL2)``: ``remove`` shifts the remaining vectors down, so removed bytes are gone."""

    backend = BACKEND

    def __init__(self, dimension: int, index: faiss.IndexIDMap2 | None = None) -> None:
        self.dimension = dimension
        self._index = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatL2(dimension))

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
        squared, ids = self._index.search(matrix, k)
        distances = np.sqrt(np.maximum(squared, 0.0)).astype(np.float32)
        distances[ids < 0] = np.inf
        return distances, ids.astype(np.int64)

    def ids(self) -> Ids:
        return faiss.vector_to_array(self._index.id_map).astype(np.int64)

    def serialize(self) -> bytes:
        return bytes(faiss.serialize_index(self._index).tobytes())

    @classmethod
    def deserialize(cls, payload: bytes, dimension: int) -> FlatIndex:
        try:
            raw = faiss.deserialize_index(np.frombuffer(payload, dtype=np.uint8))
        except RuntimeError as exc:
            raise IndexFileError(f"index bytes cannot be read by faiss ({exc})") from None
        if not isinstance(raw, faiss.IndexIDMap2) or raw.d != dimension:
            raise IndexFileError(
                f"index holds a {type(raw).__name__} of {raw.d} dimensions, not {BACKEND} of {dimension}"
            )
        return cls(dimension, raw)


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
