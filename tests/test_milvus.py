"""Vectors on a real Milvus server (FACESEARCH_VECTOR_STORE=milvus://HOST:PORT): exact results where they are owed,
erasure that leaves no erased vector's bytes in the server's files, templates stored only rotated by the
collection's key, clear errors for a wrong address or a dead server, and nothing lost when the server is killed
mid-ingest. The rotation's own properties and the setting's checks need no server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import facesearch
from conftest import ACTOR, PURPOSE, news_spec
from facesearch.accountability.rights import SubjectRights
from facesearch.core.errors import InvalidValueError, VectorStoreUnavailableError
from facesearch.core.settings import DEFAULT_MATCH_THRESHOLD, DEFAULT_TEMPLATE_RECIPE, Settings
from facesearch.engine.engine import Engine
from facesearch.engine.ingest import Progress
from facesearch.safeguards.rotation import VectorRotation
from facesearch.safeguards.vault import generate_master_key
from facesearch.store.index import milvus as milvus_index
from facesearch.store.index.flat import FlatIndex
from facesearch.store.index.milvus import MilvusIndex, MilvusServer
from facesearch.store.milvus_indexes import MilvusIndexes
from milvus_support import MilvusTestServer
from server_support import free_port


def milvus_settings(tmp_path: Path, server: MilvusTestServer, batch_size: int = 64) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        workers=1,
        master_key=generate_master_key(),
        vector_store=server.url,
        ingest_batch_size=batch_size,
    )


@pytest.fixture
def milvus_engine(tmp_path: Path, milvus_server: MilvusTestServer) -> Iterator[Engine]:
    with Engine.init(milvus_settings(tmp_path, milvus_server)) as opened:
        yield opened


def collection_index(engine: Engine, name: str) -> MilvusIndex:
    index = engine.indexes.index(engine.catalog.collection_id(name))
    assert isinstance(index, MilvusIndex)
    return index


def found_in_files(data_dir: Path, needles: list[bytes]) -> list[bytes]:
    """Those of ``needles`` that lie in any file of the server's storage folder (segments, message log, metadata)."""
    left = set(needles)
    found: list[bytes] = []
    for path in sorted(data_dir.rglob("*")):
        if not path.is_file():
            continue
        try:
            content = path.read_bytes()
        except OSError:  # a file the server removed while we walked
            continue
        for needle in [n for n in left if n in content]:
            left.discard(needle)
            found.append(needle)
    return found


# -- no server needed ------------------------------------------------------------------------------------------


def test_the_vector_store_setting_is_checked() -> None:
    assert Settings().milvus_address is None
    assert Settings(vector_store="milvus://db.internal:19530").milvus_address == ("db.internal", 19530)
    for wrong in ("milvus:/x:1", "http://h:19530", "milvus://h", "milvus://h:0", "milvus://:19530", "milvus://h:p"):
        with pytest.raises(InvalidValueError, match=r"vector_store must be empty .* or milvus://HOST:PORT"):
            Settings(vector_store=wrong)


def test_the_rotation_keeps_distances_and_depends_on_the_key() -> None:
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((50, 128)).astype(np.float32) * 0.1
    rotation = VectorRotation.from_secret(b"a" * 32, 128)
    assert np.allclose(rotation.matrix @ rotation.matrix.T, np.eye(128), atol=1e-12)
    rotated = rotation.protect(vectors)
    plain_distances = np.linalg.norm(vectors[:, None] - vectors[None], axis=2)
    assert np.allclose(np.linalg.norm(rotated[:, None] - rotated[None], axis=2), plain_distances, atol=1e-5)
    assert np.array_equal(VectorRotation.from_secret(b"a" * 32, 128).protect(vectors), rotated)  # one key, one Q
    other = VectorRotation.from_secret(b"b" * 32, 128).protect(vectors)
    assert np.linalg.norm(rotated - other, axis=1).min() > 0.5 * np.linalg.norm(vectors, axis=1).min()


def test_an_address_where_no_server_runs_is_a_clear_error(tmp_path: Path) -> None:
    down = f"milvus://127.0.0.1:{free_port()}"
    settings = Settings(data_dir=tmp_path / "data", workers=1, master_key=generate_master_key(), vector_store=down)
    with pytest.raises(
        VectorStoreUnavailableError, match=rf"vector store {re.escape(down)} .*deploy/local-cluster status"
    ):
        Engine.init(settings)
    run = subprocess.run(
        [sys.executable, "-m", "facesearch", "--data-dir", str(tmp_path / "cli"), "init"],
        env={**os.environ, "FACESEARCH_MASTER_KEY": generate_master_key(), "FACESEARCH_VECTOR_STORE": down},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 8 and down in run.stderr and "Traceback" not in run.stderr, run.stderr
    assert VectorStoreUnavailableError.http_status == 503


# -- on a real server ------------------------------------------------------------------------------------------


@pytest.mark.milvus
def test_exhaustive_search_is_exact_and_removal_counts_what_was_held(
    milvus_server: MilvusTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(milvus_index, "SEARCH_BATCH", 7)  # the 20 probes go in three requests
    server = MilvusServer(*milvus_server.host_port)
    rng = np.random.default_rng(3)
    vectors = (rng.standard_normal((1500, 128)) * 0.05).astype(np.float32)
    ids = np.arange(100, 1600, dtype=np.int64)
    index = MilvusIndex(
        server, f"facesearch_test_{rng.integers(1 << 40)}", 128, VectorRotation.from_secret(b"k" * 32, 128)
    )
    try:
        index.add(ids, vectors)
        exact = FlatIndex(128)
        exact.add(ids, vectors)
        probes = vectors[:20] + rng.standard_normal((20, 128)).astype(np.float32) * 0.01
        distances, found = index.search(probes, 10, exhaustive=True)
        expected_distances, expected = exact.search(probes, 10)
        assert np.array_equal(found, expected)
        assert np.allclose(distances, expected_distances, atol=1e-4)
        _, nearest = index.search(probes, 1)
        assert np.array_equal(nearest[:, 0], ids[:20])
        assert len(index) == 1500 and sorted(index.ids().tolist()) == ids.tolist()

        assert index.remove(np.array([100, 101, 99_999])) == 2
        assert len(index) == 1498 and not {100, 101} & set(index.ids().tolist())
        _, after = index.search(vectors[:1], 3, exhaustive=True)
        assert 100 not in after[0]
    finally:
        index.drop()
        server.close()


def new_index(server: MilvusServer, seed: int) -> MilvusIndex:
    name = f"facesearch_test_{np.random.default_rng().integers(1 << 40)}"
    return MilvusIndex(server, name, 128, VectorRotation.from_secret(bytes([seed]) * 32, 128))


@pytest.mark.milvus
def test_a_search_sees_this_process_s_writes_at_once_without_waiting_as_strong_does(
    milvus_server: MilvusTestServer,
) -> None:
    """Ordinary searches run below Strong, yet each sees the insert or removal made just before it (at Bounded
    consistency the insert is not found)."""
    server = MilvusServer(*milvus_server.host_port)
    rng = np.random.default_rng(5)
    index = new_index(server, 5)
    try:
        index.add(np.arange(200, dtype=np.int64), (rng.standard_normal((200, 128)) * 0.05).astype(np.float32))
        for face_id in (1000, 1001, 1002):
            vector = (rng.standard_normal((1, 128)) * 0.05).astype(np.float32)
            index.search(vector, 1)  # the server has applied everything so far: the next write is what is new
            index.add(np.array([face_id]), vector)
            assert index.search(vector, 1)[1][0, 0] == face_id
        index.search(vector, 1)
        # Removal reads only the ids it is given (a spy on the real client counts the rows returned), not the
        # collection's 203 as a listing of every id did; about 20 s: the server's compaction.
        spy = RowsRead(index._client)
        index._client = spy
        assert index.remove(np.array([1002, 1002, 99_999])) == 1
        assert spy.rows <= 2
        assert 1002 not in index.search(vector, 5)[1][0]
        assert index._search_consistency(exhaustive=False)["consistency_level"] != milvus_index.STRONG
        assert index._search_consistency(exhaustive=True) == {"consistency_level": milvus_index.STRONG}
    finally:
        index.drop()
        server.close()


class RowsRead:
    """The rows each query of a real client returns, counted (listing iterators included)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.rows = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def query(self, *args: Any, **kwargs: Any) -> Any:
        rows = self.client.query(*args, **kwargs)
        self.rows += len(rows)
        return rows

    def query_iterator(self, *args: Any, **kwargs: Any) -> Any:
        iterator = self.client.query_iterator(*args, **kwargs)
        counter = self

        class Counted:
            def next(self) -> Any:
                batch = iterator.next()
                counter.rows += len(batch)
                return batch

            def close(self) -> None:
                iterator.close()

        return Counted()


def cli_env(settings: Settings, server: MilvusTestServer) -> dict[str, str]:
    kept = {k: v for k, v in os.environ.items() if not k.startswith("FACESEARCH_")}
    return {
        **kept,
        "FACESEARCH_DATA_DIR": str(settings.data_dir),
        "FACESEARCH_MASTER_KEY": settings.master_key,
        "FACESEARCH_VECTOR_STORE": server.url,
        "FACESEARCH_ACTOR": "other-process",
        "PYTHONPATH": str(Path(facesearch.__file__).parents[1]),  # this checkout's code
    }


@pytest.mark.milvus
def test_a_search_sees_what_another_process_ingested_and_erased_just_before(
    tmp_path: Path, milvus_server: MilvusTestServer, identity_files: dict[str, list[Path]]
) -> None:
    settings = milvus_settings(tmp_path, milvus_server)
    (_, person), (_, other) = list(identity_files.items())[:2]

    def other_process(*args: str | Path) -> None:
        command = [sys.executable, "-m", "facesearch", *map(str, args)]
        run = subprocess.run(
            command, env=cli_env(settings, milvus_server), capture_output=True, text=True, timeout=300, check=False
        )
        assert run.returncode == 0, run.stderr

    with Engine.init(settings) as engine:
        engine.create_collection(news_spec(), ACTOR)
        engine.ingest("news", person[:-1], ACTOR)
        (result,) = engine.search(person[-1], ACTOR, PURPOSE).results  # this process has the collection open
        assert len(result.matches) == len(person) - 1

        other_process("ingest", "--workers", "1", "--no-progress", "news", *other[:-1])
        assert isinstance(engine.indexes, MilvusIndexes)
        written = engine.indexes.server.timestamp()  # above every write the other process made
        (result,) = engine.search(other[-1], ACTOR, PURPOSE).results
        assert len(result.matches) == len(other) - 1
        # Not by luck (this one server applies writes within a time tick): the search's guarantee covers them.
        guarantee = collection_index(engine, "news")._search_consistency(exhaustive=False)
        assert guarantee["guarantee_timestamp"] > written

        other_process("rights", "erase", "--reference", "erasure request 2", person[-1])
        assert engine.search(person[-1], ACTOR, PURPOSE).results[0].matches == []


@pytest.mark.milvus
def test_facesearch_reindex_fills_a_milvus_collection_of_the_new_recipe_and_drops_the_old(
    tmp_path: Path, milvus_server: MilvusTestServer, identity_files: dict[str, list[Path]]
) -> None:
    settings = milvus_settings(tmp_path, milvus_server)
    person = next(iter(identity_files.values()))
    with Engine.init(settings) as engine:
        engine.create_collection(news_spec(), ACTOR)
        engine.ingest("news", person[:-1], ACTOR)
        collection_id = engine.catalog.collection_id("news")
        indexes = engine.indexes
        assert isinstance(indexes, MilvusIndexes)
        old = collection_index(engine, "news")  # this process holds the old recipe's collection open
        assert old.name == indexes.collection_name(collection_id, DEFAULT_TEMPLATE_RECIPE)

        run = subprocess.run(
            [sys.executable, "-m", "facesearch", "reindex", "--recipe", "dlib-1view-v1", "--no-progress"],
            env=cli_env(settings, milvus_server),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert run.returncode == 0, run.stderr

        new = collection_index(engine, "news")  # caught up with the other process's reindex
        assert new.name == indexes.collection_name(collection_id, "dlib-1view-v1")
        held = [
            name for name in indexes.server.client.list_collections() if name.startswith(indexes._prefix(collection_id))
        ]
        assert held == [new.name]  # the old recipe's collection was dropped
        ids, templates = engine.catalog.embeddings(collection_id, engine.cipher(collection_id).open_template)
        assert templates.shape == (len(person) - 1, 128)
        assert np.allclose(new.stored_vectors(ids), new.rotation.protect(templates), atol=1e-5)
        (result,) = engine.search(person[-1], ACTOR, PURPOSE).results  # the probe embedded with the new recipe
        assert len(result.matches) == len(person) - 1


@pytest.mark.milvus
def test_erasure_leaves_no_erased_vector_in_milvus_files(
    milvus_engine: Engine, milvus_server: MilvusTestServer, identity_files: dict[str, list[Path]]
) -> None:
    if milvus_server.data_dir is None:
        pytest.skip("set FACESEARCH_TEST_MILVUS_DATA to the server's storage folder to scan its files")
    milvus_engine.create_collection(news_spec(), ACTOR)
    (_, person), (_, other) = list(identity_files.items())[:2]
    milvus_engine.ingest("news", person[:-1] + other, ACTOR)
    (result,) = milvus_engine.search(person[-1], ACTOR, PURPOSE).results
    assert len(result.matches) == len(person) - 1
    index = collection_index(milvus_engine, "news")
    index.compact()  # inserts flushed into segment files, as the server does by itself within minutes
    held = index.ids()
    stored = {int(i): vector.tobytes() for i, vector in zip(held, index.stored_vectors(held), strict=True)}
    assert len(found_in_files(milvus_server.data_dir, list(stored.values()))) == len(stored)

    receipt = SubjectRights(milvus_engine).erase(ACTOR, "erasure request 1", probe=person[-1]).receipt

    assert receipt.faces_removed == len(person) - 1
    erased = [stored[i] for i in set(stored) - set(index.ids().tolist())]
    kept = [stored[i] for i in index.ids().tolist()]
    assert len(erased) == receipt.faces_removed and kept
    # Garbage collection deletes the replaced segments' files within seconds; the message log drops the inserts a
    # minute after they were consumed (deploy/milvus_server.py).
    deadline = time.monotonic() + 150
    while (left := found_in_files(milvus_server.data_dir, erased)) and time.monotonic() < deadline:
        time.sleep(2)
    assert left == []
    assert len(found_in_files(milvus_server.data_dir, kept)) == len(kept)  # the scan still sees what is held
    assert milvus_engine.search(person[-1], ACTOR, PURPOSE).results[0].matches == []


@pytest.mark.milvus
def test_milvus_holds_only_vectors_rotated_by_the_collection_key(
    milvus_engine: Engine, identity_files: dict[str, list[Path]]
) -> None:
    person = next(iter(identity_files.values()))
    for name in ("news", "archive"):
        milvus_engine.create_collection(news_spec(name), ACTOR)
        milvus_engine.ingest(name, person[:2], ACTOR)
    news, archive = collection_index(milvus_engine, "news"), collection_index(milvus_engine, "archive")
    news_id = milvus_engine.catalog.collection_id("news")
    ids, templates = milvus_engine.catalog.embeddings(news_id, milvus_engine.cipher(news_id).open_template)
    stored = news.stored_vectors(ids)
    assert np.allclose(stored, news.rotation.protect(templates), atol=1e-5)
    probe = milvus_engine.analyser.analyse(person[2])[1][0].embedding  # a new photo of the same person
    near = DEFAULT_MATCH_THRESHOLD

    # Distances are kept: the probe rotated by the key matches; unrotated, or rotated by another key, it does not.
    assert np.linalg.norm(stored - news.rotation.protect(probe), axis=1).min() <= near
    assert np.linalg.norm(stored - probe, axis=1).min() > near
    assert np.linalg.norm(stored - archive.rotation.protect(probe), axis=1).min() > near
    # The same photos in another collection are stored unlike each other: the two cannot be linked.
    archive_id = milvus_engine.catalog.collection_id("archive")
    archive_stored = archive.stored_vectors(milvus_engine.catalog.face_ids(archive_id))
    assert np.linalg.norm(stored[:, None] - archive_stored[None], axis=2).min() > near

    # A copy of what Milvus held outlives the collection's deletion; with the key gone, no probe reaches it.
    milvus_engine.delete_collection("news", ACTOR, "test: key destroyed")
    milvus_engine.create_collection(news_spec("news"), ACTOR)  # same name, a new key
    keys_left = [milvus_engine.cipher(milvus_engine.catalog.collection_id(n)) for n in ("news", "archive")]
    for cipher in keys_left:
        assert np.linalg.norm(stored - cipher.vector_rotation(len(probe)).protect(probe), axis=1).min() > near
    assert not news.server.client.has_collection(news.name)  # and the server dropped its copy


class KillAfterFirstFile(Progress):
    def __init__(self, server: MilvusTestServer) -> None:
        self.server = server
        self.killed = False

    def advance(self, path: Path) -> None:
        if not self.killed:
            self.killed = True
            self.server.kill()


@pytest.mark.milvus
def test_a_server_killed_mid_ingest_loses_nothing(
    tmp_path: Path, milvus_server: MilvusTestServer, identity_files: dict[str, list[Path]]
) -> None:
    if milvus_server.pid is None:
        pytest.skip("needs deploy/local-cluster's server (FACESEARCH_TEST_VECTOR_STORE names one this cannot kill)")
    settings = milvus_settings(tmp_path, milvus_server, batch_size=1)
    paths = [path for photos in list(identity_files.values())[:2] for path in photos]
    with Engine.init(settings) as engine:
        engine.create_collection(news_spec(), ACTOR)
        try:
            with pytest.raises(VectorStoreUnavailableError, match=milvus_server.url):
                engine.ingest("news", paths, ACTOR, progress=KillAfterFirstFile(milvus_server))
        finally:
            milvus_server.restart()
        report = engine.ingest("news", paths, ACTOR)  # the same engine carries on; a re-run adds what was missed
        collection_id = engine.catalog.collection_id("news")
        held = engine.catalog.face_ids(collection_id)
        assert len(held) == len(paths) and 0 < report.faces_added < len(paths)
        assert isinstance(engine.indexes, MilvusIndexes)
        assert sorted(engine.indexes.index(collection_id).ids().tolist()) == sorted(held.tolist())
        for photos in list(identity_files.values())[:2]:
            (result,) = engine.search(photos[0], ACTOR, PURPOSE).results
            assert len(result.matches) == len(photos)
        assert engine.catalog.audit.verify().ok
