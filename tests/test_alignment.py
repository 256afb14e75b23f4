from __future__ import annotations

import numpy as np
import pytest

from facesearch.core.records import Box
from facesearch.vision.alignment import rotate_quarters, unrotate_box, unrotate_point


@pytest.mark.parametrize("quarters", [0, 1, 2, 3])
def test_unrotating_a_pixel_finds_the_same_pixel_in_the_original(quarters: int) -> None:
    height, width = 5, 7
    original = np.arange(height * width * 3, dtype=np.uint8).reshape(height, width, 3)
    rotated = rotate_quarters(original, quarters)
    for row in range(rotated.shape[0]):
        for col in range(rotated.shape[1]):
            # The centre of pixel (col, row) maps to the centre of the same pixel in the original.
            x, y = unrotate_point((col + 0.5, row + 0.5), quarters, width, height)
            assert (rotated[row, col] == original[int(y), int(x)]).all()


@pytest.mark.parametrize("quarters", [0, 1, 2, 3])
def test_unrotated_box_covers_the_same_pixels(quarters: int) -> None:
    height, width = 6, 9
    mask = np.zeros((height, width, 3), dtype=np.uint8)
    mask[1:4, 2:7] = 255  # a box from (2, 1) to (7, 4)
    rotated = rotate_quarters(mask, quarters)
    rows, cols = np.nonzero(rotated[..., 0])
    box = Box(int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1)
    assert unrotate_box(box, quarters, width, height) == Box(2, 1, 7, 4)
