"""Approximate search on faiss: an inverted file (IVF) of exact vectors, for collections of millions of faces.

The vectors are clustered into ``nlist`` cells by k-means; a query is compared only with the vectors of
its ``nprobe`` nearest cells. On dlib's templates that takes a large share of the cells for high recall
(bench/search_scale.py: 0.96 of a probe's own person's faces at 256 of 4,000 cells at 1M faces).

Why IVF and not HNSW: erasure must delete vectors. faiss's IVF ``remove_ids`` takes the vector out of its
cell's list (the last one moves into its slot), so the bytes are gone from memory and from
``serialize()``; faiss's HNSW cannot remove at all, and graph indexes that can (usearch) keep tombstones
until a compaction. IVF also builds in about 85 s at 1M faces on two cores, where faiss's HNSW took 195 s
for 300k.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt

from facesearch.store.index.base import Ids, Vectors
from facesearch.store.index.faiss_base import FaissIndex, as_matrix, read_faiss

BACKEND = "faiss-ivf-flat"
TRAINING_POINTS_PER_CELL = 40
"""k-means sample per cell (faiss asks for at least 39); more costs build time linearly."""
HNSW_QUANTIZER_FROM = 4096
EXHAUSTIVE_QUERY_CHUNK = 64
QUANTIZER_MIN_BREADTH = 16
"""faiss's default efSearch. The graph's breadth is raised to nprobe at each search: at faiss's default it
returned only 565 of the 1,024 cells asked for at 10M faces, and 63 % of the nearest 256 (recall@10 0.78
instead of 0.92; bench/README.md)."""
MIN_CELLS = 16
MAX_CELLS = 65_536


def cells_for(count: int) -> int:
    """``nlist`` for a collection of ``count`` faces: about 4 * sqrt(n), the usual faiss rule."""
    return int(min(MAX_CELLS, max(MIN_CELLS, 4 * math.isqrt(max(count, 1)))))


class IvfIndex(FaissIndex[faiss.IndexIVFFlat]):
    backend = BACKEND

    def __init__(self, dimension: int, index: faiss.IndexIVFFlat, nprobe: int) -> None:
        super().__init__(dimension, index)
        self.nprobe = nprobe
        quantizer = faiss.downcast_index(index.quantizer)
        self._graph: Any = quantizer.hnsw if isinstance(quantizer, faiss.IndexHNSW) else None
        """The HNSW graph that finds a query's cells when there are many (its breadth is given per search)."""
        self._every_cell = threading.Lock()
        """Searches of every cell set the index's nprobe (faiss's search_preassigned reads it): one at a time.
        Normal searches pass their breadth as parameters and change nothing, so they run side by side."""

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

    def _search(
        self, matrix: npt.NDArray[np.float32], k: int, exhaustive: bool
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        if exhaustive and len(matrix):
            with self._every_cell:
                return self._search_every_cell(matrix, k)
        nprobe = self._probe_breadth()
        quantizer_params = self._quantizer_params(nprobe)  # kept referenced until the search returns
        params = faiss.SearchParametersIVF()
        params.nprobe = nprobe
        if quantizer_params is not None:
            params.quantizer_params = quantizer_params
        index: Any = self._index  # faiss's Python wrapper takes params, its stubs do not say so
        squared, ids = index.search(matrix, k, params=params)
        return squared, ids

    def cells_searched(self, queries: Vectors) -> npt.NDArray[np.int64]:
        """How many cells a search of each query looks into: nprobe, unless the quantizer finds fewer."""
        nprobe = self._probe_breadth()
        quantizer: Any = self._index.quantizer
        _, cells = quantizer.search(as_matrix(queries, self.dimension), nprobe, params=self._quantizer_params(nprobe))
        counts: npt.NDArray[np.int64] = (cells >= 0).sum(axis=1).astype(np.int64)
        return counts

    def _probe_breadth(self) -> int:
        """The cells a normal search compares: nprobe, at most all."""
        return min(self.nprobe, self.cells)

    def _quantizer_params(self, nprobe: int) -> Any:
        """The quantizer's graph, if it has one, searched at least as broadly as the cells wanted."""
        if self._graph is None:
            return None
        params: Any = getattr(faiss, "SearchParametersHNSW")()  # not in faiss's stubs  # noqa: B009
        params.efSearch = max(nprobe, QUANTIZER_MIN_BREADTH)
        return params

    def _search_every_cell(
        self, matrix: npt.NDArray[np.float32], k: int
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """Every cell named outright, not asked of the quantizer (a graph may not find them all); queries go
        EXHAUSTIVE_QUERY_CHUNK at a time, so the lists of cells stay small whatever the number of queries."""
        index: Any = self._index  # faiss's Python wrapper, not the C++ signature its stubs give
        index.nprobe = self.cells  # the wrapper checks the lists of cells against it
        parts = []
        for start in range(0, len(matrix), EXHAUSTIVE_QUERY_CHUNK):
            chunk = matrix[start : start + EXHAUSTIVE_QUERY_CHUNK]
            cells = np.tile(np.arange(self.cells, dtype=np.int64), (len(chunk), 1))
            parts.append(index.search_preassigned(chunk, k, cells, np.zeros(cells.shape, dtype=np.float32)))
        squared = np.vstack([part[0] for part in parts]).astype(np.float32)
        ids = np.vstack([part[1] for part in parts]).astype(np.int64)
        return squared, ids

    def ids(self) -> Ids:
        lists = self._index.invlists
        assert lists is not None
        found = [
            faiss.rev_swig_ptr(lists.get_ids(cell), lists.list_size(cell)).copy()
            for cell in range(self.cells)
            if lists.list_size(cell)
        ]
        return np.concatenate(found).astype(np.int64) if found else np.zeros(0, dtype=np.int64)

    @classmethod
    def deserialize(cls, payload: bytes, dimension: int, nprobe: int) -> IvfIndex:
        return cls(dimension, read_faiss(payload, faiss.IndexIVFFlat, dimension, BACKEND), nprobe)
