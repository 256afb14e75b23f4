"""The contract every vector index backend fulfils."""

from __future__ import annotations

from typing import Protocol

import numpy as np
import numpy.typing as npt

Ids = npt.NDArray[np.int64]
Vectors = npt.NDArray[np.float32]


class VectorIndex(Protocol):
    """Templates keyed by face id. Distances are Euclidean (not squared), as dlib's threshold expects.

    ``remove`` must delete vectors physically: after ``remove`` the removed vectors' bytes are not in
    ``serialize()`` (GDPR erasure), not kept as tombstones.
    """

    dimension: int
    backend: str
    """Name recorded in the index file, to read it back with the right backend."""

    def __len__(self) -> int: ...

    def add(self, ids: Ids, vectors: Vectors) -> None:
        """Add vectors under ``ids`` (ids must not be present already)."""
        ...

    def remove(self, ids: Ids) -> int:
        """Remove the vectors with these ids; returns how many were present."""
        ...

    def search(self, queries: Vectors, k: int, *, exhaustive: bool = False) -> tuple[npt.NDArray[np.float32], Ids]:
        """The ``k`` nearest ids to each query (rows padded with id -1 and distance inf) and their distances.

        ``exhaustive`` makes an approximate index compare every vector (exact results, at exact cost): what
        subject access and erasure use, since a person is owed all of their data, not most of it."""
        ...

    def ids(self) -> Ids:
        """Every id held, in no particular order."""
        ...

    def serialize(self) -> bytes:
        """Every id and vector held, in the backend's own format (``index.files`` encrypts and writes it)."""
        ...
