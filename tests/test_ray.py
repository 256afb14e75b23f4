"""Ingest's analysis on a real two-node Ray cluster (``facesearch ingest --ray``, ``engine/ray_cluster.py``): the
templates are those of a local ingest, progress is reported per file, a node killed mid-ingest loses nothing and
counts nothing twice, and a cluster that cannot be reached is a clear error naming its address. The tests marked
``ray`` share one cluster (``ray_support.py``); the others need none."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import astuple
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from conftest import ACTOR, FIXTURES, news_spec
from facesearch.core.errors import ClusterUnavailableError
from facesearch.core.settings import Settings
from facesearch.engine.engine import Engine
from facesearch.engine.ingest import IN_FLIGHT_PER_WORKER, FileOutcome, FileTask, Progress, analyse_file, task_for
from facesearch.engine.ray_cluster import run_on_ray
from facesearch.safeguards.vault import generate_master_key
from ray_support import RayCluster
from test_cli import CREATE
from test_ingest_signals import cli, distinct_copies, environment, images_committed

COPIES = 16  # test_ingest_signals.distinct_copies


class RecordedProgress(Progress):
    def __init__(self) -> None:
        self.total: int | None = None
        self.advanced: list[Path] = []
        self.finished = False

    def start(self, total: int) -> None:
        self.total = total

    def advance(self, path: Path) -> None:
        self.advanced.append(path)

    def finish(self) -> None:
        self.finished = True


def templates(engine: Engine) -> dict[tuple[str, tuple[int, int, int, int]], npt.NDArray[np.float32]]:
    """Each face's template by its image's content and its box."""
    collection_id = engine.catalog.collection_id("news")
    ids, embeddings = engine.catalog.embeddings(collection_id, engine.ciphers(collection_id).open_template)
    details = engine.catalog.face_details(ids)
    return {
        (details[int(face)].content_id, astuple(details[int(face)].box)): embedding
        for face, embedding in zip(ids, embeddings, strict=True)
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def onnx_loaded(processes: list[int]) -> bool:
    """Whether one of ``processes`` has ONNX Runtime mapped, that is has analysed (or is analysing) a photo."""
    for pid in processes:
        try:
            if "onnxruntime" in Path(f"/proc/{pid}/maps").read_text():
                return True
        except OSError:
            continue
    return False


def test_a_file_is_analysed_from_its_bytes_alone(tmp_path: Path) -> None:
    """What a Ray node gets: the bytes and the resolved path, for a file it cannot see."""
    photo = sorted((FIXTURES / "identities").iterdir())[0]
    task = task_for(tmp_path / "not-on-this-node.jpg", Settings(data_dir=tmp_path))
    outcome = analyse_file(task, photo.read_bytes(), "/photos/elsewhere.jpg")
    assert outcome.error is None and outcome.image is not None
    assert outcome.image.source_path == "/photos/elsewhere.jpg" and len(outcome.image.faces) == 1
    local = analyse_file(task_for(photo, Settings(data_dir=tmp_path)))
    assert local.image is not None and outcome.image.content_id == local.image.content_id
    assert np.allclose(outcome.image.faces[0].embedding, local.image.faces[0].embedding, atol=1e-6)


def test_an_unreachable_cluster_is_a_clear_error_naming_it(tmp_path: Path, settings: Settings) -> None:
    address = f"127.0.0.1:{free_port()}"
    with Engine.init(settings) as engine:
        engine.create_collection(news_spec(), ACTOR)
        with pytest.raises(ClusterUnavailableError, match=f"Ray cluster at {address} cannot be reached"):
            engine.ingest("news", [FIXTURES / "identities"], ACTOR, ray_address=address)
        assert engine.catalog.counts() == (0, 0)

    env = {**environment(settings.master_key), "FACESEARCH_RAY_ADDRESS": address}
    run = subprocess.run(
        cli(settings.data_dir, "ingest", "news", FIXTURES / "identities"), env=env, capture_output=True, text=True
    )
    assert run.returncode == 12 and address in run.stderr and "FACESEARCH_RAY_ADDRESS" in run.stderr, run.stderr
    run = subprocess.run(
        cli(settings.data_dir, "ingest", "news", FIXTURES / "identities", "--ray", "head-without-port"),
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2 and "'head-without-port' is not HOST:PORT" in run.stderr, run.stderr


@pytest.fixture
def two_nodes(ray_cluster: RayCluster) -> RayCluster:
    """The session's cluster with both nodes up (a test before may have killed one)."""
    started = ray_cluster.start()
    assert started.returncode == 0, started.stderr
    return ray_cluster


@pytest.mark.ray
def test_ingest_on_the_cluster_gives_a_local_ingests_templates(tmp_path: Path, two_nodes: RayCluster) -> None:
    key = generate_master_key()
    on_ray = Settings(data_dir=tmp_path / "ray", workers=1, master_key=key, ingest_batch_size=4)
    local = on_ray.replace(data_dir=tmp_path / "local")
    progress = RecordedProgress()
    with Engine.init(on_ray) as engine:
        engine.create_collection(news_spec(), ACTOR)
        address = two_nodes.address
        report = engine.ingest("news", [FIXTURES / "identities"], ACTOR, progress=progress, ray_address=address)
        from_ray = templates(engine)
    photos = sorted((FIXTURES / "identities").iterdir())
    assert report.images_added == len(photos) and not report.failed
    assert progress.total == len(photos) and sorted(progress.advanced) == photos and progress.finished
    with Engine.init(local) as engine:
        engine.create_collection(news_spec(), ACTOR)
        engine.ingest("news", [FIXTURES / "identities"], ACTOR)
        from_here = templates(engine)
    assert from_ray.keys() == from_here.keys() and len(from_ray) == report.faces_added
    for face, template in from_here.items():
        assert np.allclose(from_ray[face], template, atol=1e-5), face


@pytest.mark.ray
def test_at_most_four_files_per_cpu_are_in_flight(tmp_path: Path, two_nodes: RayCluster) -> None:
    """The files are read and sent only as results come back: memory is bounded whatever the folder's size."""
    photos = sorted((FIXTURES / "identities").iterdir())
    settings = Settings(data_dir=tmp_path)
    pulled = 0

    def tasks() -> Iterator[FileTask]:
        nonlocal pulled
        for photo in photos:
            pulled += 1
            yield task_for(photo, settings)

    waiting: list[int] = []  # files taken from the walk without a result yet: those in flight and the next one
    outcomes: list[FileOutcome] = []
    for outcome in run_on_ray(tasks(), two_nodes.address, threads=1):
        waiting.append(pulled - len(outcomes))
        outcomes.append(outcome)
    bound = 2 * IN_FLIGHT_PER_WORKER  # two nodes of one CPU
    assert len(photos) > bound + 1 and max(waiting) == bound + 1, waiting
    assert sorted(outcome.path for outcome in outcomes) == photos and all(outcome.image for outcome in outcomes)


@pytest.mark.ray
def test_a_node_killed_mid_ingest_loses_nothing_and_counts_nothing_twice(tmp_path: Path, two_nodes: RayCluster) -> None:
    """Last of the module: the node it kills comes back only for a test that asks for both (``two_nodes``)."""
    settings = Settings(data_dir=tmp_path / "data", master_key=generate_master_key())
    env = environment(settings.master_key)  # batches of 2: commits early, so the kill lands mid-ingest
    for command in (["init"], CREATE):
        assert subprocess.run(cli(settings.data_dir, *command), env=env, capture_output=True).returncode == 0
    folder = distinct_copies(tmp_path / "photos")
    ingest = cli(settings.data_dir, "ingest", "news", folder, "--ray", two_nodes.address, "--no-progress", "--json")
    process = subprocess.Popen(ingest, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        while not (images_committed(settings.data_dir) and onnx_loaded(two_nodes.node_processes("worker"))):
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()
            time.sleep(0.05)
        two_nodes.kill_node("worker")
        committed_at_kill = images_committed(settings.data_dir)
        stdout, stderr = process.communicate(timeout=240)
    finally:
        if process.poll() is None:
            process.kill()
    assert committed_at_kill < COPIES, "the ingest ended before the node was killed"
    assert process.returncode == 0, stderr
    report = json.loads(stdout)
    assert report["images_added"] == COPIES and report["failed"] == [] and report["files_seen"] == COPIES

    with Engine.open(settings) as engine:
        images, faces = engine.catalog.counts()
        assert images == COPIES and faces == report["faces_added"] >= COPIES
        assert len(engine.indexes.index(engine.catalog.collection_id("news"))) == faces
        ingests = engine.catalog.audit.entries(action="ingest", limit=1000)
        assert sum(entry.details["images_added"] for entry in ingests) == COPIES
        assert sum(entry.details["faces_added"] for entry in ingests) == faces
    verify = subprocess.run(cli(settings.data_dir, "audit", "verify"), env=env, capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr

    rerun = subprocess.run(ingest, env=env, capture_output=True, text=True, timeout=240)
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout)["skipped_already_indexed"] == COPIES
