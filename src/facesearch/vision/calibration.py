"""A search's operating point and each match's calibrated score, from the measured false-match curve of the
templates' recipe (``models/calibration/<recipe>.json``, written by ``bench/calibration.py``).

A search of N faces that accepts distances up to d expects N x FMR(d) wrong people per probe face, so the
threshold is where that equals the wanted number, never above the verification threshold. Below the curve's
resolution the file's tail line extrapolates, conservatively (it over-states FMR there).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from facesearch.core.results import OperatingPoint

CALIBRATION_DIR = Path(__file__).parent / "models" / "calibration"
PRIOR = 0.5
"""Prior of the calibrated score: a pair as likely to be one person as two, before its distance is known."""


def calibration_file(recipe: str) -> str:
    """The file name of a recipe's calibration (a recipe may hold ``/``)."""
    return recipe.replace("/", "__") + ".json"


@dataclass(frozen=True)
class Calibration:
    recipe: str
    distances: tuple[float, ...]
    """Where the false-match curve was measured, ascending."""
    log_fmr: tuple[float, ...]
    """log10 of the share of different-person pairs at or under each distance."""
    tail_slope: float
    """d log10 FMR / d distance of the extrapolation below the first measured point."""
    intercept: float
    slope: float
    """logit P(same person | distance) = intercept + slope x distance, at ``PRIOR``."""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        curve = data["false_match_curve"]
        log_fmr = np.maximum.accumulate(np.log10(np.asarray(curve["fmr"], dtype=np.float64)))
        return cls(
            recipe=str(data["recipe"]),
            distances=tuple(float(d) for d in curve["distance"]),
            log_fmr=tuple(float(v) for v in log_fmr),
            tail_slope=float(curve["tail"]["slope"]),
            intercept=float(data["same_person"]["intercept"]),
            slope=float(data["same_person"]["slope"]),
        )

    def false_match_rate(self, distance: float) -> float:
        """Share of different-person pairs at or under ``distance`` (extrapolated below the measured curve)."""
        if distance < self.distances[0]:
            return float(10 ** (self.log_fmr[0] + self.tail_slope * (distance - self.distances[0])))
        return float(10 ** np.interp(distance, self.distances, self.log_fmr))

    def threshold(self, wanted: float, gallery_size: int, ceiling: float = math.inf) -> float:
        """The distance at which a search of ``gallery_size`` faces expects ``wanted`` wrong people per probe
        face, at most ``ceiling``."""
        target = math.log10(wanted / max(gallery_size, 1))
        if target < self.log_fmr[0]:
            found = self.distances[0] + (target - self.log_fmr[0]) / self.tail_slope
        else:
            levels, first = np.unique(np.asarray(self.log_fmr), return_index=True)
            found = float(np.interp(target, levels, np.asarray(self.distances)[first]))
        return float(min(max(found, 0.0), ceiling))

    def extrapolated(self, wanted: float, gallery_size: int) -> bool:
        """Whether that threshold lies below the measured curve."""
        return math.log10(wanted / max(gallery_size, 1)) < self.log_fmr[0]

    def likelihood(self, distance: float) -> float:
        """Estimated probability that two faces at ``distance`` are the same person, at prior ``PRIOR``."""
        return float(1 / (1 + math.exp(-(self.intercept + self.slope * distance))))


@cache
def load_calibration(recipe: str) -> Calibration | None:
    """The calibration shipped for ``recipe``, or None when there is none (the recipe's script not yet run)."""
    path = CALIBRATION_DIR / calibration_file(recipe)
    if not path.is_file():
        return None
    return Calibration.from_dict(json.loads(path.read_text()))


def operating_point(
    recipe: str, gallery_size: int, wanted: float, ceiling: float, override: float | None = None
) -> OperatingPoint:
    """The threshold a search of ``gallery_size`` faces uses: ``override`` if given, else the one expecting
    ``wanted`` wrong people per probe face (at most ``ceiling``, the verification threshold), else ``ceiling``
    when the recipe has no calibration. Says what it implies."""
    calibration = load_calibration(recipe)
    if calibration is None:
        threshold = ceiling if override is None else override
        return OperatingPoint(threshold, gallery_size, "threshold" if override is not None else "uncalibrated", recipe)
    if override is not None:
        threshold, chosen_by, extrapolated = override, "threshold", override < calibration.distances[0]
    else:
        threshold = calibration.threshold(wanted, gallery_size, ceiling)
        chosen_by = "false-match target"
        extrapolated = threshold < calibration.distances[0]
    threshold = round(threshold, 4)
    rate = calibration.false_match_rate(threshold)
    return OperatingPoint(
        threshold=threshold,
        gallery_size=gallery_size,
        chosen_by=chosen_by,
        recipe=recipe,
        wanted_false_matches=None if override is not None else wanted,
        false_match_rate=float(f"{rate:.3g}"),
        expected_false_matches=float(f"{rate * gallery_size:.3g}"),
        extrapolated=extrapolated,
        prior=PRIOR,
    )
