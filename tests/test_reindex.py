"""Template recipes and ``facesearch reindex``: each collection's templates are of one recipe, a probe is embedded
once per recipe it is compared with, and a reindex re-embeds every face from its photo, switches its collection
whole, survives kill -9 and leaves a collection whose photos are gone on its old recipe."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import facesearch
from conftest import ACTOR, FIXTURES, PURPOSE, news_spec
from facesearch.core.errors import InvalidValueError, RefusedError
from facesearch.core.settings import DEFAULT_TEMPLATE_RECIPE, Settings
from facesearch.engine.engine import Engine
from facesearch.people.service import GROUPINGS, grouping_for
from facesearch.safeguards.audit import AuditEntry
from facesearch.safeguards.vault import generate_master_key
from facesearch.vision.recipes import FUSED_DLIB_WEIGHT, FUSED_INT8_SCALE

FUSED = "dlib4view+facenet2view-v1"
PHOTOS = sorted((FIXTURES / "identities").iterdir())


def copies(folder: Path, count: int) -> list[Path]:
    """``count`` fixture photos, each its own content (trailing bytes), so none is skipped as a duplicate."""
    folder.mkdir()
    made = []
    for number in range(count):
        photo = PHOTOS[number % len(PHOTOS)]
        made.append(folder / f"{number:03d}_{photo.name}")
        made[-1].write_bytes(photo.read_bytes() + number.to_bytes(4, "big"))
    return made


def held_templates(engine: Engine, collection: str) -> dict[int, np.ndarray]:
    collection_id = engine.catalog.collection_id(collection)
    ids, vectors = engine.catalog.embeddings(collection_id, engine.cipher(collection_id).open_template)
    return dict(zip(ids.tolist(), vectors, strict=True))


def index_holds_the_catalog(engine: Engine, collection: str) -> bool:
    """The collection's index holds exactly the catalog's faces, each under its own template (copies of one photo
    have the same template, so a face may find its copy first)."""
    templates = held_templates(engine, collection)
    index = engine.indexes.index(engine.catalog.collection_id(collection))
    if sorted(index.ids().tolist()) != sorted(templates):
        return False
    ids = list(templates)
    distances, found = index.search(np.vstack([templates[i] for i in ids]), 1, exhaustive=True)
    same = [float(np.linalg.norm(templates[int(hit)] - templates[i])) for i, hit in zip(ids, found[:, 0], strict=True)]
    return bool(np.all(distances[:, 0] < 1e-4) and max(same) < 1e-4)


def audited(engine: Engine, change: str) -> list[AuditEntry]:
    return [e for e in engine.catalog.audit.entries(action="configuration") if e.details["change"] == change]


def test_the_template_recipe_setting_names_the_recipes() -> None:
    assert Settings().recipe == DEFAULT_TEMPLATE_RECIPE == "dlib4view+facenet2view-int8-v1"
    assert Settings(template_views=1).recipe == "dlib-1view-v1"
    assert Settings.from_env({"FACESEARCH_TEMPLATE_RECIPE": FUSED}).recipe == FUSED
    with pytest.raises(InvalidValueError, match="template_recipe must be one of dlib-1view-v1, dlib-4view-v1"):
        Settings(template_recipe="arcface")


def test_a_reindex_re_embeds_every_face_as_an_ingest_with_the_recipe_would(settings: Settings) -> None:
    with Engine.init(settings) as engine:
        engine.create_collection(news_spec(), ACTOR)
        engine.ingest("news", PHOTOS, ACTOR)
        before = held_templates(engine, "news")
        (report,) = engine.reindex(ACTOR, recipe="dlib-1view-v1")
        assert report.switched and not report.unavailable
        assert report.faces == report.re_embedded == len(before) and report.already_done == 0
        assert engine.collection("news").template_recipe == "dlib-1view-v1"
        after = held_templates(engine, "news")
        assert sorted(after) == sorted(before)  # the same faces, none lost or added
        assert index_holds_the_catalog(engine, "news")
        (entry,) = audited(engine, "templates-reindexed")
        assert entry.collection == "news" and entry.details["fields"]["to_recipe"] == "dlib-1view-v1"
    # Each face's new template is what an ingest with one view makes of its photo.
    one_view = Settings(template_views=1)
    with Engine.open(settings) as engine:
        details = engine.catalog.face_details(after)
        for face_id, template in after.items():
            faces = facesearch.embed_faces(Path(details[face_id].image_path), one_view)
            nearest = min(float(np.linalg.norm(f.embedding - template)) for f in faces)
            assert nearest < 0.01, details[face_id].image_path
        assert index_holds_the_catalog(engine, "news")  # and so is the index file, reopened
        (again,) = engine.reindex(ACTOR, recipe="dlib-1view-v1")
        assert again.switched and again.re_embedded == 0


def test_collections_of_two_recipes_are_searched_each_with_its_own(settings: Settings) -> None:
    """A 128-d and a 256-d collection: the probe is embedded once per recipe, and each distance is that of
    templates of one recipe."""
    probe, gallery = FIXTURES / "identities" / "obama__2.jpg", FIXTURES / "identities" / "obama__1.jpg"
    with Engine.init(settings.replace(template_recipe="dlib-4view-v1")) as engine:
        engine.create_collection(news_spec("news"), ACTOR)
        engine.ingest("news", [gallery], ACTOR)
    with Engine.open(settings) as engine:
        engine.create_collection(news_spec("fused"), ACTOR)  # the default recipe
        engine.ingest("fused", [gallery], ACTOR)
        assert {c.name: c.template_recipe for c in engine.collections()} == {
            "news": "dlib-4view-v1",
            "fused": DEFAULT_TEMPLATE_RECIPE,
        }
        (fused,) = held_templates(engine, "fused").values()
        (dlib,) = held_templates(engine, "news").values()
        # The fused template: [sqrt(w) dlib, sqrt(1 - w) FaceNet], each unit length, scaled by FUSED_INT8_SCALE.
        assert fused.shape == (256,) and np.linalg.norm(fused) == pytest.approx(FUSED_INT8_SCALE, rel=1e-5)
        expected_dlib_part = np.sqrt(FUSED_DLIB_WEIGHT) * dlib / np.linalg.norm(dlib)
        assert np.allclose(fused[:128] / FUSED_INT8_SCALE, expected_dlib_part, atol=1e-5)
        (result,) = engine.search(probe, ACTOR, PURPOSE).results
        by_collection = {m.collection: m.distance for m in result.matches}
        assert set(by_collection) == {"news", "fused"}
        own = {
            name: float(
                np.linalg.norm(
                    next(iter(held_templates(engine, name).values()))
                    - engine.analyser.analyse_or_fail(probe, recipe=recipe)[1][0].embedding
                )
            )
            for name, recipe in (("news", "dlib-4view-v1"), ("fused", DEFAULT_TEMPLATE_RECIPE))
        }
        assert by_collection == pytest.approx(own, abs=1e-3)


def test_a_collection_whose_photos_are_gone_keeps_its_recipe_until_they_are_back(
    settings: Settings, tmp_path: Path
) -> None:
    photos = copies(tmp_path / "photos", 6)
    with Engine.init(settings) as engine:
        engine.create_collection(news_spec(), ACTOR)
        engine.ingest("news", photos, ACTOR)
    gone, changed = photos[0], photos[1]
    kept_bytes = {path: path.read_bytes() for path in (gone, changed)}
    gone.unlink()
    changed.write_bytes(PHOTOS[5].read_bytes())
    with Engine.open(settings) as engine:
        (report,) = engine.reindex(ACTOR, recipe="dlib-1view-v1")
        assert not report.switched and engine.collection("news").template_recipe == DEFAULT_TEMPLATE_RECIPE
        reasons = {Path(face.source).name: face.reason for face in report.unavailable}
        assert set(reasons) == {gone.name, changed.name}
        assert "can no longer be read" in reasons[gone.name] and "content changed" in reasons[changed.name]
        assert report.re_embedded == report.faces - len(report.unavailable)
        assert index_holds_the_catalog(engine, "news")  # searched as before, on its old recipe
        (result,) = engine.search(photos[2], ACTOR, PURPOSE).results
        assert result.matches and result.matches[0].distance < 1e-3
        (entry,) = audited(engine, "reindex-incomplete")
        assert len(entry.details["fields"]["unavailable_face_ids"]) == len(report.unavailable)
    for path, data in kept_bytes.items():
        path.write_bytes(data)
    with Engine.open(settings) as engine:
        (report,) = engine.reindex(ACTOR, recipe="dlib-1view-v1")
        assert report.switched and report.re_embedded == 2 and report.already_done == report.faces - 2
        assert engine.collection("news").template_recipe == "dlib-1view-v1"
        assert index_holds_the_catalog(engine, "news")


def _catalog_state(data_dir: Path) -> tuple[int, str]:
    try:
        with sqlite3.connect(f"file:{data_dir / 'catalog.sqlite3'}?mode=ro", uri=True, timeout=1) as connection:
            (kept,) = connection.execute("SELECT count(*) FROM reindex_templates").fetchone()
            (recipe,) = connection.execute("SELECT template_recipe FROM collections").fetchone()
    except sqlite3.Error:
        return 0, ""
    return int(kept), str(recipe)


def test_a_reindex_killed_by_sigkill_finishes_when_run_again(settings: Settings, tmp_path: Path) -> None:
    photos = copies(tmp_path / "photos", 16)
    with Engine.init(settings) as engine:
        engine.create_collection(news_spec(), ACTOR)
        engine.ingest("news", photos, ACTOR)
        faces = len(held_templates(engine, "news"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACESEARCH_")}
    env |= {
        "FACESEARCH_MASTER_KEY": settings.master_key,
        "FACESEARCH_INGEST_BATCH_SIZE": "2",  # templates of two images per transaction
        "PYTHONPATH": str(Path(facesearch.__file__).parents[1]),
    }
    command = [sys.executable, "-m", "facesearch", "--data-dir", str(settings.data_dir), "--actor", "reindex-test"]
    command += ["reindex", "--recipe", "dlib-1view-v1", "--no-progress", "--json"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    kept = 0
    while time.monotonic() < deadline and process.poll() is None and not kept:
        kept, recipe = _catalog_state(settings.data_dir)
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL, "the reindex finished before it could be killed"
    kept, recipe = _catalog_state(settings.data_dir)
    assert 0 < kept < faces and recipe == DEFAULT_TEMPLATE_RECIPE
    with Engine.open(settings) as engine:  # killed half-way: still whole on its old recipe, index and catalog agree
        assert index_holds_the_catalog(engine, "news")
        (result,) = engine.search(photos[3], ACTOR, PURPOSE).results
        assert result.matches[0].distance < 1e-3

    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    (report,) = json.loads(rerun.stdout)
    assert report["switched"] and report["faces"] == faces
    assert report["already_done"] == kept and report["already_done"] + report["re_embedded"] == faces
    with Engine.open(settings) as engine:
        assert engine.collection("news").template_recipe == "dlib-1view-v1"
        assert index_holds_the_catalog(engine, "news")
        assert _catalog_state(settings.data_dir)[0] == 0  # nothing left aside


def test_an_index_of_the_old_recipe_is_rebuilt_not_reconciled(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The switch keeps every face id: an index left with the old templates (a crash before its rebuild, or a
    process that had it open) must be rebuilt from the catalog, since reconciling by ids would keep them."""
    with Engine.init(settings) as engine:
        engine.create_collection(news_spec(), ACTOR)
        engine.ingest("news", PHOTOS[:4], ACTOR)
    with Engine.open(settings) as watching, Engine.open(settings) as engine:
        assert index_holds_the_catalog(watching, "news")  # opened before the reindex
        monkeypatch.setattr(engine.indexes, "rebuild", lambda collection_id: None)  # as if killed before it
        (report,) = engine.reindex(ACTOR, recipe="dlib-1view-v1")
        assert report.switched
        assert index_holds_the_catalog(watching, "news")  # caught up with another process's reindex
    with Engine.open(settings) as engine:
        monkeypatch.setattr(engine.indexes, "rebuild", lambda collection_id: None)
        (report,) = engine.reindex(ACTOR, recipe="dlib-4view-v1")
        assert report.switched  # the index file still holds the one-view templates
    with Engine.open(settings) as engine:
        assert index_holds_the_catalog(engine, "news")  # rebuilt on open


@pytest.mark.postgres
def test_a_reindex_on_a_postgres_catalog_switches_the_collection(tmp_path: Path, postgres_url: str) -> None:
    settings = Settings(
        data_dir=tmp_path / "data", workers=1, master_key=generate_master_key(), database_url=postgres_url
    )
    with Engine.init(settings) as engine:
        engine.create_collection(news_spec(), ACTOR)
        engine.ingest("news", PHOTOS[:3], ACTOR)
        (report,) = engine.reindex(ACTOR, recipe="dlib-1view-v1")
        assert report.switched and report.re_embedded == report.faces == 3
    with Engine.open(settings) as engine:
        assert engine.collection("news").template_recipe == "dlib-1view-v1"
        assert index_holds_the_catalog(engine, "news")


def test_people_grouping_is_measured_for_every_recipe_and_refused_for_another() -> None:
    assert all(grouping_for("family", recipe) == GROUPINGS[recipe] for recipe in ("dlib-1view-v1", "dlib-4view-v1"))
    assert all(grouping_for("family", recipe) == GROUPINGS[recipe] for recipe in (FUSED, DEFAULT_TEMPLATE_RECIPE))
    with pytest.raises(
        RefusedError, match=re.escape(f"reindex --collection family --recipe {DEFAULT_TEMPLATE_RECIPE}")
    ):
        grouping_for("family", "dlib-9view-v9")
