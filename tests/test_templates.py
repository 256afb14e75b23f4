"""Templates from several views of a face: what they average, and that a data folder never mixes two kinds."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

import facesearch
from conftest import ACTOR, FIXTURES, news_spec
from facesearch.core.errors import InvalidValueError
from facesearch.core.settings import DEFAULT_TEMPLATE_RECIPE, Settings, views_recipe
from facesearch.engine.engine import Engine
from facesearch.engine.opening import TEMPLATE_VIEWS_KEY
from facesearch.vision.imaging import decode_image
from facesearch.vision.models.registry import shared_models
from facesearch.vision.pipeline import AnalysisOptions, detect_faces
from facesearch.vision.templates import SHRINK, VIEW_SCALE, face_templates, shrunk, view_chips

FACE = FIXTURES / "identities" / "obama__1.jpg"


def _mirrored_copy(path: Path, folder: Path) -> Path:
    mirrored = folder / f"mirrored-{path.name}"
    with Image.open(path) as image:
        ImageOps.mirror(image.convert("RGB")).save(mirrored, format="JPEG", quality=95)
    return mirrored


def test_views_are_dlibs_chip_its_mirror_and_the_chip_shrunk() -> None:
    models = shared_models()
    settings = Settings()
    image = decode_image(FACE.read_bytes(), name=FACE.name, max_pixels=settings.max_image_pixels)
    face = detect_faces(image, models, AnalysisOptions.from_settings(settings))[0]
    one, four = (view_chips(image.pixels, face.box, face.landmarks, models.embedder, views) for views in (1, 4))
    assert (len(one), len(four)) == (1, 4)
    np.testing.assert_array_equal(four[0], one[0])
    np.testing.assert_array_equal(four[1], one[0][:, ::-1])
    np.testing.assert_array_equal(four[3], four[2][:, ::-1])
    np.testing.assert_array_equal(four[2], shrunk(one[0], SHRINK))
    assert not np.array_equal(four[2], one[0])

    templates = face_templates(models.embedder, [four, four[::-1]])
    descriptors = models.embedder.embed(four)
    np.testing.assert_allclose(templates[0], descriptors.mean(axis=0) * VIEW_SCALE[4], atol=1e-6)
    np.testing.assert_allclose(templates[1], templates[0], atol=1e-6)  # a mean: the order of views is no matter
    with pytest.raises(ValueError, match="template views must be one of"):
        view_chips(image.pixels, face.box, face.landmarks, models.embedder, 2)


def test_a_mirrored_photo_gets_nearly_the_same_template_from_four_views(tmp_path: Path) -> None:
    """One view's template moves when the photo is mirrored (faces are not symmetric); averaging the mirror
    views in removes most of that, which is why averaged templates of one person lie closer together."""
    mirrored = _mirrored_copy(FACE, tmp_path)
    moved = {}
    for views in (1, 4):
        settings = Settings(template_views=views)
        (original,) = facesearch.embed_faces(FACE, settings)
        (flipped,) = facesearch.embed_faces(mirrored, settings)
        moved[views] = float(np.linalg.norm(original.embedding - flipped.embedding))
    assert moved[1] > 0.08
    assert moved[4] < 0.6 * moved[1]  # 0.066 against 0.149 here


def test_template_views_must_be_one_or_four() -> None:
    for wrong in (0, 2, 3):
        with pytest.raises(InvalidValueError, match="template_views must be 1 or 4"):
            Settings(template_views=wrong)
    assert Settings.from_env({"FACESEARCH_TEMPLATE_VIEWS": "1"}).template_views == 1


@pytest.mark.parametrize(("made", "later"), [(1, 4), (4, 1)])
def test_a_data_folder_keeps_the_views_it_was_made_with(settings: Settings, made: int, later: int) -> None:
    with Engine.init(settings.replace(template_views=made)) as engine:
        assert engine.settings.template_views == made
        engine.create_collection(news_spec(), ACTOR)
        engine.ingest("news", [FIXTURES / "identities" / "obama__1.jpg"], ACTOR)
    with Engine.open(settings.replace(template_views=later)) as engine:
        assert engine.settings.template_views == made  # the folder's count, not the setting's
        engine.ingest("news", [FIXTURES / "identities" / "obama__2.jpg"], ACTOR)
    with sqlite3.connect(settings.data_dir / "catalog.sqlite3") as connection:
        recipes = {row[0] for row in connection.execute("SELECT embedder FROM faces")}
    # A folder of one-view templates makes dlib's one view; one of four views, the default recipe.
    assert recipes == {views_recipe(1) if made == 1 else DEFAULT_TEMPLATE_RECIPE}


def test_a_data_folder_from_before_views_keeps_single_view_templates(settings: Settings) -> None:
    with Engine.init(settings.replace(template_views=1)) as engine:
        engine.create_collection(news_spec(), ACTOR)
        engine.ingest("news", [FIXTURES / "identities" / "obama__1.jpg"], ACTOR)
    with sqlite3.connect(settings.data_dir / "catalog.sqlite3") as connection:
        connection.execute("DELETE FROM meta WHERE key = ?", (TEMPLATE_VIEWS_KEY,))  # as folders were made
    with Engine.open(settings) as engine:
        assert settings.template_views == 4
        assert engine.settings.template_views == 1
        assert engine.catalog.meta(TEMPLATE_VIEWS_KEY) == "1"
        result = engine.search(FIXTURES / "identities" / "obama__1.jpg", ACTOR, "test", collections=["news"])
        (match,) = result.results[0].matches
        assert match.distance < 1e-5  # the probe is made the folder's way, so it meets its own template exactly
