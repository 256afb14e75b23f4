"""Distances between templates and the match decision: pure functions, no models."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from facesearch.core.errors import InvalidValueError


def face_distance(known: npt.ArrayLike, probe: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Euclidean distance from ``probe`` (one template) to each row of ``known`` (n x d, or one template)."""
    probe_vec = np.asarray(probe, dtype=np.float64).reshape(-1)
    known_mat = np.asarray(known, dtype=np.float64)
    if known_mat.ndim == 1:
        known_mat = known_mat.reshape(1, -1)
    if known_mat.shape[0] == 0:
        return np.zeros(0, dtype=np.float64)
    if known_mat.shape[1] != probe_vec.shape[0]:
        raise InvalidValueError(
            f"templates have {known_mat.shape[1]} dimensions but the probe has {probe_vec.shape[0]}; "
            "compare templates made by the same embedder"
        )
    distances: npt.NDArray[np.float64] = np.linalg.norm(known_mat - probe_vec, axis=1)
    return distances


def is_match(distance: float, threshold: float) -> bool:
    """Two faces are the same person when their distance is at or under ``threshold``."""
    return distance <= threshold
