"""The package's public names, and what an ingest worker's import costs."""

from __future__ import annotations

import subprocess
import sys

import pytest

import facesearch


def test_the_exported_names_are_the_lazily_loaded_ones() -> None:
    """``__all__`` and the table of where each name lives are written out twice; they must agree."""
    assert sorted(facesearch.__all__) == sorted(facesearch._HOMES)


@pytest.mark.parametrize("name", facesearch.__all__)
def test_every_public_name_resolves(name: str) -> None:
    assert getattr(facesearch, name).__name__ == name


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Engin'"):
        _ = facesearch.Engin


def test_an_ingest_worker_does_not_load_the_database_layer_or_the_server() -> None:
    """Workers are spawned and import ``facesearch.engine.ingest``; the engine, SQLAlchemy and FastAPI stay out."""
    heavy = "{'sqlalchemy', 'fastapi', 'facesearch.engine.engine', 'facesearch.store'}"
    probe = f"import sys, facesearch.engine.ingest; print(sorted({heavy} & set(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
