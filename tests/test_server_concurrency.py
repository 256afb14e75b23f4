"""A real ``facesearch serve`` under concurrent requests: searches side by side give the serial answers, key-only
calls and searches do not wait for long analyses, and writes never show a search half of their change."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx2
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from facesearch.engine.engine import Engine
from facesearch.server.app import create_app
from facesearch.server.service import Service
from server_support import FIXTURES, Gallery, key, live_server, prepare_gallery

PROBES = [*sorted((FIXTURES / "identities").iterdir())[::3], FIXTURES / "multi" / "two_people.jpg"]
OBAMA = FIXTURES / "identities" / "obama__1.jpg"
GROUP = FIXTURES / "multi" / "three_people.jpg"


@pytest.fixture(scope="module")
def gallery(tmp_path_factory: pytest.TempPathFactory) -> Gallery:
    return prepare_gallery(tmp_path_factory.mktemp("concurrency"))


@pytest.fixture(scope="module")
def base(gallery: Gallery) -> Iterator[str]:
    with live_server(gallery, FACESEARCH_SEARCH_RATE_PER_MINUTE="100000") as url:
        yield url


def search(base: str, gallery: Gallery, data: bytes) -> httpx2.Response:
    return httpx2.post(
        f"{base}/v1/search", files={"file": ("probe", data)}, headers=key(gallery, "search"), timeout=120
    )


def variant(path: Path, number: int, scale: int = 1) -> bytes:
    """The photo, ``scale`` times larger, with a crop that makes it new content (its faces stay)."""
    with Image.open(path) as image:
        rgb = image.convert("RGB")
    width, height = rgb.width * scale, rgb.height * scale
    rgb = rgb.resize((width, height)).crop((1 + number, 0, width, height))
    buffer = io.BytesIO()
    rgb.save(buffer, "JPEG", quality=92)
    return buffer.getvalue()


def test_searches_side_by_side_answer_as_searches_one_at_a_time(base: str, gallery: Gallery) -> None:
    probes = [path.read_bytes() for path in PROBES]
    serial = [search(base, gallery, data).json()["results"] for data in probes]

    def all_probes(offset: int) -> list[tuple[int, Any]]:
        numbers = [(offset + step) % len(probes) for step in range(len(probes))]
        return [(n, search(base, gallery, probes[n]).json()["results"]) for n in numbers]

    with ThreadPoolExecutor(6) as pool:
        answers = [pair for found in pool.map(all_probes, range(0, 12, 2)) for pair in found]
    assert len(answers) == 6 * len(probes)
    assert [number for number, results in answers if results != serial[number]] == []


def test_key_only_calls_answer_while_a_long_search_runs(base: str, gallery: Gallery) -> None:
    """/v1/me is asked again and again while a long search runs: some answers come back before it ends (the exact
    lock scopes are checked without timing in ``test_a_search_waits_for_a_write_under_way_and_a_key_check_does_not``).
    """
    long_probe = variant(GROUP, 0, scale=3)  # three faces in a large photo: seconds of analysis
    done: dict[str, float] = {}

    def long_search() -> None:
        assert search(base, gallery, long_probe).status_code == 200
        done["search"] = time.monotonic()

    thread = threading.Thread(target=long_search)
    thread.start()
    answered: list[float] = []
    while thread.is_alive():
        me = httpx2.get(f"{base}/v1/me", headers=key(gallery, "search"), timeout=120)
        assert me.status_code == 200 and me.json()["role"] == "search"
        answered.append(time.monotonic())
    thread.join()
    assert [at for at in answered if at < done["search"]], "no key check answered while the search ran"


def test_a_search_answers_while_an_upload_is_analysed(base: str, gallery: Gallery) -> None:
    # Four large group photos: their analysis (one core per request) takes several times one probe's, so the
    # search's answer before the upload's is not a race on a busy machine.
    large = [("files", (f"group-{n}.jpg", variant(GROUP, n, scale=3))) for n in (1, 2, 3, 4)]
    done: dict[str, float] = {}

    def upload() -> None:
        response = httpx2.post(
            f"{base}/v1/collections/news/images", files=large, headers=key(gallery, "ingest"), timeout=120
        )
        assert response.status_code == 200
        done["upload"] = time.monotonic()

    thread = threading.Thread(target=upload)
    thread.start()
    time.sleep(0.3)
    found = search(base, gallery, OBAMA.read_bytes())
    done["search"] = time.monotonic()
    thread.join()
    assert found.status_code == 200 and found.json()["results"][0]["matches"]
    assert done["search"] < done["upload"]


def test_searches_during_uploads_and_erasures_never_see_half_a_change(base: str, gallery: Gallery) -> None:
    """Each upload and erasure changes the catalog, then the vector index; a reader sees both or neither: the
    collection's face count (catalog) always equals its indexed vectors (index), and searches never fail."""
    probe = OBAMA.read_bytes()
    before = search(base, gallery, probe).json()["results"]
    stop = threading.Event()
    problems: list[str] = []
    checks = {"stats": 0, "searches": 0}

    def watch(check: Callable[[], str | None], name: str) -> None:
        while not stop.is_set():
            problem = check()
            checks[name] += 1
            if problem:
                problems.append(problem)

    def stats() -> str | None:
        response = httpx2.get(f"{base}/v1/stats", headers=key(gallery, "admin"), timeout=120)
        news = next(c for c in response.json()["collections"] if c["name"] == "news")
        return None if news["faces"] == news["indexed_vectors"] else f"catalog and index differ: {news}"

    def searching() -> str | None:
        response = search(base, gallery, probe)
        return None if response.status_code == 200 else f"search failed: {response.status_code} {response.text}"

    watchers = [threading.Thread(target=watch, args=(stats, "stats"))]
    watchers += [threading.Thread(target=watch, args=(searching, "searches")) for _ in range(2)]
    for thread in watchers:
        thread.start()
    try:
        for number in range(4):
            data = variant(OBAMA if number % 2 else GROUP, 10 + number)
            uploaded = httpx2.post(
                f"{base}/v1/collections/news/images",
                files=[("files", (f"stream-{number}.jpg", data))],
                headers=key(gallery, "ingest"),
                timeout=120,
            )
            assert uploaded.status_code == 200, uploaded.text
            image_id = uploaded.json()["images"][0]["image_id"]
            erased = httpx2.delete(
                f"{base}/v1/images/{image_id}",
                params={"reason": "test of erasure during searches"},
                headers=key(gallery, "rights"),
                timeout=120,
            )
            assert erased.status_code == 200, erased.text
    finally:
        stop.set()
        for thread in watchers:
            thread.join()
    assert problems == []
    assert checks["stats"] > 4 and checks["searches"] > 4
    assert search(base, gallery, probe).json()["results"] == before


def test_a_search_waits_for_a_write_under_way_and_a_key_check_does_not(tmp_path: Path) -> None:
    """Which scope the routes take: a search reads (it waits while a write holds the lock), /v1/me takes none."""
    small = prepare_gallery(tmp_path, ingest=False)
    with Engine.open(small.settings) as engine, TestClient(create_app(engine)) as client:
        service: Service = client.app.state.service  # type: ignore[attr-defined]
        uploaded = client.post(
            "/v1/collections/news/images",
            files=[("files", (OBAMA.name, OBAMA.read_bytes()))],
            headers=key(small, "ingest"),
        )
        assert uploaded.status_code == 200
        done: dict[str, Any] = {}

        def search_now() -> None:
            probe = FIXTURES / "identities" / "obama__2.jpg"
            done["search"] = client.post(
                "/v1/search", files={"file": ("probe", probe.read_bytes())}, headers=key(small, "search")
            )
            done["search at"] = time.monotonic()

        thread = threading.Thread(target=search_now)
        with service.writing():
            thread.start()
            me = client.get("/v1/me", headers=key(small, "search"))
            time.sleep(1.5)
            released = time.monotonic()
        thread.join(60)
        assert me.status_code == 200
        assert done["search"].status_code == 200 and done["search"].json()["results"][0]["matches"]
        assert done["search at"] > released
