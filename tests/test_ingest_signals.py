"""A real ``facesearch ingest`` with 2 workers, killed once it is running: its workers and multiprocessing's
resource tracker die with it (none holds the caller's pipes open), SIGTERM stops it cleanly with a message, and a
re-run completes with nothing lost or counted twice."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import facesearch
from conftest import FIXTURES
from facesearch.core.errors import StoppedError
from facesearch.core.settings import Settings
from facesearch.engine.engine import Engine
from facesearch.engine.ingest import run_tasks, task_for
from facesearch.engine.worker_lifetime import stop_signals
from facesearch.safeguards.vault import generate_master_key
from test_cli import CREATE

COPIES = 16
GONE_WITHIN_SECONDS = 5.0


def cli(data_dir: Path, *args: str | Path) -> list[str]:
    return [sys.executable, "-m", "facesearch", "--data-dir", str(data_dir), "--actor", "signal-test", *map(str, args)]


def environment(master_key: str) -> dict[str, str]:
    kept = {k: v for k, v in os.environ.items() if not k.startswith("FACESEARCH_")}
    return {
        **kept,
        "FACESEARCH_MASTER_KEY": master_key,
        "FACESEARCH_INGEST_BATCH_SIZE": "2",  # commits early and often, so the kill lands after some
        "PYTHONPATH": str(Path(facesearch.__file__).parents[1]),  # this checkout's code
    }


def distinct_copies(folder: Path) -> Path:
    """COPIES fixture photos, each with its own trailing bytes after the image data: the same faces, but each
    file its own content (so that none is skipped as a duplicate of another)."""
    folder.mkdir()
    photos = sorted((FIXTURES / "identities").iterdir())
    for number in range(COPIES):
        photo = photos[number % len(photos)]
        (folder / f"{number:03d}_{photo.name}").write_bytes(photo.read_bytes() + number.to_bytes(4, "big"))
    return folder


def process_group(group: int) -> list[int]:
    """Live (not zombie) processes in the process group ``group``, found through /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        state, process_group_id = fields[0], int(fields[2])
        if process_group_id == group and state != "Z":
            members.append(int(entry.name))
    return members


def children(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == parent:
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def images_committed(data_dir: Path) -> int:
    try:
        with sqlite3.connect(f"file:{data_dir / 'catalog.sqlite3'}?mode=ro", uri=True, timeout=1) as connection:
            (count,) = connection.execute("SELECT count(*) FROM images").fetchone()
    except sqlite3.Error:
        return 0
    return int(count)


def wait_until_running(process: subprocess.Popen[bytes], data_dir: Path) -> int:
    """Wait until both workers and the resource tracker run and a batch was committed; the images committed."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1].decode()
        committed = images_committed(data_dir)
        if len(children(process.pid)) >= 3 and committed:
            return committed
        time.sleep(0.1)
    raise AssertionError("the ingest did not start its workers and commit a batch in time")


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGTERM])
def test_killing_an_ingest_ends_its_workers_and_a_rerun_completes(tmp_path: Path, stop: signal.Signals) -> None:
    settings = Settings(data_dir=tmp_path / "data", master_key=generate_master_key())
    env = environment(settings.master_key)
    for command in (["init"], CREATE):
        assert subprocess.run(cli(settings.data_dir, *command), env=env, capture_output=True).returncode == 0
    folder = distinct_copies(tmp_path / "photos")
    ingest = cli(settings.data_dir, "ingest", "news", folder, "--workers", "2", "--no-progress", "--json")
    process = subprocess.Popen(ingest, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        wait_until_running(process, settings.data_dir)
        assert len(process_group(process.pid)) >= 4  # the ingest, its two workers and the resource tracker
        os.kill(process.pid, stop)
        # communicate returns once every process holding the ingest's stdout and stderr has exited
        _, stderr = process.communicate(timeout=30)
        deadline = time.monotonic() + GONE_WITHIN_SECONDS
        while process_group(process.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert process_group(process.pid) == [], "workers or the resource tracker outlived the ingest"
    finally:
        for pid in process_group(process.pid):  # whatever outlived it, so that a failure leaves nothing behind
            os.kill(pid, signal.SIGKILL)
    if stop == signal.SIGTERM:
        assert process.returncode == 143, stderr.decode()
        assert "ingest stopped by SIGTERM" in stderr.decode() and "run the same command again" in stderr.decode()
    else:
        assert process.returncode == -signal.SIGKILL
    committed = images_committed(settings.data_dir)
    assert 0 < committed < COPIES

    rerun = subprocess.run(ingest, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    report = json.loads(rerun.stdout)
    assert report["skipped_already_indexed"] == committed and report["images_added"] == COPIES - committed
    with Engine.open(settings) as engine:
        images, faces = engine.catalog.counts()
        assert images == COPIES and faces >= COPIES
        assert len(engine.indexes.index(engine.catalog.collection_id("news"))) == faces


ORPHANED_WORKER = """
import subprocess, sys, time
child = '''
import sys, time
from facesearch.engine import worker_lifetime
worker_lifetime._kill_me_when_parent_dies = lambda: None  # as where prctl is missing: the watchdog alone
worker_lifetime.die_with_parent(int(sys.argv[1]))
print("ready", flush=True)
time.sleep(120)
'''
import os
worker = subprocess.Popen([sys.executable, "-c", child, str(os.getpid())], stdout=subprocess.PIPE, text=True)
assert worker.stdout.readline() == "ready\\n"
print(worker.pid, flush=True)
time.sleep(120)
"""


def test_without_prctl_a_worker_watching_its_parent_still_dies_with_it() -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(facesearch.__file__).parents[1])}
    parent = subprocess.Popen(
        [sys.executable, "-c", ORPHANED_WORKER], env=env, stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        assert parent.stdout is not None
        worker = int(parent.stdout.readline())
        assert sorted(process_group(parent.pid)) == sorted([parent.pid, worker])
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + GONE_WITHIN_SECONDS
        while process_group(parent.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert process_group(parent.pid) == []
    finally:
        for pid in process_group(parent.pid):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize(("number", "exit_code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stop_signal_is_noted_and_raised_between_steps(number: signal.Signals, exit_code: int) -> None:
    before = signal.getsignal(number)
    with stop_signals() as stop:
        stop.check()
        os.kill(os.getpid(), number)
        time.sleep(0.05)  # the handler runs at the next bytecode: the process is neither killed nor interrupted
        with pytest.raises(StoppedError, match=f"stopped by {number.name}") as stopped:
            stop.check()
    assert stopped.value.exit_code == exit_code
    assert signal.getsignal(number) == before  # the usual effect is back once the ingest is over


def test_an_ingest_left_early_restores_the_signal_handlers_when_closed(tmp_path: Path) -> None:
    not_an_image = tmp_path / "notes.jpg"
    not_an_image.write_text("not an image")
    before = signal.getsignal(signal.SIGINT)
    outcomes = run_tasks([task_for(not_an_image, Settings())] * 2, workers=1)
    assert next(outcomes).error is not None
    assert signal.getsignal(signal.SIGINT) != before  # noted, not acted on, while the ingest runs
    outcomes.close()
    assert signal.getsignal(signal.SIGINT) == before
