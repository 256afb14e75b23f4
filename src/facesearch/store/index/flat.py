"""Exact search on faiss: every query is compared with every template. The reference the approximate
backend is held against, and the default up to a million faces per collection."""

from __future__ import annotations

import faiss
import numpy as np

from facesearch.store.index.base import Ids
from facesearch.store.index.faiss_base import FaissIndex, read_faiss

BACKEND = "faiss-flat"


class FlatIndex(FaissIndex[faiss.IndexIDMap2]):
    """``IndexIDMap2(IndexFlatL2)``: ``remove`` shifts the remaining vectors down, so removed bytes are gone."""

    backend = BACKEND

    def __init__(self, dimension: int, index: faiss.IndexIDMap2 | None = None) -> None:
        super().__init__(dimension, index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatL2(dimension)))

    def ids(self) -> Ids:
        return faiss.vector_to_array(self._index.id_map).astype(np.int64)

    @classmethod
    def deserialize(cls, payload: bytes, dimension: int) -> FlatIndex:
        return cls(dimension, read_faiss(payload, faiss.IndexIDMap2, dimension, BACKEND))
