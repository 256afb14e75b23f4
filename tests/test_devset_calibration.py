"""The shipped calibration held against dev-set faces embedded afresh (skips without the dev set): the
same-person score separates people, and a gallery of these faces searched at its operating point lets through
about the wrong matches it promises. The full out-of-fold check, at up to a million faces, is
``bench/calibration.py`` (its figures are in the calibration file and bench/README.md)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from conftest import require_dev_data
from facesearch.core.settings import DEFAULT_MATCH_THRESHOLD
from facesearch.vision.calibration import load_calibration
from test_devset_rights import chosen_identities, largest_face

pytestmark = pytest.mark.devset
RECIPE = "dlib-4view-v1"


def test_scores_and_operating_point_hold_on_dev_faces() -> None:
    people = chosen_identities(require_dev_data())
    faces = [(name, largest_face(path)) for name, paths in people.items() for path in paths]
    kept = [(name, template) for name, template in faces if template is not None]
    calibration = load_calibration(RECIPE)
    assert calibration is not None
    same: list[float] = []
    different: list[float] = []
    for (a, ta), (b, tb) in itertools.combinations(kept, 2):
        score = calibration.likelihood(float(np.linalg.norm(ta - tb)))
        (same if a == b else different).append(score)
    figures = (
        f"mean score {np.mean(same):.3f} over {len(same)} same-person pairs, "
        f"{np.mean(different):.4f} over {len(different)} different-person pairs"
    )
    print(figures)
    assert np.mean(same) > 0.9 and np.mean(different) < 0.08, figures

    # Each face a probe against the others: wrong people within the operating point's threshold per probe face.
    threshold = calibration.threshold(0.1, len(kept) - 1, DEFAULT_MATCH_THRESHOLD)
    wrong = [sum(1 for b, tb in kept if b != a and float(np.linalg.norm(ta - tb)) <= threshold) for a, ta in kept]
    observed = float(np.mean(wrong))
    print(f"threshold {threshold:.3f} over {len(kept) - 1} faces: {observed:.3f} wrong people per probe face")
    assert observed <= 0.5, "far more wrong matches than the 0.1 asked for"
