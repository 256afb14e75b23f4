from __future__ import annotations

import numpy as np
import pytest

from facesearch.core.errors import InvalidValueError
from facesearch.vision.distance import face_distance, is_match


def test_distance_is_euclidean_per_row() -> None:
    known = np.array([[0.0, 0.0], [3.0, 4.0]])
    assert face_distance(known, [0.0, 0.0]).tolist() == [0.0, 5.0]


def test_single_template_and_empty_gallery() -> None:
    assert face_distance([1.0, 0.0], [0.0, 0.0]).tolist() == [1.0]
    assert face_distance(np.zeros((0, 2)), [0.0, 0.0]).shape == (0,)


def test_mismatched_dimensions_are_refused() -> None:
    with pytest.raises(InvalidValueError, match="same embedder"):
        face_distance(np.zeros((2, 128)), np.zeros(64))


def test_threshold_is_inclusive() -> None:
    assert is_match(0.6, 0.6)
    assert not is_match(0.6001, 0.6)
