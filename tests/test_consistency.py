"""The catalog and the vector index never disagree, whatever happens between their writes."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

import facesearch
from conftest import ACTOR, PURPOSE, news_spec
from facesearch.core.records import AnalysedFace, Box, DetectedFace, NewImage
from facesearch.core.settings import DEFAULT_TEMPLATE_RECIPE, Settings
from facesearch.engine.engine import Engine
from facesearch.vision.recipes import recipe_named

RECIPE = recipe_named(DEFAULT_TEMPLATE_RECIPE)
"""Synthetic templates are of the recipe new collections take."""


def synthetic_image(number: int, faces: int = 2) -> NewImage:
    rng = np.random.default_rng(number)
    analysed = []
    for _ in range(faces):
        vector = rng.normal(size=RECIPE.dimension).astype(np.float32)
        detection = DetectedFace(Box(0, 0, 10, 10), 1.0, ((1.0, 1.0),) * 5)
        analysed.append(AnalysedFace(detection, vector / np.linalg.norm(vector)))
    return NewImage(f"{number:064x}", f"/photos/{number}.jpg", 10, 10, "JPEG", 100, analysed, RECIPE.name)


def write_batch(engine: Engine, numbers: range, *, update_index: bool) -> None:
    collection_id = engine.catalog.collection_id("news")
    seal = engine.cipher(collection_id).seal_template
    added = engine.catalog.add_images(collection_id, [synthetic_image(n) for n in numbers], seal)
    if update_index:
        engine.indexes.add(collection_id, added.ids, added.embeddings, added.generation)


def index_matches_catalog(engine: Engine) -> bool:
    collection_id = engine.catalog.collection_id("news")
    return set(engine.indexes.index(collection_id).ids().tolist()) == set(
        engine.catalog.face_ids(collection_id).tolist()
    )


def test_crash_after_catalog_commit_before_index_save_is_reconciled(
    engine: Engine, reopen: Callable[[], Engine]
) -> None:
    engine.create_collection(news_spec(), ACTOR)
    write_batch(engine, range(0, 5), update_index=True)
    engine.indexes.save()
    write_batch(engine, range(5, 8), update_index=True)  # in memory only: the process "dies" before saving
    engine.catalog.close()

    with reopen() as again:
        collection_id = again.catalog.collection_id("news")
        assert len(again.indexes.index(collection_id)) == 16
        assert index_matches_catalog(again)


def test_crash_after_removal_commit_removes_the_vectors_on_reopen(engine: Engine, reopen: Callable[[], Engine]) -> None:
    engine.create_collection(news_spec(), ACTOR)
    write_batch(engine, range(0, 4), update_index=True)
    engine.indexes.save()
    collection_id = engine.catalog.collection_id("news")
    first_two = engine.catalog.image_ids(collection_id)[:2]
    removed = engine.catalog.remove_images(collection_id, first_two).face_ids  # catalog only, then "crash"
    engine.catalog.close()

    with reopen() as again:
        ids = set(again.indexes.index(collection_id).ids().tolist())
        assert ids.isdisjoint(removed.tolist())
        assert len(ids) == 4
        assert index_matches_catalog(again)


def test_missing_or_damaged_index_file_is_rebuilt(engine: Engine, reopen: Callable[[], Engine]) -> None:
    engine.create_collection(news_spec(), ACTOR)
    write_batch(engine, range(0, 3), update_index=True)
    engine.close()
    path = engine.indexes.path(engine.catalog.collection_id("news"))
    path.write_bytes(path.read_bytes()[:100])
    with reopen() as again:
        assert index_matches_catalog(again)
    path.unlink()
    with reopen() as again:
        assert index_matches_catalog(again)


def test_another_writer_is_picked_up_by_an_open_engine(engine: Engine, reopen: Callable[[], Engine]) -> None:
    engine.create_collection(news_spec(), ACTOR)
    write_batch(engine, range(0, 2), update_index=True)
    engine.indexes.save()
    with reopen() as other:
        write_batch(other, range(2, 4), update_index=True)
    assert index_matches_catalog(engine)
    assert len(engine.indexes.index(engine.catalog.collection_id("news"))) == 8


def test_removed_images_leave_no_vectors(engine: Engine) -> None:
    engine.create_collection(news_spec(), ACTOR)
    write_batch(engine, range(0, 3), update_index=True)
    collection_id = engine.catalog.collection_id("news")
    victim = engine.catalog.image_ids(collection_id)[0]
    removed = engine.remove_images("news", [victim], ACTOR, "photo withdrawn by its owner")
    assert removed == 2
    assert index_matches_catalog(engine)
    assert len(engine.indexes.index(collection_id)) == 4


CRASHING_INGEST = """
import os, sys
from pathlib import Path
from facesearch.store.consistency import CollectionIndexes
from facesearch.safeguards.audit import Actor
from facesearch.engine.engine import Engine
from facesearch.core.settings import Settings

def die(self): os._exit(137)  # the process is killed right after the catalog committed
CollectionIndexes.save = die
engine = Engine.open(Settings(data_dir=Path(sys.argv[1]), workers=1, master_key=sys.argv[2]))
engine.ingest("news", [Path(p) for p in sys.argv[3:]], Actor("crash-test"))
"""


def test_a_process_killed_between_catalog_and_index_loses_nothing(
    settings: Settings, identity_files: dict[str, list[Path]]
) -> None:
    """A real process dies after the catalog commit; the next one searches a reconciled index."""
    with Engine.init(settings) as engine:
        engine.create_collection(news_spec(), ACTOR)
    photos = [paths[0] for paths in identity_files.values()]
    result = subprocess.run(
        [sys.executable, "-c", CRASHING_INGEST, str(settings.data_dir), settings.master_key, *map(str, photos)],
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(Path(facesearch.__file__).parents[1]), str(Path(__file__).parent)]),
        },
        capture_output=True,
        check=False,
    )
    assert result.returncode == 137, result.stderr.decode()
    with Engine.open(settings) as engine:
        collection_id = engine.catalog.collection_id("news")
        assert len(engine.catalog.face_ids(collection_id)) >= len(photos)
        assert index_matches_catalog(engine)
        found = engine.search(photos[0], ACTOR, PURPOSE, top_k=1)
        assert Path(found.results[0].matches[0].image_path) == photos[0].resolve()
