"""A real erasure process killed right after its commit: the erased templates' sealed bytes, left in the SQLite
files because the process never shredded them, are gone once the data folder is next opened."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import facesearch
from conftest import ACTOR, news_spec
from facesearch.core.settings import Settings
from facesearch.engine.engine import Engine

CRASHING_ERASURE = """
import os, sys
from pathlib import Path
from facesearch.accountability.rights import SubjectRights
from facesearch.core.settings import Settings
from facesearch.engine.engine import Engine
from facesearch.safeguards.audit import Actor
from facesearch.store.consistency import CollectionIndexes

def die(*_): os._exit(137)  # the process is killed right after the erasure committed
CollectionIndexes.remove = die
engine = Engine.open(Settings(data_dir=Path(sys.argv[1]), workers=1, master_key=sys.argv[2]))
SubjectRights(engine).erase(Actor("crash-test"), "erasure ER-9", face_ids=[int(i) for i in sys.argv[3:]])
"""


def every_file_bytes(folder: Path) -> bytes:
    return b"".join(path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file())


def test_a_killed_erasure_is_shredded_on_the_next_open(
    settings: Settings, identity_files: dict[str, list[Path]]
) -> None:
    with Engine.init(settings) as engine:
        engine.create_collection(news_spec(), ACTOR)
        engine.ingest("news", [paths[0] for paths in identity_files.values()], ACTOR)
        collection_id = engine.catalog.collection_id("news")
        erased = [int(i) for i in engine.catalog.face_ids(collection_id)[:2]]
        sealed_before = set(engine.catalog.sealed_embeddings())
    crash = subprocess.run(
        [sys.executable, "-c", CRASHING_ERASURE, str(settings.data_dir), settings.master_key, *map(str, erased)],
        env={**os.environ, "PYTHONPATH": str(Path(facesearch.__file__).parents[1])},  # this checkout's code
        capture_output=True,
        check=False,
    )
    assert crash.returncode == 137, crash.stderr.decode()
    database = settings.data_dir / "catalog.sqlite3"
    left = [blob[12:44] for blob in sealed_before if blob[12:44] in database.read_bytes()]
    assert len(left) == len(sealed_before)  # the kill left the erased ciphertext in the database file

    with Engine.open(settings) as engine:
        gone = sealed_before - set(engine.catalog.sealed_embeddings())
        assert len(gone) == len(erased)
        on_disk = every_file_bytes(settings.data_dir)  # scanned while open: closing would checkpoint anyway
        assert all(blob[12:44] not in on_disk for blob in gone)
        assert set(engine.indexes.index(collection_id).ids()).isdisjoint(erased)
        (receipt,) = engine.catalog.audit.entries(action="erasure")
        assert receipt.details["face_ids"] == erased
