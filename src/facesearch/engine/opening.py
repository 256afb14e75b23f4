"""Opening a data folder: the master key is checked before anything is written, and the template views the
folder was made with are the ones used."""

from __future__ import annotations

import logging

from facesearch.core.errors import DataFolderError
from facesearch.core.settings import Settings
from facesearch.safeguards.vault import MasterKey
from facesearch.store.catalog.store import Catalog, peek_sqlite_meta
from facesearch.store.private import FILE_MODE, FOLDER_MODE, private_file, private_folder, tighten

KEY_CHECK = "master_key_check"
TEMPLATE_VIEWS_KEY = "template_views"
"""The views each template of this data folder averages (``vision/templates.py``), fixed when the folder is made."""
CATALOG_FILE = "catalog.sqlite3"


def create_catalog(settings: Settings) -> tuple[Catalog, MasterKey]:
    """Create (or open) the data folder and its catalog, bound to the configured master key."""
    master_key = MasterKey.load(settings.master_key, settings.master_key_file, settings.data_dir)
    _check_key_before_opening(settings, master_key)
    try:
        private_folder(settings.data_dir)
        private_folder(settings.index_dir)
        if not settings.database_url:  # SQLite gives its WAL and shared-memory files the catalog's mode
            private_file(settings.data_dir / CATALOG_FILE)
    except OSError as exc:
        raise DataFolderError(
            f"cannot create data folder {settings.data_dir} ({exc.strerror}); choose another"
        ) from None
    catalog = Catalog.create(settings.catalog_url)
    check = catalog.meta(KEY_CHECK)
    if check is None:
        catalog.set_meta(KEY_CHECK, check := master_key.key_check().hex())
        catalog.set_meta(TEMPLATE_VIEWS_KEY, str(settings.template_views))
    master_key.verify(bytes.fromhex(check))
    return catalog, master_key


def open_catalog(settings: Settings) -> tuple[Catalog, MasterKey]:
    """Open an initialised data folder; fails, changing nothing, without the right master key."""
    if not settings.database_url and not (settings.data_dir / CATALOG_FILE).exists():
        raise DataFolderError(
            f"{settings.data_dir} is not a facesearch data folder; run 'facesearch init' "
            "or set FACESEARCH_DATA_DIR / --data-dir"
        )
    master_key = MasterKey.load(settings.master_key, settings.master_key_file, settings.data_dir)
    _check_key_before_opening(settings, master_key)
    _tighten_existing(settings)
    catalog = Catalog.open(settings.catalog_url)
    check = catalog.meta(KEY_CHECK)
    if check is None:
        catalog.close()
        raise DataFolderError(f"{settings.data_dir} has no master key check; it was not made by 'facesearch init'")
    master_key.verify(bytes.fromhex(check))
    return catalog, master_key


def recorded_views(catalog: Catalog, settings: Settings) -> int:
    """The data folder's template views. A folder made before templates had views holds dlib's one-view
    templates, and is recorded as such on first open."""
    recorded = catalog.meta(TEMPLATE_VIEWS_KEY)
    if recorded is None:
        catalog.set_meta(TEMPLATE_VIEWS_KEY, recorded := "1")
    views = int(recorded)
    if views != settings.template_views:
        logging.getLogger(__name__).info(
            "this data folder's templates average %d view(s), as it was made; template_views=%d applies to new "
            "data folders only",
            views,
            settings.template_views,
        )
    return views


def redact(url: str) -> str:
    """A database URL without its password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        credentials, host = rest.rsplit("@", 1)
        user = credentials.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url


def _tighten_existing(settings: Settings) -> None:
    """A data folder made by an older facesearch, world-readable, is made owner-only when its owner opens it."""
    tighten(settings.data_dir, FOLDER_MODE)
    for name in (CATALOG_FILE, CATALOG_FILE + "-wal", CATALOG_FILE + "-shm"):
        tighten(settings.data_dir / name, FILE_MODE)


def _check_key_before_opening(settings: Settings, master_key: MasterKey) -> None:
    """Check the master key against a SQLite catalog before opening it for writing, so that a wrong key
    leaves the data folder exactly as it was."""
    path = settings.data_dir / CATALOG_FILE
    if settings.database_url or not path.exists():
        return
    check = peek_sqlite_meta(path, KEY_CHECK)
    if check is not None:
        master_key.verify(bytes.fromhex(check))
