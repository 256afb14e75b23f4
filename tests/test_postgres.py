"""The catalog on a real PostgreSQL server: the engine's core (ingest, search, erasure with its scrub of the
server's files, retention, encryption at rest), one linear audit chain under concurrent processes, and clear
errors for a wrong URL or a server that is down or goes away."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx2
import pytest
from sqlalchemy import create_engine, text

from conftest import ACTOR, FIXTURES, PURPOSE, news_spec
from facesearch.accountability.rights import SubjectRights
from facesearch.core.errors import CatalogUnavailableError
from facesearch.core.settings import Settings
from facesearch.engine.engine import Engine
from facesearch.safeguards.governance import CollectionSpec
from facesearch.safeguards.vault import generate_master_key
from facesearch.store.keys import KeyStore
from postgres_support import LOCAL_CLUSTER, REPOSITORY, PostgresServer
from server_support import SEARCH_PURPOSE, Gallery, free_port, live_server

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_settings(tmp_path: Path, postgres_url: str) -> Settings:
    return Settings(data_dir=tmp_path / "data", workers=1, master_key=generate_master_key(), database_url=postgres_url)


@pytest.fixture
def pg_engine(pg_settings: Settings) -> Iterator[Engine]:
    with Engine.init(pg_settings) as opened:
        yield opened


def checkpoint(url: str) -> None:
    """Have the server write every changed page to its data files (what a crash or shutdown would leave)."""
    engine = create_engine(url)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("CHECKPOINT"))
    engine.dispose()


def found_in_files(data_dir: Path, needles: list[bytes]) -> list[bytes]:
    """Those of ``needles`` that lie in any file of the server's data folder (tables, indexes, WAL, anything)."""
    left = set(needles)
    found: list[bytes] = []
    for path in sorted(data_dir.rglob("*")):
        if not path.is_file():
            continue
        try:
            content = path.read_bytes()
        except OSError:  # a file the server removed while we walked (a WAL segment, a temporary file)
            continue
        for needle in [n for n in left if n in content]:
            left.discard(needle)
            found.append(needle)
    return found


def server_files(server: PostgresServer) -> Path:
    if server.data_dir is None:
        pytest.skip("set FACESEARCH_TEST_PG_DATA to the server's data folder to scan its files")
    return server.data_dir


def test_ingest_search_and_erased_face_ids_are_never_reused(
    pg_engine: Engine, identity_files: dict[str, list[Path]]
) -> None:
    pg_engine.create_collection(news_spec(), ACTOR)
    _identity, paths = next(iter(identity_files.items()))
    report = pg_engine.ingest("news", paths[:-1], ACTOR)
    assert report.faces_added == len(paths) - 1
    (result,) = pg_engine.search(paths[-1], ACTOR, PURPOSE).results
    assert len(result.matches) == len(paths) - 1
    collection_id = pg_engine.catalog.collection_id("news")
    newest = int(max(pg_engine.catalog.face_ids(collection_id)))
    SubjectRights(pg_engine).erase(ACTOR, "request 1", face_ids=[newest])
    pg_engine.ingest("news", [paths[-1]], ACTOR)
    (added,) = set(pg_engine.catalog.face_ids(collection_id).tolist()) - set(range(newest + 1))
    assert added > newest  # a sequence: the erased face's id is not given to the new face
    assert pg_engine.catalog.audit.verify().ok


def test_erasure_takes_the_erased_templates_out_of_postgres_files(
    pg_engine: Engine, postgres_server: PostgresServer, identity_files: dict[str, list[Path]]
) -> None:
    data_dir = server_files(postgres_server)
    pg_engine.create_collection(news_spec(), ACTOR)
    _identity, paths = next(iter(identity_files.items()))
    others = [path for other in list(identity_files.values())[1:] for path in other]
    pg_engine.ingest("news", paths[:-1] + others, ACTOR)
    sealed_before = set(pg_engine.catalog.sealed_embeddings())
    checkpoint(pg_engine.settings.catalog_url)
    assert len(found_in_files(data_dir, [blob[12:44] for blob in sealed_before])) == len(sealed_before)

    receipt = SubjectRights(pg_engine).erase(ACTOR, "erasure request 1", probe=paths[-1]).receipt

    assert receipt.faces_removed == len(paths) - 1
    gone = sealed_before - set(pg_engine.catalog.sealed_embeddings())
    kept = sealed_before - gone
    assert len(gone) == receipt.faces_removed and kept
    pg_engine.close()
    checkpoint(pg_engine.settings.catalog_url)
    assert found_in_files(data_dir, [blob[12:44] for blob in gone]) == []
    assert len(found_in_files(data_dir, [blob[12:44] for blob in kept])) == len(kept)  # the scan still sees


def test_retention_purges_on_postgres(pg_settings: Settings, identity_files: dict[str, list[Path]]) -> None:
    first, second = next(iter(identity_files.values()))[:2]
    with Engine.init(pg_settings) as engine:
        short = CollectionSpec.parse(
            "short", "Event photos kept for a short while", "consent", "explicit-consent", "1d"
        )
        engine.create_collection(short, ACTOR)
        engine.create_collection(news_spec(), ACTOR)
        engine.ingest("short", [first], ACTOR)
        engine.ingest("news", [first], ACTOR)
    two_days_later = datetime.now(UTC) + timedelta(days=2)
    with Engine.open(pg_settings, clock=lambda: two_days_later) as later:
        assert [m.collection for m in later.search(second, ACTOR, PURPOSE).results[0].matches] == ["news"]
        assert later.collection("short").face_count == 0
        (entry,) = later.catalog.audit.entries(action="purge")
        assert entry.collection == "short" and entry.details["faces_removed"] == 1
        assert later.catalog.audit.verify().ok


def test_no_template_is_in_the_clear_in_postgres_files(
    pg_engine: Engine, postgres_server: PostgresServer, identity_files: dict[str, list[Path]]
) -> None:
    data_dir = server_files(postgres_server)
    pg_engine.create_collection(news_spec(), ACTOR)
    pg_engine.ingest("news", [path for paths in identity_files.values() for path in paths], ACTOR)
    collection_id = pg_engine.catalog.collection_id("news")
    _, templates = pg_engine.catalog.embeddings(collection_id, pg_engine.cipher(collection_id).open_template)
    assert len(templates) >= 6
    checkpoint(pg_engine.settings.catalog_url)
    stretches = [
        raw[start : start + 32]
        for raw in (template.astype("<f4").tobytes() for template in templates)
        for start in range(0, len(raw) - 32, 32)
    ]
    assert found_in_files(data_dir, stretches) == []


def cli(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "facesearch.cli.main", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_two_servers_and_a_cli_ingest_keep_one_linear_audit_chain(tmp_path: Path, postgres_url: str) -> None:
    key_file = tmp_path / "master.key"
    key_file.write_text(generate_master_key())
    key_file.chmod(0o600)
    gallery = Gallery(tmp_path / "a" / "data", key_file, {})
    pg = Settings(data_dir=gallery.data_dir, workers=1, master_key_file=str(key_file), database_url=postgres_url)
    with Engine.init(pg) as engine:
        engine.create_collection(news_spec(), ACTOR)
        store = KeyStore(engine.catalog)
        _, ingest_key = store.create("uploader", "ingest", ACTOR, collections=["news"])
        _, search_key = store.create("fact-check desk", "search", ACTOR, purpose=SEARCH_PURPOSE)
        entries_before = engine.catalog.audit.verify().entries
    env = {"FACESEARCH_DATABASE_URL": postgres_url, "FACESEARCH_MASTER_KEY_FILE": str(key_file)}
    uploads = sorted((FIXTURES / "identities").iterdir())
    by_cli = [FIXTURES / "rotated", FIXTURES / "multi"]
    probes = [path for path in uploads if path.name.endswith("__1.png") or path.name.endswith("__1.jpg")] * 3
    second_data = tmp_path / "b" / "data"  # the second server has a data folder (its index files) of its own
    with (
        live_server(gallery, **env) as uploader,
        live_server(replace(gallery, data_dir=second_data), **env) as searcher,
        ThreadPoolExecutor(max_workers=3) as pool,
    ):

        def upload(path: Path) -> int:
            with path.open("rb") as handle:
                response = httpx2.post(
                    f"{uploader}/v1/collections/news/images",
                    headers={"x-api-key": ingest_key},
                    files={"files": (path.name, handle.read())},
                    timeout=120,
                )
            return response.status_code

        def search(path: Path) -> int:
            with path.open("rb") as handle:
                response = httpx2.post(
                    f"{searcher}/v1/search",
                    headers={"x-api-key": search_key},
                    files={"file": (path.name, handle.read())},
                    timeout=120,
                )
            return response.status_code

        ingest = pool.submit(cli, "--data-dir", str(gallery.data_dir), "ingest", "news", *map(str, by_cli), env=env)
        uploaded = pool.submit(lambda: [upload(path) for path in uploads])
        searched = pool.submit(lambda: [search(path) for path in probes])
        assert uploaded.result() == [200] * len(uploads)
        assert searched.result() == [200] * len(probes)
        cli_run = ingest.result()
        assert cli_run.returncode == 0, cli_run.stderr

        verify = cli("--data-dir", str(gallery.data_dir), "audit", "verify", env=env)
        assert verify.returncode == 0 and "audit log intact" in verify.stdout, verify.stdout + verify.stderr

    with Engine.open(pg) as engine:
        check = engine.catalog.audit.verify()
        assert check.ok
        entries = engine.catalog.audit.entries(limit=10_000)
        assert [entry.seq for entry in entries] == list(range(1, check.entries + 1))
        assert len([e for e in entries if e.action == "search"]) == len(probes)
        ingests = [e for e in entries[entries_before:] if e.action != "search"]
        assert ingests, "the uploads and the CLI ingest are in the log"
        images, _faces = engine.catalog.counts()
        expected = len(uploads) + sum(1 for folder in by_cli for _ in folder.iterdir())
        assert images == expected  # nothing lost: every upload and every ingested file is in the catalog


APPENDER = """
import sys
from pathlib import Path
from facesearch.core.settings import Settings
from facesearch.engine.engine import Engine
from facesearch.safeguards.audit import Actor, IngestEvent

settings = Settings(data_dir=Path(sys.argv[4]), database_url=sys.argv[1], master_key=sys.argv[5])
with Engine.open(settings) as engine:  # the master key keys the audit chain
    catalog = engine.catalog
    for n in range(int(sys.argv[3])):
        with catalog.sessions.begin() as session:  # an action's transaction, with its audit entry inside (no retry)
            catalog.audit.append(session, IngestEvent(Actor(sys.argv[2]), files_seen=n))
"""


def test_audit_appends_from_concurrent_processes_all_land_in_one_chain(pg_engine: Engine) -> None:
    url, per_writer = pg_engine.settings.catalog_url, 100
    before = pg_engine.catalog.audit.verify().entries
    key, data = pg_engine.settings.master_key, str(pg_engine.settings.data_dir)
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", APPENDER, url, f"writer {n}", str(per_writer), data, key], stderr=subprocess.PIPE
        )
        for n in range(3)
    ]
    failures = [writer.communicate(timeout=120)[1].decode()[-600:] for writer in writers if writer.wait(120) != 0]
    assert failures == []
    check = pg_engine.catalog.audit.verify()
    assert check.ok and check.entries == before + 3 * per_writer
    entries = pg_engine.catalog.audit.entries(action="ingest", limit=10_000)
    for n in range(3):
        assert [e.details["files_seen"] for e in entries if e.actor == f"writer {n}"] == list(range(per_writer))


ADDER = """
import sys
import numpy as np
from facesearch.core.records import AnalysedFace, Box, DetectedFace, NewImage
from facesearch.core.settings import DEFAULT_TEMPLATE_RECIPE
from facesearch.store.catalog.store import Catalog
from facesearch.vision.recipes import recipe_named

catalog = Catalog.open(sys.argv[1])
collection_id = catalog.collection_id("news")
recipe = recipe_named(DEFAULT_TEMPLATE_RECIPE)
face = AnalysedFace(DetectedFace(Box(0, 0, 9, 9), 1.0, ((1.0, 2.0),)), np.zeros(recipe.dimension, dtype=np.float32))
for n in range(int(sys.argv[3])):
    image = NewImage(f"{sys.argv[2]}-{n}", "/bench", 9, 9, "png", 1, [face], recipe.name)
    catalog.add_images(collection_id, [image], seal=lambda vector: vector.tobytes())
catalog.close()
"""


def test_concurrent_writers_to_one_collection_bump_its_generation_once_each(pg_engine: Engine) -> None:
    """The generation the vector indexes follow: lost updates would leave it behind the faces committed."""
    pg_engine.create_collection(news_spec(), ACTOR)
    url, per_writer = pg_engine.settings.catalog_url, 60
    writers = [
        subprocess.Popen([sys.executable, "-c", ADDER, url, f"writer{n}", str(per_writer)], stderr=subprocess.PIPE)
        for n in range(3)
    ]
    failures = [writer.communicate(timeout=120)[1].decode()[-600:] for writer in writers if writer.wait(120) != 0]
    assert failures == []
    collection_id = pg_engine.catalog.collection_id("news")
    assert len(pg_engine.catalog.face_ids(collection_id)) == 3 * per_writer
    assert pg_engine.catalog.generation(collection_id) == 3 * per_writer


def test_a_wrong_url_or_a_server_that_is_down_is_a_clear_error(tmp_path: Path, postgres_url: str) -> None:
    key = {"FACESEARCH_MASTER_KEY": generate_master_key()}
    down = f"postgresql+psycopg://facesearch@127.0.0.1:{free_port()}/facesearch"
    run = cli("--data-dir", str(tmp_path), "init", env={"FACESEARCH_DATABASE_URL": down, **key})
    assert run.returncode == 8, run.stderr
    assert "cannot connect to the catalog database" in run.stderr and down.split("@")[1] in run.stderr
    assert "Traceback" not in run.stderr

    missing = postgres_url.rsplit("/", 1)[0] + "/no_such_database"
    run = cli("--data-dir", str(tmp_path), "collection", "list", env={"FACESEARCH_DATABASE_URL": missing, **key})
    assert run.returncode == 8 and "no_such_database" in run.stderr and "does not exist" in run.stderr, run.stderr

    run = cli("--data-dir", str(tmp_path), "init", env={"FACESEARCH_DATABASE_URL": "postgres+nodriver://x@y/z", **key})
    assert run.returncode == 2 and "postgres+nodriver" in run.stderr, run.stderr

    with_password = postgres_url.replace("://postgres@", "://postgres:hunter2@").rsplit("/", 1)[0] + "/nothere"
    run = cli("--data-dir", str(tmp_path), "collection", "list", env={"FACESEARCH_DATABASE_URL": with_password, **key})
    assert run.returncode == 8 and "hunter2" not in run.stderr, run.stderr


def cluster(directory: Path, command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LOCAL_CLUSTER), command, "postgres"],
        env={**os.environ, "FACESEARCH_CLUSTER_DIR": str(directory)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_server_that_stops_mid_session_is_a_clear_error_and_nothing_is_lost(
    tmp_path: Path, postgres_server: PostgresServer, identity_files: dict[str, list[Path]]
) -> None:
    """A cluster of its own (deploy/local-cluster in a temporary folder), stopped under an open engine and
    under a running ``facesearch serve``, then started again."""
    if postgres_server.data_dir is None:
        pytest.skip("needs deploy/local-cluster (FACESEARCH_TEST_DATABASE_URL names a server this cannot stop)")
    own = REPOSITORY / "build" / f"test-cluster-{uuid.uuid4().hex[:8]}"  # a folder the server's user reaches
    started = cluster(own, "start")
    assert started.returncode == 0, started.stderr
    url = next(line.split("=", 1)[1] for line in started.stdout.splitlines() if "DATABASE_URL" in line)
    key_file = tmp_path / "master.key"
    key_file.write_text(generate_master_key())
    gallery = Gallery(tmp_path / "data", key_file, {})
    settings = Settings(data_dir=gallery.data_dir, workers=1, master_key_file=str(key_file), database_url=url)
    first, second = next(iter(identity_files.values()))[:2]
    try:
        with Engine.init(settings) as engine, live_server(gallery, FACESEARCH_DATABASE_URL=url) as base:
            engine.create_collection(news_spec(), ACTOR)
            engine.ingest("news", [first], ACTOR)
            _, admin = KeyStore(engine.catalog).create("ops", "admin", ACTOR)
            assert httpx2.get(f"{base}/v1/collections", headers={"x-api-key": admin}).status_code == 200
            assert cluster(own, "stop").returncode == 0

            with pytest.raises(CatalogUnavailableError, match=r"catalog database postgresql\+psycopg://.*127\.0\.0\.1"):
                engine.search(second, ACTOR, PURPOSE)
            response = httpx2.get(f"{base}/v1/collections", headers={"x-api-key": admin}, timeout=60)
            assert response.status_code == 503 and "127.0.0.1" in response.text, response.text

            assert cluster(own, "start").returncode == 0
            (result,) = engine.search(second, ACTOR, PURPOSE).results  # the same engine carries on
            assert len(result.matches) == 1
            assert engine.catalog.audit.verify().ok
            response = httpx2.get(f"{base}/v1/collections", headers={"x-api-key": admin}, timeout=60)
            assert response.status_code == 200 and response.json()["items"][0]["face_count"] == 1, response.text
    finally:
        cluster(own, "stop")
        shutil.rmtree(own, ignore_errors=True)
