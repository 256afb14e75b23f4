"""The data folder is its owner's only: folders 0700, files 0600 (catalog, its WAL and SHM, index files, uploads),
whatever the umask. They used to be created world-readable."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import ACTOR, FIXTURES, news_spec
from facesearch.core.settings import Settings
from facesearch.engine.engine import Engine
from facesearch.safeguards.vault import generate_master_key


@pytest.fixture(params=[0o000, 0o022, 0o277], ids=["umask-000", "umask-022", "umask-277"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    previous = os.umask(request.param)
    yield request.param
    os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_everything_in_the_data_folder_is_owner_only(tmp_path: Path, umask: int) -> None:
    settings = Settings(data_dir=tmp_path / "new" / "data", workers=1, master_key=generate_master_key())
    photo = FIXTURES / "identities" / "obama__1.jpg"
    with Engine.init(settings) as engine:
        engine.create_collection(news_spec(), ACTOR)
        engine.ingest("news", [photo], ACTOR, workers=1)
        engine.ingest_uploads("news", [("b.jpg", (FIXTURES / "identities" / "obama__2.jpg").read_bytes())], ACTOR)
        data = settings.data_dir
        files = [p for p in data.rglob("*") if p.is_file()]
        folders = [data, *(p for p in data.rglob("*") if p.is_dir())]
        names = {p.name for p in files}
        assert {"catalog.sqlite3", "catalog.sqlite3-wal", "catalog.sqlite3-shm"} <= names
        assert any(p.parent.name == "index" for p in files), names
        assert any("uploads" in p.parts for p in files), names
        assert {str(p.relative_to(data)): oct(_mode(p)) for p in files if _mode(p) != 0o600} == {}
        assert {str(p): oct(_mode(p)) for p in folders if _mode(p) != 0o700} == {}
    assert _mode(tmp_path / "new") == 0o700  # a parent made for the data folder too


def test_an_existing_world_readable_data_folder_is_tightened_on_open(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", workers=1, master_key=generate_master_key())
    Engine.init(settings).close()
    settings.data_dir.chmod(0o755)
    (settings.data_dir / "catalog.sqlite3").chmod(0o644)
    Engine.open(settings).close()
    assert _mode(settings.data_dir) == 0o700
    assert _mode(settings.data_dir / "catalog.sqlite3") == 0o600
