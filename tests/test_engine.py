"""The engine end to end on real photos: ingest, skip, failures, parallel workers, search, removal."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from conftest import ACTOR, FIXTURES, PURPOSE, news_spec
from facesearch.core.errors import ConflictError, InvalidValueError, NoFaceError, NotFoundError
from facesearch.engine.engine import Engine
from facesearch.engine.ingest import Progress


def gallery(tmp_path: Path, identity_files: dict[str, list[Path]]) -> Path:
    """A folder tree of every identity photo but each identity's last, which stays out as a probe."""
    folder = tmp_path / "gallery"
    for identity, paths in identity_files.items():
        (folder / identity).mkdir(parents=True)
        for path in paths[:-1]:
            shutil.copy(path, folder / identity / path.name)
    return folder


class CountingProgress(Progress):
    def __init__(self) -> None:
        self.total = -1
        self.advanced = 0
        self.finished = False

    def start(self, total: int) -> None:
        self.total = total

    def advance(self, path: Path) -> None:
        self.advanced += 1

    def finish(self) -> None:
        self.finished = True


def test_search_finds_the_same_person_first(
    engine: Engine, tmp_path: Path, identity_files: dict[str, list[Path]]
) -> None:
    engine.create_collection(news_spec(), ACTOR)
    folder = gallery(tmp_path, identity_files)
    progress = CountingProgress()
    report = engine.ingest("news", [folder], ACTOR, progress=progress)
    expected_images = sum(len(paths) - 1 for paths in identity_files.values())
    assert report.images_added == expected_images and not report.failed
    assert progress.total == progress.advanced == expected_images and progress.finished

    for identity, paths in identity_files.items():
        result = engine.search(paths[-1], ACTOR, PURPOSE)
        matches = result.results[0].matches
        assert matches, f"no match for {identity}"
        assert Path(matches[0].image_path).parent.name == identity
        assert all(Path(m.image_path).parent.name == identity for m in matches), identity
        assert matches[0].collection == "news"
        assert [m.distance for m in matches] == sorted(m.distance for m in matches)


def test_reingest_skips_content_already_indexed(
    engine: Engine, tmp_path: Path, identity_files: dict[str, list[Path]]
) -> None:
    engine.create_collection(news_spec(), ACTOR)
    folder = gallery(tmp_path, identity_files)
    first_file = sorted(folder.rglob("*.*"))[0]
    engine.ingest("news", [first_file], ACTOR)  # an ingest "interrupted" after one file
    report = engine.ingest("news", [folder], ACTOR)
    assert report.skipped_already_indexed == 1
    assert report.images_added == report.files_seen - 1
    again = engine.ingest("news", [folder], ACTOR)
    assert again.images_added == 0 and again.skipped_already_indexed == again.files_seen
    info = engine.collection("news")
    assert info.image_count == report.files_seen


def test_uploads_already_held_are_skipped_before_analysis(
    engine: Engine, identity_files: dict[str, list[Path]]
) -> None:
    engine.create_collection(news_spec(), ACTOR)
    first, second = (paths[0].read_bytes() for paths in list(identity_files.values())[:2])
    held = engine.ingest_uploads("news", [("first.jpg", first)], ACTOR).images[0]
    analysed: list[str] = []
    analyse = engine.analyser.analyse

    def counted(image: bytes | Path, name: str | None = None, **options: Any) -> object:
        analysed.append(str(name))
        return analyse(image, name, **options)

    engine.analyser.analyse = counted  # type: ignore[method-assign,assignment]
    sent = [("again.jpg", first), ("second.jpg", second), ("second-copy.jpg", second)]
    result = engine.ingest_uploads("news", sent, ACTOR)
    assert analysed == ["second.jpg"]  # a held photo and a repeat cost a hash, not a detection
    assert (result.report.images_added, result.report.skipped_already_indexed) == (1, 2)
    listed = {image.name: image.image_id for image in result.images}
    assert listed["again.jpg"] == held.image_id and set(listed) == {"again.jpg", "second.jpg"}
    with pytest.raises(ConflictError, match="already held"):
        engine.ingest_uploads("news", [("third.jpg", second)], ACTOR, strict=True)
    assert engine.collection("news").image_count == 2


def test_bad_files_are_listed_and_do_not_stop_the_rest(engine: Engine, tmp_path: Path) -> None:
    engine.create_collection(news_spec(), ACTOR)
    folder = tmp_path / "mixed"
    shutil.copytree(FIXTURES / "corrupt", folder)
    good = next((FIXTURES / "identities").iterdir())
    shutil.copy(good, folder / good.name)
    report = engine.ingest("news", [folder, tmp_path / "missing.jpg"], ACTOR)
    assert report.images_added == 1 and report.faces_added == 1
    failed = {Path(f.path).name: f.reason for f in report.failed}
    assert set(failed) == {p.name for p in (FIXTURES / "corrupt").iterdir()} | {"missing.jpg"}
    assert all(name in reason for name, reason in failed.items())
    assert engine.collection("news").image_count == 1


def test_two_workers_give_the_same_index_as_one(
    engine: Engine, tmp_path: Path, identity_files: dict[str, list[Path]]
) -> None:
    folder = gallery(tmp_path, identity_files)
    engine.create_collection(news_spec("one"), ACTOR)
    engine.create_collection(news_spec("two"), ACTOR)
    serial = engine.ingest("one", [folder], ACTOR, workers=1)
    parallel = engine.ingest("two", [folder], ACTOR, workers=2)
    assert (serial.images_added, serial.faces_added) == (parallel.images_added, parallel.faces_added)
    probe = next(iter(identity_files.values()))[-1]
    one = engine.search(probe, ACTOR, PURPOSE, collections=["one"]).results[0].matches
    two = engine.search(probe, ACTOR, PURPOSE, collections=["two"]).results[0].matches
    assert [(m.image_path, m.distance) for m in one] == [(m.image_path, m.distance) for m in two]


def test_multi_face_probe_searches_each_face_or_the_chosen_one(
    engine: Engine, identity_files: dict[str, list[Path]]
) -> None:
    engine.create_collection(news_spec(), ACTOR)
    engine.ingest("news", [paths[0] for paths in identity_files.values()], ACTOR)
    group = next(p for p in sorted((FIXTURES / "multi").iterdir()))
    every = engine.search(group, ACTOR, PURPOSE)
    assert every.faces_in_probe >= 2 and len(every.results) == every.faces_in_probe
    chosen = engine.search(group, ACTOR, PURPOSE, face=1)
    assert [r.probe_face for r in chosen.results] == [1]
    with pytest.raises(InvalidValueError, match="face 9 does not exist"):
        engine.search(group, ACTOR, PURPOSE, face=9)


def test_search_options_are_checked(engine: Engine, identity_files: dict[str, list[Path]]) -> None:
    engine.create_collection(news_spec(), ACTOR)
    probe = next(iter(identity_files.values()))[0]
    engine.ingest("news", [probe], ACTOR)
    assert engine.search(probe, ACTOR, PURPOSE, top_k=1).results[0].matches[0].distance == 0.0
    assert engine.search(probe, ACTOR, PURPOSE, threshold=0.0001).results[0].matches[0].distance == 0.0
    with pytest.raises(InvalidValueError, match="top-k"):
        engine.search(probe, ACTOR, PURPOSE, top_k=0)
    with pytest.raises(InvalidValueError, match="threshold"):
        engine.search(probe, ACTOR, PURPOSE, threshold=2.5)
    with pytest.raises(NotFoundError, match="'nope' does not exist"):
        engine.search(probe, ACTOR, PURPOSE, collections=["nope"])
    with pytest.raises(NoFaceError, match="no face found"):
        engine.search(next((FIXTURES / "noface").iterdir()), ACTOR, PURPOSE)


def test_removed_images_are_no_longer_found(engine: Engine, identity_files: dict[str, list[Path]]) -> None:
    engine.create_collection(news_spec(), ACTOR)
    probe = next(iter(identity_files.values()))[0]
    engine.ingest("news", [probe], ACTOR)
    collection_id = engine.catalog.collection_id("news")
    assert engine.remove_images("news", engine.catalog.image_ids(collection_id), ACTOR, "withdrawn") == 1
    assert engine.search(probe, ACTOR, PURPOSE).results[0].matches == []
    with pytest.raises(NotFoundError):
        engine.remove_images("news", [12345], ACTOR, "withdrawn")


def test_collections_are_unique_and_listed(engine: Engine) -> None:
    engine.create_collection(news_spec(), ACTOR)
    with pytest.raises(ConflictError, match="already exists"):
        engine.create_collection(news_spec(), ACTOR)
    (info,) = engine.collections()
    assert (info.name, info.lawful_basis, info.retention_days) == ("news", "legitimate-interests", 730)
    with pytest.raises(NotFoundError):
        engine.collection("other")


def test_stats_count_what_is_held(engine: Engine, identity_files: dict[str, list[Path]]) -> None:
    engine.create_collection(news_spec(), ACTOR)
    engine.ingest("news", [paths[0] for paths in identity_files.values()], ACTOR)
    stats = engine.stats()
    (collection,) = stats.collections
    assert collection.images == collection.faces == collection.indexed_vectors == len(identity_files)
    assert stats.data_bytes > 0
    assert (stats.template_views, stats.template_recipes) == (4, ["dlib4view+facenet2view-int8-v1"])


def test_verification_is_a_biometric_comparison_and_needs_a_purpose(engine: Engine) -> None:
    from facesearch.core.errors import RefusedError

    first, second = FIXTURES / "identities" / "obama__1.jpg", FIXTURES / "identities" / "obama__2.jpg"
    with pytest.raises(RefusedError, match="--purpose, or FACESEARCH_PURPOSE"):
        engine.verify(first, second, ACTOR, "")
    with pytest.raises(RefusedError, match="the key's declared purpose"):
        engine.verify(first, second, ACTOR, "  ", asked_as="the key's declared purpose")
    assert engine.catalog.audit.entries(action="verify") == []
    assert engine.verify(first, second, ACTOR, PURPOSE).match
    (entry,) = engine.catalog.audit.entries(action="verify")
    assert entry.purpose == PURPOSE
