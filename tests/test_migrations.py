"""The catalog's schema comes from its Alembic migrations: a new catalog (SQLite or PostgreSQL) is made by them
and matches the models exactly, and a data folder made before migrations (no ``alembic_version`` table) opens,
is upgraded in place and keeps everything it held."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from conftest import ACTOR, PURPOSE, news_spec
from facesearch.core.settings import Settings
from facesearch.engine.engine import Engine
from facesearch.store.catalog.migrate import MIGRATIONS, head_revision
from facesearch.store.catalog.schema import Base
from facesearch.store.catalog.store import Catalog


def schema_differences(url: str) -> list[object]:
    engine = create_engine(url)
    with engine.connect() as connection:
        differences: list[object] = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        revision = MigrationContext.configure(connection).get_current_revision()
    engine.dispose()
    assert revision == head_revision()
    return differences


def test_a_new_sqlite_catalog_is_made_by_the_migrations_and_matches_the_models(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
    Catalog.create(url).close()
    assert schema_differences(url) == []


@pytest.mark.postgres
def test_a_new_postgres_catalog_is_made_by_the_migrations_and_matches_the_models(postgres_url: str) -> None:
    Catalog.create(postgres_url).close()
    Catalog.open(postgres_url).close()  # already at the head: opening changes nothing
    assert schema_differences(postgres_url) == []


def test_a_data_folder_made_before_migrations_is_upgraded_on_open(
    settings: Settings, identity_files: dict[str, list[Path]]
) -> None:
    """Built as the code before migrations built it: the models' tables (less those added late, here the
    subjects), a schema_version row, no alembic_version table."""
    first, second = next(iter(identity_files.values()))[:2]
    with Engine.init(settings) as engine:
        engine.create_collection(news_spec(), ACTOR)
        engine.ingest("news", [first], ACTOR)
    path = settings.data_dir / "catalog.sqlite3"
    with sqlite3.connect(path) as connection:
        connection.execute("DROP TABLE alembic_version")
        connection.execute("DROP TABLE subject_examples")
        connection.execute("DROP TABLE subjects")
    connection.close()

    with Engine.open(settings) as engine:
        (result,) = engine.search(second, ACTOR, PURPOSE).results
        assert len(result.matches) == 1  # what it held is still there
        assert engine.catalog.audit.verify().ok
    url = f"sqlite:///{path}"
    assert {"subjects", "subject_examples", "alembic_version"} <= set(inspect(create_engine(url)).get_table_names())
    assert schema_differences(url) == []


def test_the_migrations_are_in_the_package() -> None:
    """setuptools packages the revisions (they are modules) and Alembic's template (package data)."""
    assert (MIGRATIONS / "env.py").is_file() and (MIGRATIONS / "script.py.mako").is_file()
    assert any((MIGRATIONS / "versions").glob("initial_schema.py"))
    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert "store/catalog/migrations/script.py.mako" in pyproject


def test_a_folder_at_revision_0001_marks_its_templates_as_the_recipe_it_was_made_with(
    settings: Settings, identity_files: dict[str, list[Path]]
) -> None:
    """Revision 0002 adds template recipes: a folder made with one view, its faces recorded under their
    embedder's name, becomes a folder whose collection and faces are of ``dlib-1view-v1``."""
    first, second = next(iter(identity_files.values()))[:2]
    with Engine.init(settings.replace(template_views=1)) as engine:
        engine.create_collection(news_spec(), ACTOR)
        engine.ingest("news", [first], ACTOR)
    path = settings.data_dir / "catalog.sqlite3"
    with sqlite3.connect(path) as connection:  # as revision 0001 left it
        connection.execute("DROP TABLE reindex_templates")
        connection.execute("ALTER TABLE collections DROP COLUMN template_recipe")
        connection.execute("ALTER TABLE protected_templates DROP COLUMN template_recipe")
        connection.execute("UPDATE faces SET embedder = 'dlib-resnet-v1'")
        connection.execute("UPDATE alembic_version SET version_num = '0001'")
    connection.close()

    with Engine.open(settings) as engine:
        assert engine.collection("news").template_recipe == "dlib-1view-v1"
        assert engine.catalog.template_recipes() == ["dlib-1view-v1"]
        (result,) = engine.search(second, ACTOR, PURPOSE).results
        assert len(result.matches) == 1  # its index, written before recipes, is still used as it is
    assert schema_differences(f"sqlite:///{path}") == []


def test_a_catalog_at_revision_0002_gains_the_keys_consent_attestation_and_keeps_its_keys(settings: Settings) -> None:
    """A data folder made before keys had a consent attestation: its keys still work, with none, after the upgrade."""
    from facesearch.store.keys import KeyStore

    with Engine.init(settings) as engine:
        _, token = KeyStore(engine.catalog).create("ops", "admin", ACTOR)
    path = settings.data_dir / "catalog.sqlite3"
    with sqlite3.connect(path) as connection:
        connection.execute("ALTER TABLE api_keys DROP COLUMN consent_attestation")
        connection.execute("UPDATE alembic_version SET version_num = '0002'")
    connection.close()

    with Engine.open(settings) as engine:
        key = KeyStore(engine.catalog).authenticate(token)
        assert (key.owner, key.consent_attestation) == ("ops", "")
    url = f"sqlite:///{path}"
    assert "consent_attestation" in {c["name"] for c in inspect(create_engine(url)).get_columns("api_keys")}
    assert schema_differences(url) == []
