"""Opening a data folder: the master key is checked before anything is written, the audit log's chain is keyed
with it (a folder made before the chain was keyed is switched, and the switch audited), and the template views
the folder was made with are the ones used."""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy.exc import IntegrityError, OperationalError

from facesearch.core.errors import DataFolderError
from facesearch.core.settings import Settings
from facesearch.safeguards.audit import AUDIT_ACTOR, AUDIT_KEYED_CHANGE, AuditChain, ConfigurationEvent
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
    if catalog.meta(KEY_CHECK) is None:
        catalog.set_meta(TEMPLATE_VIEWS_KEY, str(settings.template_views))
    _key_audit_chain(catalog, master_key)
    _finish_owed_scrub(catalog)
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
    if catalog.meta(KEY_CHECK) is None:
        catalog.close()
        raise DataFolderError(f"{settings.data_dir} has no master key check; it was not made by 'facesearch init'")
    try:
        _key_audit_chain(catalog, master_key)
        _finish_owed_scrub(catalog)
    except Exception:
        catalog.close()
        raise
    return catalog, master_key


def _finish_owed_scrub(catalog: Catalog) -> None:
    """Once the key is known to be right, before anything else is done: shred what a process killed after
    deleting personal data left behind. If another process keeps the catalog busy, opening goes on and the
    next open tries again."""
    try:
        if catalog.finish_owed_scrub():
            logging.getLogger(__name__).info("finished shredding the bytes an interrupted deletion left behind")
    except DataFolderError as busy:
        logging.getLogger(__name__).warning("%s: the deleted bytes will be shredded on a later open", busy.message)


def _key_audit_chain(catalog: Catalog, master_key: MasterKey) -> None:
    """Verify the master key against the catalog and give the audit log its keyed chain; a new data folder is
    keyed from its first entry, one made before the chain was keyed from its next entry (the audited switch).
    Two processes may switch at once: one wins, the other reads the winner's check."""
    mac_key = master_key.audit_mac_key()
    for _ in range(5):
        check = catalog.meta(KEY_CHECK)
        keyed_from = master_key.verify(bytes.fromhex(check)) if check is not None else None
        if keyed_from is not None:
            catalog.audit.use_chain(AuditChain(mac_key, keyed_from))
            return
        if check is not None:
            logging.getLogger(__name__).info("keying this data folder's audit chain with its master key")
        try:
            chain = catalog.audit.start_keyed_chain(mac_key, KEY_CHECK, _key_check(master_key), _keyed_switch)
        except (IntegrityError, OperationalError):
            continue  # another process switched first
        catalog.audit.use_chain(chain)
        return
    raise DataFolderError("could not key the audit chain (the catalog is busy); open the data folder again")


def _key_check(master_key: MasterKey) -> Callable[[int], str]:
    return lambda keyed_from: master_key.key_check(keyed_from).hex()


def _keyed_switch(keyed_from: int) -> ConfigurationEvent:
    return ConfigurationEvent(
        actor=AUDIT_ACTOR,
        change=AUDIT_KEYED_CHANGE,
        fields={"keyed_from": keyed_from, "scheme": "hmac-sha256, key derived from the master key"},
    )


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
