"""Approximate search on faiss: an inverted file (IVF) of exact vectors, for collections of millions of faces.

The vectors are clustered into ``nlist`` cells by k-means; a query is compared only with the vectors of
its ``nprobe`` nearest cells. Faces of one person lie close together, so the faces within the match
threshold of a probe are almost always in the probed cells (bench/search_scale.py measures how often).

Why IVF and not HNSW: erasure must delete vectors. faiss's IVF ``remove_ids`` takes the vector out of its
cell's list (the last one moves into its slot), so the bytes are gone from memory and from
``serialize()``; faiss's HNSW cannot remove at all, and graph indexes that can (usearch) keep tombstones
until a compaction. IVF also builds in minutes, not hours, at 10 million faces on two cores.
"""

from __future__ import annotations

import math

import faiss
import numpy as np
import numpy.typing as npt

from facesearch.index.base import Ids, Vectors
from facesearch.index.files import IndexFileError
from facesearch.index.flat import as_matrix, empty_result

BACKEND = "faiss-ivf-flat"
TRAINING_POINTS_PER_CELL = 40
"""k-means sample per cell (faiss asks for at least 39); more costs build time linearly."""
HNSW_QUANTIZER_FROM = 4096
MIN_CELLS = 16
MAX_CELLS = 65_536


def cells_for(count: int) -> int:
    """``nlist`` for a collection of ``count`` faces: about 4 * sqrt(n), the usual faiss rule."""
    return int(min(MAX_CELLS, max(MIN_CELLS, 4 * math.isqrt(max(count, 1)))))


class IvfIndex:
    backend = BACKEND

    def __init__(self, dimension: int, index: faiss.IndexIVF, nprobe: int) -> None:
        self.dimension = dimension
        self._index = index
        self.nprobe = nprobe

    @classmethod
    def trained(cls, training: Vectors, dimension: int, nprobe: int, cells: int | None = None) -> IvfIndex:
        """An empty index whose cells are learnt from ``training`` (a sample of the collection's faces)."""
        matrix = as_matrix(training, dimension)
        if not len(matrix):
            raise ValueError("an IVF index needs training vectors")
        nlist = min(cells or cells_for(len(matrix)), len(matrix))
        rng = np.random.default_rng(0)
        sample_size = min(len(matrix), nlist * TRAINING_POINTS_PER_CELL)
        sample = (
            matrix[rng.choice(len(matrix), size=sample_size, replace=False)] if sample_size < len(matrix) else matrix
        )
        # Many cells: find a vector's cell with a small HNSW graph over the centroids, not by comparing all.
        recipe = f"IVF{nlist}_HNSW32,Flat" if nlist >= HNSW_QUANTIZER_FROM else f"IVF{nlist},Flat"
        index = faiss.index_factory(dimension, recipe, faiss.METRIC_L2)  # returned as its own type
        assert isinstance(index, faiss.IndexIVFFlat)
        index.train(np.ascontiguousarray(sample))
        return cls(dimension, index, nprobe)

    @property
    def cells(self) -> int:
        return int(self._index.nlist)

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
        self._index.nprobe = self.cells if exhaustive else min(self.nprobe, self.cells)
        squared, ids = self._index.search(matrix, k)
        distances = np.sqrt(np.maximum(squared, 0.0)).astype(np.float32)
        distances[ids < 0] = np.inf
        return distances, ids.astype(np.int64)

    def ids(self) -> Ids:
        lists = self._index.invlists
        assert lists is not None
        found = [
            faiss.rev_swig_ptr(lists.get_ids(cell), lists.list_size(cell)).copy()
            for cell in range(self.cells)
            if lists.list_size(cell)
        ]
        return np.concatenate(found).astype(np.int64) if found else np.zeros(0, dtype=np.int64)

    def serialize(self) -> bytes:
        return bytes(faiss.serialize_index(self._index).tobytes())

    @classmethod
    def deserialize(cls, payload: bytes, dimension: int, nprobe: int) -> IvfIndex:
        try:
            raw = faiss.deserialize_index(np.frombuffer(payload, dtype=np.uint8))
        except RuntimeError as exc:
            raise IndexFileError(f"index bytes cannot be read by faiss ({exc})") from None
        if not isinstance(raw, faiss.IndexIVFFlat) or raw.d != dimension:
            raise IndexFileError(
                f"index holds a {type(raw).__name__} of {raw.d} dimensions, not {BACKEND} of {dimension}"
            )
        return cls(dimension, raw, nprobe)
