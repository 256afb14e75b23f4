from __future__ import annotations

from pathlib import Path

import pytest

from facesearch.core.errors import InvalidValueError
from facesearch.core.settings import DEFAULT_MATCH_THRESHOLD, Settings
from facesearch.engine.ingest import task_for


def test_environment_sets_typed_values() -> None:
    settings = Settings.from_env(
        {
            "FACESEARCH_DATA_DIR": "/srv/faces",
            "FACESEARCH_WORKERS": "3",
            "FACESEARCH_MATCH_THRESHOLD": "0.55",
            "FACESEARCH_TRY_ROTATIONS": "no",
        }
    )
    assert settings.data_dir == Path("/srv/faces")
    assert settings.workers == 3
    assert settings.match_threshold == 0.55
    assert settings.try_rotations is False
    assert settings.catalog_url == "sqlite:////srv/faces/catalog.sqlite3"


def test_overrides_win_over_environment_and_none_is_ignored() -> None:
    settings = Settings.from_env({"FACESEARCH_WORKERS": "3"}, workers=1, data_dir=None)
    assert settings.workers == 1
    assert settings.data_dir == Path("facesearch-data")
    assert settings.match_threshold == DEFAULT_MATCH_THRESHOLD


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("FACESEARCH_WORKERS", "two", "FACESEARCH_WORKERS='two' is not a valid int"),
        ("FACESEARCH_TRY_ROTATIONS", "maybe", "not a valid bool"),
        ("FACESEARCH_MATCH_THRESHOLD", "3", "match_threshold must be between 0 and 2"),
        ("FACESEARCH_MAX_IMAGE_PIXELS", "0", "max_image_pixels must be positive"),
        ("FACESEARCH_WORKERS", "-1", "workers must be 0"),
        ("FACESEARCH_THREADS_PER_WORKER", "-2", "threads_per_worker must be 0"),
    ],
)
def test_bad_environment_values_name_the_variable(variable: str, value: str, message: str) -> None:
    with pytest.raises(InvalidValueError, match=message):
        Settings.from_env({variable: value})


def test_worker_count_defaults_to_cores() -> None:
    assert Settings(workers=0).worker_count >= 1
    assert Settings(workers=2).worker_count == 2


def test_workers_share_the_cores_unless_threads_are_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    photo = Path("photo.jpg")
    assert task_for(photo, Settings(), workers=1).embedder.threads is None  # ONNX Runtime: every core
    assert task_for(photo, Settings(), workers=2).embedder.threads == 4
    assert task_for(photo, Settings(), workers=16).embedder.threads == 1
    pinned = Settings.from_env({"FACESEARCH_THREADS_PER_WORKER": "1"})
    assert task_for(photo, pinned, workers=1).embedder.threads == 1
    assert task_for(photo, pinned, workers=2).embedder.threads == 1
