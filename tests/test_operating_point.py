"""Searches whose threshold follows the number of faces searched, from the shipped false-match curve, and whose
matches carry a calibrated same-person score (real models on the sample photos)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import ACTOR, FIXTURES, PURPOSE, news_spec
from facesearch.cli.html_report import render_search_report
from facesearch.cli.main import _search_text
from facesearch.core.errors import InvalidValueError
from facesearch.core.results import to_plain
from facesearch.core.settings import DEFAULT_MATCH_THRESHOLD, DEFAULT_TEMPLATE_RECIPE, TEMPLATE_RECIPES, Settings
from facesearch.engine.engine import Engine
from facesearch.vision.calibration import (
    CALIBRATION_DIR,
    Calibration,
    calibration_file,
    load_calibration,
    operating_point,
)
from test_cli import MASTER_KEY, facesearch

SAMPLES = Path(__file__).parents[1] / "samples"
RECIPE = "dlib-4view-v1"
"""dlib's four views: the recipe whose out-of-fold checks add synthetic distractors (``bench/face_model.py`` models
dlib's templates) up to a million faces."""


@pytest.fixture
def calibration() -> Calibration:
    loaded = load_calibration(DEFAULT_TEMPLATE_RECIPE)
    assert loaded is not None, "the default recipe ships its calibration"
    return loaded


@pytest.fixture
def dlib_calibration() -> Calibration:
    loaded = load_calibration(RECIPE)
    assert loaded is not None, "dlib's four-view recipe ships its calibration"
    return loaded


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """The sample gallery in 'news', the fixture identities in 'archive' (ingested once for the module)."""
    folder = tmp_path_factory.mktemp("operating-point") / "data"
    with Engine.init(Settings(data_dir=folder, workers=1, master_key=MASTER_KEY)) as engine:
        engine.create_collection(news_spec("news"), ACTOR)
        engine.create_collection(news_spec("archive"), ACTOR)
        engine.ingest("news", [SAMPLES / "gallery"], ACTOR, workers=1)
        engine.ingest("archive", [FIXTURES / "identities"], ACTOR, workers=1)
        yield engine


def last_search(engine: Engine) -> dict[str, Any]:
    details: dict[str, Any] = engine.catalog.audit.entries(action="search")[-1].details
    return details


def test_every_shipped_calibration_loads_and_is_consistent() -> None:
    files = sorted(CALIBRATION_DIR.glob("*.json"))
    assert files, "no calibration shipped"
    for path in files:
        data = json.loads(path.read_text())
        loaded = load_calibration(data["recipe"])
        assert loaded is not None and loaded.recipe == data["recipe"], path
        assert list(loaded.distances) == sorted(loaded.distances)
        assert data["same_person"]["prior"] == 0.5 and "out_of_fold" in data
    assert load_calibration("a-recipe-nobody-calibrated/9-views") is None
    # The default and both of dlib's recipes ship theirs: data folders made with one view search at their own
    # operating point.
    for recipe in (DEFAULT_TEMPLATE_RECIPE, RECIPE, "dlib-1view-v1"):
        assert operating_point(recipe, 1_000, 0.1, DEFAULT_MATCH_THRESHOLD).chosen_by == "false-match target"


def test_the_threshold_falls_as_the_gallery_grows_and_never_passes_verification(calibration: Calibration) -> None:
    thresholds = [calibration.threshold(0.1, size, DEFAULT_MATCH_THRESHOLD) for size in (1, 5, 1_000, 10**6, 10**8)]
    assert thresholds == sorted(thresholds, reverse=True) and len(set(thresholds)) == len(thresholds) - 1
    assert thresholds[0] == thresholds[1] == DEFAULT_MATCH_THRESHOLD  # a tiny gallery: the verification threshold
    for size in (1_000, 100_000):
        limit = calibration.threshold(0.1, size)
        assert math.isclose(size * calibration.false_match_rate(limit), 0.1, rel_tol=0.05)
    # 0.6 lets 1.1 % of different people through: ~11,000 wrong people per probe face at a million faces.
    assert 0.009 < calibration.false_match_rate(0.6) < 0.013


def test_below_the_measured_curve_the_extrapolation_is_conservative(dlib_calibration: Calibration) -> None:
    calibration = dlib_calibration
    d0, y0 = calibration.distances[0], calibration.log_fmr[0]
    assert not calibration.extrapolated(0.1, 1_000) and calibration.extrapolated(0.1, 10**6)
    assert calibration.threshold(0.1, 10**7) < d0
    # The line falls no faster than the measured tail does over any decade above its start.
    decades = [
        (y - y0) / (d - d0)
        for d, y in zip(calibration.distances, calibration.log_fmr, strict=True)
        if y - y0 >= 1 and y <= -4
    ]
    assert decades and calibration.tail_slope <= min(decades) + 1e-3
    # Out of fold, at every gallery size where the threshold was extrapolated, the wrong matches per probe face
    # held on the other half's identities stayed within what was asked.
    data = json.loads((CALIBRATION_DIR / calibration_file(RECIPE)).read_text())
    rows = [r for r in data["out_of_fold"]["wrong_matches_per_probe_face"] if r["extrapolated"]]
    assert rows and all(r["observed"] <= r["wanted"] for r in rows)
    point = operating_point(RECIPE, 10**7, 0.1, DEFAULT_MATCH_THRESHOLD)
    assert point.extrapolated and "extrapolated below the measured curve" in point.summary()


def test_the_score_is_a_probability_that_falls_with_distance(calibration: Calibration) -> None:
    scores = [calibration.likelihood(d) for d in (0.3, 0.45, 0.55, 0.6, 0.7, 0.9)]
    assert scores == sorted(scores, reverse=True)
    assert scores[0] > 0.99 and scores[-1] < 0.01 and all(0 < s < 1 for s in scores)


def test_a_search_uses_the_operating_point_of_the_faces_it_covers(samples: Engine, calibration: Calibration) -> None:
    news = samples.search(SAMPLES / "probes" / "twd_rick.jpg", ACTOR, PURPOSE, collections=["news"])
    everything = samples.search(SAMPLES / "probes" / "twd_rick.jpg", ACTOR, PURPOSE)
    sizes = {info.name: info.face_count for info in samples.catalog.collections()}
    for result, size in ((news, sizes["news"]), (everything, sizes["news"] + sizes["archive"])):
        point = result.operating_point
        assert point is not None and point.gallery_size == size and point.chosen_by == "false-match target"
        assert result.threshold == point.threshold == round(calibration.threshold(0.1, size, 0.6), 4)
        assert point.expected_false_matches is not None and math.isclose(point.expected_false_matches, 0.1, rel_tol=0.1)
    assert everything.threshold < news.threshold < DEFAULT_MATCH_THRESHOLD
    matches = news.results[0].matches
    assert [Path(m.image_path).name for m in matches][:2] == ["twd_rick_1.jpg", "group_twd_rick_twd_daryl.jpg"]
    scores = [m.same_person for m in matches]
    assert all(s is not None and 0.5 < s < 1 for s in scores) and scores == sorted(scores, reverse=True)  # type: ignore[type-var]
    recorded = samples.catalog.audit.entries(action="search")[-2].details["operating_point"]
    assert recorded["threshold"] == news.threshold and recorded["gallery_size"] == sizes["news"]
    assert recorded["expected_false_matches"] == news.operating_point.expected_false_matches  # type: ignore[union-attr]


def test_a_given_threshold_overrides_and_says_what_it_implies(samples: Engine, calibration: Calibration) -> None:
    result = samples.search(SAMPLES / "probes" / "twd_rick.jpg", ACTOR, PURPOSE, threshold=0.6)
    point = result.operating_point
    assert point is not None and point.chosen_by == "threshold" and result.threshold == 0.6
    assert point.wanted_false_matches is None
    assert point.expected_false_matches == float(f"{point.gallery_size * calibration.false_match_rate(0.6):.3g}")
    assert "(given)" in point.summary() and "wrong people per probe face" in point.summary()
    assert last_search(samples)["operating_point"]["chosen_by"] == "threshold"


def test_the_wanted_false_matches_setting_moves_the_threshold(samples: Engine) -> None:
    news = [samples.catalog.collection_id("news")]
    strict = samples.operating_point(news)
    default = samples.settings
    samples.settings = default.replace(search_false_matches=1.0)
    try:
        loose = samples.operating_point(news)
    finally:
        samples.settings = default
    assert strict.threshold < loose.threshold <= DEFAULT_MATCH_THRESHOLD


THRESHOLDS_AT_1000 = {
    "dlib-1view-v1": 0.467,
    "dlib-4view-v1": 0.469,
    "dlib4view+facenet2view-v1": 0.487,
    "dlib4view+facenet2view-int8-v1": 0.486,
}
"""As README.md and bench/README.md state them."""


@pytest.mark.parametrize("recipe", TEMPLATE_RECIPES)
def test_every_template_recipe_ships_its_false_match_curve(recipe: str) -> None:
    """A search of a thousand faces of any recipe, the fused one included, runs at the measured FMR of 1e-4."""
    point = operating_point(recipe, 1_000, 0.1, DEFAULT_MATCH_THRESHOLD)
    assert point.chosen_by == "false-match target" and point.recipe == recipe
    assert point.false_match_rate == pytest.approx(1e-4, rel=0.05)
    assert point.threshold == pytest.approx(THRESHOLDS_AT_1000[recipe], abs=5e-4)


DEFAULT_THRESHOLDS = {9: 0.6, 100: 0.537, 1_000: 0.486, 10_000: 0.439, 100_000: 0.393, 1_000_000: 0.347}
"""The default recipe's search thresholds by faces searched, as README.md ("How far a search reaches") states them."""


def test_the_default_recipe_searches_at_the_thresholds_the_readme_states(calibration: Calibration) -> None:
    for faces, threshold in DEFAULT_THRESHOLDS.items():
        point = operating_point(DEFAULT_TEMPLATE_RECIPE, faces, 0.1, DEFAULT_MATCH_THRESHOLD)
        assert point.threshold == pytest.approx(threshold, abs=5e-4), faces
    assert operating_point(DEFAULT_TEMPLATE_RECIPE, 10, 0.1, DEFAULT_MATCH_THRESHOLD).threshold < 0.6
    # Only the last lies below the measured curve.
    assert calibration.extrapolated(0.1, 1_000_000) and not calibration.extrapolated(0.1, 100_000)


def test_a_recipe_without_calibration_searches_at_the_verification_threshold() -> None:
    point = operating_point("a-recipe-nobody-calibrated", 10**6, 0.1, DEFAULT_MATCH_THRESHOLD)
    assert point.threshold == DEFAULT_MATCH_THRESHOLD and point.chosen_by == "uncalibrated"
    assert point.expected_false_matches is None and "no false-match curve" in point.summary()


def test_a_bad_false_match_target_is_refused_with_its_name() -> None:
    with pytest.raises(InvalidValueError, match="search_false_matches must be more than 0"):
        Settings(search_false_matches=0)
    with pytest.raises(InvalidValueError, match="FACESEARCH_SEARCH_FALSE_MATCHES"):
        Settings.from_env({"FACESEARCH_SEARCH_FALSE_MATCHES": "a few"})


def test_the_cli_json_and_html_report_show_the_operating_point(samples: Engine) -> None:
    probe = SAMPLES / "probes" / "twd_rick.jpg"
    result = samples.search(probe, ACTOR, PURPOSE)
    point = result.operating_point
    assert point is not None
    text = _search_text(result)
    assert f"threshold {result.threshold}, chosen for 0.1 wrong people per probe face over {point.gallery_size}" in text
    assert "same person" in text.splitlines()[3] and ">99%" in text  # Rick's own photos, 0.41-0.42 away
    plain = to_plain(result)
    assert plain["operating_point"]["threshold"] == result.threshold
    assert all(m["same_person"] is not None for m in plain["results"][0]["matches"])
    # Wider, Howard's photos (0.63-0.66 away) come in, each with its own score, in words a person can read.
    wide = samples.search(probe, ACTOR, PURPOSE, threshold=0.67)
    scores = [m.same_person for m in wide.results[0].matches if "howard" in m.image_path]
    assert scores and all(s is not None and 0.01 < s < 0.5 for s in scores)
    shown = [f"{s:.0%}" for s in scores if s is not None]
    assert all(f"  {percent}  " in _search_text(wide) for percent in shown)
    page = render_search_report([(probe, wide)])
    assert "class='operating-point'" in page and all(f"same person {percent}" in page for percent in shown)

    given = facesearch(samples.settings.data_dir, "search", probe, "--threshold", "0.6", "--purpose", "case 3")
    assert given.returncode == 0, given.stderr
    assert f"threshold 0.6 (given) over {point.gallery_size} face(s) searched lets through about" in given.stdout
