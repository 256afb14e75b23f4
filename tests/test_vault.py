"""Encryption at rest: keys, wrong keys, templates never in the clear, crypto-shredding."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from conftest import ACTOR, news_spec
from facesearch.core.errors import DataFolderError, InvalidValueError
from facesearch.core.settings import Settings
from facesearch.engine.engine import Engine
from facesearch.safeguards.vault import MasterKey, generate_master_key


def folder_state(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()
    }


def test_templates_are_sealed_and_bound_to_their_collection() -> None:
    key = MasterKey.parse(generate_master_key(), "test")
    first = key.collection_cipher(1, "one", key.new_collection_key("one"))
    second = key.collection_cipher(2, "two", key.new_collection_key("two"))
    template = np.random.default_rng(0).normal(size=128).astype(np.float32)
    sealed = first.seal_template(template)
    assert template.tobytes() not in sealed
    assert np.array_equal(first.open_template(sealed), template)
    with pytest.raises(DataFolderError, match="does not decrypt"):
        second.open_template(sealed)


def test_a_wrapped_key_only_unwraps_with_its_master_key_and_name() -> None:
    key = MasterKey.parse(generate_master_key(), "test")
    wrapped = key.new_collection_key("one")
    with pytest.raises(DataFolderError, match="cannot be unwrapped"):
        MasterKey.parse(generate_master_key(), "test").collection_cipher(1, "one", wrapped)
    with pytest.raises(DataFolderError, match="cannot be unwrapped"):
        key.collection_cipher(1, "renamed", wrapped)


@pytest.mark.parametrize("text", ["", "short", "!!!!", "A" * 60])
def test_malformed_master_keys_are_refused(text: str) -> None:
    with pytest.raises(InvalidValueError, match="not 32 bytes of base64"):
        MasterKey.parse(text, "FACESEARCH_MASTER_KEY")


def test_key_file_inside_the_data_folder_is_refused(tmp_path: Path) -> None:
    key_file = tmp_path / "data" / "master.key"
    key_file.parent.mkdir()
    key_file.write_text(generate_master_key())
    with pytest.raises(InvalidValueError, match="inside the data folder"):
        MasterKey.load("", str(key_file), tmp_path / "data")


def test_missing_master_key_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataFolderError, match="no master key: set FACESEARCH_MASTER_KEY"):
        Engine.init(Settings(data_dir=tmp_path / "data"))


def test_the_wrong_or_missing_key_changes_nothing(engine: Engine, settings: Settings) -> None:
    engine.create_collection(news_spec(), ACTOR)
    engine.close()
    before = folder_state(settings.data_dir)
    for wrong in (settings.replace(master_key=generate_master_key()), settings.replace(master_key="")):
        with pytest.raises(DataFolderError, match="master key"):
            Engine.open(wrong)
        with pytest.raises(DataFolderError, match="master key"):
            Engine.init(wrong)
    assert folder_state(settings.data_dir) == before


def test_the_right_key_from_a_file_opens_it(engine: Engine, settings: Settings, tmp_path: Path) -> None:
    engine.close()
    key_file = tmp_path / "outside.key"
    key_file.write_text(settings.master_key + "\n")
    with Engine.open(settings.replace(master_key="", master_key_file=str(key_file))) as again:
        assert again.collections() == []


def test_deleting_a_collection_destroys_its_key(engine: Engine, reopen: Callable[[], Engine]) -> None:
    engine.create_collection(news_spec(), ACTOR)
    collection_id = engine.catalog.collection_id("news")
    _, wrapped = engine.catalog.collection_key(collection_id)
    engine.delete_collection("news", ACTOR, "end of the project")
    assert not engine.indexes.path(collection_id).exists()
    data = b"".join(p.read_bytes() for p in engine.settings.data_dir.rglob("*") if p.is_file())
    assert wrapped not in data
    (entry,) = engine.catalog.audit.entries(action="configuration", limit=10)[1:]
    assert entry.details["change"] == "collection-deleted" and entry.purpose == "end of the project"
