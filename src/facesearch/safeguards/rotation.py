"""A secret orthogonal rotation of templates, derived from a collection's key.

Templates leave facesearch (for a vector server such as Milvus) only rotated: ``stored = template @ Q``, with
``Q`` an orthogonal matrix drawn from a SHAKE-256 stream keyed by the collection key. A rotation keeps every
Euclidean distance, so the server searches rotated probes against rotated templates with the same results; but
a template made anywhere else (another collection, another system, the same photo embedded again) is not close
to a stored vector unless it is rotated by the same key. Destroying the key (collection delete) leaves the
server holding vectors that no new probe can be rotated to match.

What it does not hide: the stored vectors stay comparable with each other (who appears with whom, how many
people), and anyone holding the key, or enough pairs of a template and its stored vector (as many as the
template has dimensions) to solve for ``Q``, can undo it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

_LABEL = b"facesearch vector rotation v1:"


@dataclass(frozen=True)
class VectorRotation:
    matrix: npt.NDArray[np.float64] = field(repr=False)

    @classmethod
    def from_secret(cls, secret: bytes, dimension: int) -> VectorRotation:
        """The rotation of ``dimension`` dimensions that ``secret`` (a collection key) stands for."""
        count = dimension * dimension
        stream = hashlib.shake_256(_LABEL + dimension.to_bytes(4, "big") + secret).digest(16 * count)
        words = np.frombuffer(stream, dtype="<u8").reshape(2, count)
        # Two uniforms in (0, 1] per entry, then Box-Muller: a Gaussian matrix, whose QR gives a uniform rotation.
        first, second = ((words >> np.uint64(11)).astype(np.float64) + 1.0) / float(1 << 53)
        gaussian = (np.sqrt(-2.0 * np.log(first)) * np.cos(2.0 * np.pi * second)).reshape(dimension, dimension)
        q, r = np.linalg.qr(gaussian)
        return cls(q * np.sign(np.diag(r)))

    @property
    def dimension(self) -> int:
        return int(self.matrix.shape[0])

    def protect(self, vectors: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """``vectors`` (one per row) rotated: what may be stored outside facesearch."""
        matrix = np.atleast_2d(np.asarray(vectors, dtype=np.float64))
        return np.ascontiguousarray(matrix @ self.matrix, dtype=np.float32)
