"""Several server processes on one PostgreSQL catalog: two ``facesearch serve`` over one data folder, and
``facesearch serve --workers 2``. A key's rate limit holds across the processes, an upload through one is found by a
search through the other, the pictures of a search's matches follow uncounted whichever process serves them, and the
audit chain stays linear; with SQLite, more than one worker is refused."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2
import pytest

from facesearch.core.settings import Settings
from facesearch.engine.engine import Engine
from facesearch.safeguards.vault import generate_master_key
from facesearch.store.catalog.store import Catalog
from facesearch.store.keys import KeyStore
from facesearch.store.rate_limits import CatalogShown
from server_support import ADMIN, FIXTURES, SEARCH_PURPOSE, Gallery, live_server, news_spec, prepare_gallery

RATE = 5
shown_last: list[int] = []
"""The faces the last ``search`` showed."""
HELD_OUT = ("obama__1.jpg", "obama__2.jpg")


@pytest.fixture
def pg_gallery(tmp_path: Path, postgres_url: str) -> Iterator[tuple[Gallery, dict[str, str]]]:
    """A data folder on PostgreSQL holding 'news' (the fixture identities but Obama's), with a key per role used
    here, and the environment that serves it with a rate limit of RATE."""
    key_file = tmp_path / "master.key"
    key_file.write_text(generate_master_key())
    key_file.chmod(0o600)
    gallery = Gallery(tmp_path / "data", key_file, {})
    settings = Settings(data_dir=gallery.data_dir, workers=1, master_key_file=str(key_file), database_url=postgres_url)
    with Engine.init(settings) as engine:
        engine.create_collection(news_spec(), ADMIN)
        photos = [p for p in sorted((FIXTURES / "identities").iterdir()) if p.name not in HELD_OUT]
        engine.ingest("news", photos, ADMIN, workers=1)
        store = KeyStore(engine.catalog)
        made = {
            "ingest": store.create("uploader", "ingest", ADMIN, collections=["news"]),
            "search": store.create("fact-check desk", "search", ADMIN, purpose=SEARCH_PURPOSE),
        }
    gallery.keys.update({role: token for role, (_, token) in made.items()})
    env = {"FACESEARCH_DATABASE_URL": postgres_url, "FACESEARCH_SEARCH_RATE_PER_MINUTE": str(RATE)}
    yield gallery, env


def headers(gallery: Gallery, role: str) -> dict[str, str]:
    return {"X-API-Key": gallery.keys[role]}


def page(base: str, gallery: Gallery) -> int:
    """A page of the collection's images: counted against the search key's budget, and quick."""
    return httpx2.get(f"{base}/v1/collections/news/images", headers=headers(gallery, "search"), timeout=60).status_code


def search(base: str, gallery: Gallery, photo: Path) -> list[str]:
    response = httpx2.post(
        f"{base}/v1/search",
        files={"file": (photo.name, photo.read_bytes())},
        headers=headers(gallery, "search"),
        timeout=120,
    )
    assert response.status_code == 200, response.text
    shown_last[:] = [match["face_id"] for probe in response.json()["results"] for match in probe["matches"]]
    return [Path(match["image_path"]).name for probe in response.json()["results"] for match in probe["matches"]]


def worker_processes(base: str) -> list[int]:
    """The worker processes (multiprocessing's spawned children) of the ``facesearch serve`` listening at ``base``."""
    port = base.rsplit(":", 1)[1]
    parents: dict[int, int] = {}
    commands: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                commands[int(entry.name)] = (entry / "cmdline").read_bytes().decode(errors="replace")
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    servers = [pid for pid, command in commands.items() if "\0serve\0" in command and f"\0{port}" in command]
    return [pid for pid, parent in parents.items() if parent in servers and "spawn_main" in commands[pid]]


def audit_verify(gallery: Gallery, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, **env, "FACESEARCH_MASTER_KEY_FILE": str(gallery.master_key_file)}
    command = [sys.executable, "-m", "facesearch.cli.main", "--data-dir", str(gallery.data_dir), "audit", "verify"]
    return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.postgres
def test_two_servers_share_rate_limits_find_each_others_uploads_and_one_audit_chain(
    pg_gallery: tuple[Gallery, dict[str, str]],
) -> None:
    gallery, env = pg_gallery
    with live_server(gallery, **env) as first, live_server(gallery, **env) as second:
        probe = FIXTURES / "identities" / "obama__2.jpg"
        assert "upload:obama__1.jpg" not in search(second, gallery, probe)  # the second has its index open
        uploaded = httpx2.post(
            f"{first}/v1/collections/news/images",
            files=[("files", ("obama__1.jpg", (FIXTURES / "identities" / "obama__1.jpg").read_bytes()))],
            headers=headers(gallery, "ingest"),
            timeout=120,
        )
        assert uploaded.status_code == 200 and uploaded.json()["report"]["faces_added"] == 1, uploaded.text
        found = search(second, gallery, probe)  # the upload through the first, found by the second
        assert "upload:obama__1.jpg" in found
        for face_id in shown_last:  # the thumbnails of the search's matches, through the other server: not counted
            thumbnail = httpx2.get(
                f"{first}/v1/faces/{face_id}/thumbnail", headers=headers(gallery, "search"), timeout=60
            )
            assert thumbnail.status_code == 200 and thumbnail.headers["content-type"] == "image/jpeg"

        statuses = [page(first if n % 2 else second, gallery) for n in range(RATE + 2)]
        assert statuses == [200] * (RATE - 2) + [429] * 4  # two searches above, then RATE across both servers
        assert audit_verify(gallery, env).returncode == 0


@pytest.mark.postgres
def test_workers_share_one_rate_limit(pg_gallery: tuple[Gallery, dict[str, str]]) -> None:
    """Requests sent side by side to ``--workers 2`` (the kernel hands each connection to either process): exactly
    the budget is allowed, whichever process counted it."""
    gallery, env = pg_gallery
    with live_server(gallery, **env, FACESEARCH_SERVER_WORKERS="2") as base:
        assert len(worker_processes(base)) == 2
        search(base, gallery, FIXTURES / "identities" / "obama__2.jpg")  # one call of the budget
        with ThreadPoolExecutor(4) as pool:
            statuses = list(pool.map(lambda _: page(base, gallery), range(3 * RATE)))
        assert sorted(statuses) == [200] * (RATE - 1) + [429] * (2 * RATE + 1)
    verified = audit_verify(gallery, env)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_more_than_one_worker_on_sqlite_is_refused(tmp_path: Path) -> None:
    gallery = prepare_gallery(tmp_path, ingest=False)
    environment = {**os.environ, "FACESEARCH_MASTER_KEY_FILE": str(gallery.master_key_file)}
    command = [sys.executable, "-m", "facesearch.cli.main", "--data-dir", str(gallery.data_dir), "serve"]
    run = subprocess.run([*command, "--workers", "2"], env=environment, capture_output=True, text=True, timeout=120)
    assert run.returncode != 0
    assert (
        "--workers 2 needs the catalog on a database server" in run.stderr and "FACESEARCH_DATABASE_URL" in run.stderr
    )


@pytest.mark.postgres
def test_two_processes_recording_the_same_faces_shown_do_not_collide(tmp_path: Path, postgres_url: str) -> None:
    """Two catalogs (as two processes have) record that one key was shown the same faces, again and again at once:
    each record is taken in turn (the key's row locked), none fails on a row the other just added."""
    settings = Settings(data_dir=tmp_path / "data", master_key=generate_master_key(), database_url=postgres_url)
    with Engine.init(settings) as engine:
        key, _ = KeyStore(engine.catalog).create("fact-check desk", "search", ADMIN, purpose=SEARCH_PURPOSE)
    catalogs = [Catalog.open(postgres_url), Catalog.open(postgres_url)]
    try:
        shown = [CatalogShown(catalog) for catalog in catalogs]

        def record(which: int) -> None:
            for _ in range(40):
                shown[which].add(key.id, face_ids=range(1, 21), image_ids=range(1, 11))

        with ThreadPoolExecutor(2) as pool:
            list(pool.map(record, [0, 1]))  # re-raises what a thread raised
        assert shown[1].covers(key.id, face_ids=range(1, 21), image_ids=range(1, 11))
        assert not shown[0].covers(key.id, face_ids=[21])
    finally:
        for catalog in catalogs:
            catalog.close()
