"""What lets the service work on several requests at once: the readers-writer lock, and models that give each
thread the same answers as one thread alone."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from facesearch.core.settings import Settings
from facesearch.server.locking import ReadWriteLock
from facesearch.vision.analysis import FaceAnalyser

FIXTURES = Path(__file__).parent / "fixtures"
WAIT = 5.0


def test_readers_hold_the_lock_together() -> None:
    lock = ReadWriteLock()
    all_inside = threading.Barrier(3, timeout=WAIT)  # broken (an error) unless the three are inside at once
    failures: list[BaseException] = []

    def read() -> None:
        try:
            with lock.reading():
                all_inside.wait()
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=read) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures


def test_a_writer_waits_for_readers_and_readers_that_come_after_it_wait_for_it() -> None:
    lock = ReadWriteLock()
    order: list[str] = []
    first_reader_in, release_first_reader = threading.Event(), threading.Event()

    def first_reader() -> None:
        with lock.reading():
            first_reader_in.set()
            release_first_reader.wait(WAIT)
            order.append("first reader out")

    def writer() -> None:
        with lock.writing():
            order.append("writer")

    def late_reader() -> None:
        with lock.reading():
            order.append("late reader")

    threads = [threading.Thread(target=first_reader)]
    threads[0].start()
    assert first_reader_in.wait(WAIT)
    threads.append(threading.Thread(target=writer))
    threads[1].start()
    _until(lambda: lock._writers_waiting == 1)
    threads.append(threading.Thread(target=late_reader))
    threads[2].start()
    time.sleep(0.2)
    assert order == []  # the writer waits for the reader, the late reader behind the writer
    release_first_reader.set()
    for thread in threads:
        thread.join(WAIT)
    assert order == ["first reader out", "writer", "late reader"]


def test_a_holder_may_take_the_lock_again_but_a_reader_may_not_turn_writer() -> None:
    lock = ReadWriteLock()
    with lock.writing(), lock.writing(), lock.reading():
        pass
    with lock.reading(), lock.reading():
        pass
    with lock.reading(), pytest.raises(RuntimeError, match="cannot take it to write"):
        lock._acquire_write()
    with lock.writing():  # everything above was released
        pass


def test_threads_analysing_at_once_find_what_one_thread_finds() -> None:
    """dlib's HOG detector keeps each image's pyramid in the object: shared by threads, it returned faces of
    another thread's image (11 of 90 analyses here). Each thread now has its own."""
    analyser = FaceAnalyser(Settings())
    images = [
        path.read_bytes()
        for folder in ("identities", "multi")
        for path in sorted((FIXTURES / folder).iterdir())
        if path.suffix in {".jpg", ".png"}
    ]

    def signature(data: bytes) -> list[tuple[object, list[float]]]:
        _, faces = analyser.analyse(data)
        return [(face.detection.box, face.embedding.round(4).tolist()) for face in faces]

    alone = [signature(data) for data in images]
    differences: list[int] = []

    def analyse_all(offset: int) -> None:
        for step in range(len(images)):
            number = (offset + step) % len(images)
            if signature(images[number]) != alone[number]:
                differences.append(number)

    threads = [threading.Thread(target=analyse_all, args=(offset * 4,)) for offset in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert differences == []


def _until(condition: Callable[[], bool], seconds: float = WAIT) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)
