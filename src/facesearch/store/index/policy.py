"""Which vector index a collection gets, by its size: exact search up to ``index_exact_max`` faces,
an IVF index above it, re-trained when the collection has grown about fourfold since its cells were learnt.

Hysteresis keeps a collection near the limit from flapping: it goes back to exact search only when it
has shrunk to half the limit. Every switch rebuilds from the catalog, which holds every template."""

from __future__ import annotations

from dataclasses import dataclass

from facesearch.core.settings import Settings
from facesearch.store.index.base import VectorIndex, Vectors
from facesearch.store.index.files import IndexFileError
from facesearch.store.index.flat import BACKEND as FLAT
from facesearch.store.index.flat import FlatIndex
from facesearch.store.index.ivf import BACKEND as IVF
from facesearch.store.index.ivf import IvfIndex, cells_for


@dataclass(frozen=True)
class IndexPolicy:
    exact_max: int = 1_000_000
    nprobe: int = 256

    @classmethod
    def from_settings(cls, settings: Settings) -> IndexPolicy:
        return cls(exact_max=settings.index_exact_max, nprobe=settings.index_nprobe)

    def new_index(self, dimension: int, vectors: Vectors) -> VectorIndex:
        """An empty index of the right kind for ``vectors`` (which an IVF index is trained on)."""
        if len(vectors) > self.exact_max:
            return IvfIndex.trained(vectors, dimension, self.nprobe)
        return FlatIndex(dimension)

    def needs_rebuild(self, index: VectorIndex) -> bool:
        count = len(index)
        if isinstance(index, IvfIndex):
            return count <= self.exact_max // 2 or cells_for(count) >= 2 * index.cells
        return count > self.exact_max

    def read(self, backend: str, payload: bytes, dimension: int) -> VectorIndex:
        if backend == FLAT:
            return FlatIndex.deserialize(payload, dimension)
        if backend == IVF:
            return IvfIndex.deserialize(payload, dimension, self.nprobe)
        raise IndexFileError(f"holds a {backend!r} index, which this version cannot read")
