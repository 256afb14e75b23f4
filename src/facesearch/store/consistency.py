"""Keeps each collection's vector index in step with the catalog, across crashes.

The order of every change, and why it is safe:

1. The catalog transaction commits first (faces added or removed, and the collection's
   ``index_generation`` bumped in the same transaction). The catalog is the source of truth and
   holds every template, so the index can always be derived from it.
2. The in-memory index is changed to match, and remembers the generation it now reflects.
3. The index is saved (atomically, see ``index.files``) at the end of each ingest or removal; its file
   records that generation.

A crash after 1 and before 3 leaves an index file whose generation differs from the catalog's. When
a collection's index is opened, that mismatch (or a missing or unreadable file) triggers
``reconcile``: ids in the index but not in the catalog are removed, ids in the catalog but not in
the index are added from the stored templates, and the result is saved. Searches only ever see a
reconciled index, so the two never disagree from the outside. Face ids are never reused
(AUTOINCREMENT), so a stale id cannot point at a different face.

A reindex (``store/catalog/reindex.py``) replaces every template of a collection and its recipe in one catalog
transaction, keeping the ids: the index records the recipe it holds, and an index of another recipe than the
catalog's (in memory or in its file) is rebuilt whole from the catalog instead of reconciled by ids.

Threads: searches of an index may run side by side; changes may not run beside them or each other. Within a
process the caller keeps writes apart from searches (the service's readers-writer lock); what a search itself
may change here (opening a collection's index, catching up with a write made by another process) happens
under this object's own lock, the catch-up on a copy that replaces the index, so searches already under way
finish on the index they started with.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facesearch.safeguards.vault import CollectionCipher
from facesearch.store.catalog.store import Catalog
from facesearch.store.index.base import Ids, VectorIndex, Vectors
from facesearch.store.index.files import IndexFileError, read_index_file, write_index_file
from facesearch.store.index.policy import IndexPolicy
from facesearch.vision.recipes import recipe_named

log = logging.getLogger(__name__)

INDEX_BLOB = "vector-index"


@dataclass(frozen=True)
class Reconciliation:
    added: int
    removed: int


@dataclass
class _Open:
    index: VectorIndex
    generation: int
    recipe: str
    dirty: bool = False


@dataclass
class CollectionIndexes:
    """The vector index of each collection, opened on first use and reconciled with the catalog.

    Index files are encrypted with the collection's key (templates never lie on disk in the clear).
    """

    catalog: Catalog
    folder: Path
    recipe_of: Callable[[int], str]
    """The catalog's template recipe of a collection (by id)."""
    cipher: Callable[[int], CollectionCipher]
    policy: IndexPolicy = field(default_factory=IndexPolicy)
    _open: dict[int, _Open] = field(default_factory=dict)
    _guard: threading.RLock = field(default_factory=threading.RLock)

    def path(self, collection_id: int) -> Path:
        return self.folder / f"collection-{collection_id}.fsindex"

    def index(self, collection_id: int) -> VectorIndex:
        """The collection's index, brought up to the catalog's generation first (another process may
        have written since this one opened it; on a copy, so that searches under way are not disturbed)."""
        with self._guard:
            state = self._opened(collection_id)
            if state.generation != self.catalog.generation(collection_id):
                if self.recipe_of(collection_id) == state.recipe:
                    backend = state.index.backend
                    state.index = self.policy.read(backend, state.index.serialize(), self._dimension(state.recipe))
                self._catch_up(collection_id, state)
            return state.index

    def add(self, collection_id: int, ids: Ids, vectors: Vectors, generation: int) -> None:
        """Step 2 after the catalog committed ``ids`` as ``generation``."""
        with self._guard:
            state = self._opened(collection_id)
            if state.generation == generation - 1:
                state.index.add(ids, vectors)
                state.generation = generation
                state.dirty = True
            elif state.generation < generation:  # another writer committed in between: derive from the catalog
                self._catch_up(collection_id, state)
            self._resize(collection_id, state)

    def remove(self, collection_id: int, ids: Ids, generation: int) -> None:
        with self._guard:
            state = self._opened(collection_id)
            if state.generation == generation - 1:
                state.index.remove(ids)
                state.generation = generation
                state.dirty = True
            elif state.generation < generation:
                self._catch_up(collection_id, state)
            self._resize(collection_id, state)

    def save(self) -> None:
        """Step 3: write every index changed since it was last saved."""
        with self._guard:
            for collection_id, state in self._open.items():
                if state.dirty:
                    self._write(collection_id, state)
                    state.dirty = False

    def rebuild(self, collection_id: int) -> None:
        """Build the collection's index anew from the catalog and save it (after a reindex changed its templates)."""
        with self._guard:
            self._open.pop(collection_id, None)
            recipe = self.recipe_of(collection_id)
            state = _Open(self._build(collection_id, recipe), self.catalog.generation(collection_id), recipe)
            self._write(collection_id, state)
            self._open[collection_id] = state

    def drop(self, collection_id: int) -> None:
        with self._guard:
            self._open.pop(collection_id, None)
            self.path(collection_id).unlink(missing_ok=True)

    def close(self) -> None:
        """Release what the indexes hold open beyond this process (nothing for index files)."""

    def reconcile(self, collection_id: int, index: VectorIndex) -> Reconciliation:
        """Make ``index`` hold exactly the catalog's faces of this collection."""
        catalog_ids = self.catalog.face_ids(collection_id)
        index_ids = index.ids()
        extra = np.setdiff1d(index_ids, catalog_ids, assume_unique=True)
        missing = np.setdiff1d(catalog_ids, index_ids, assume_unique=True)
        index.remove(extra)
        if len(missing):
            unseal = self.cipher(collection_id).open_template
            ids, vectors = self.catalog.embeddings(collection_id, unseal, missing.tolist())
            index.add(ids, vectors)
        return Reconciliation(added=len(missing), removed=len(extra))

    def _write(self, collection_id: int, state: _Open) -> None:
        sealed = self.cipher(collection_id).seal(state.index.serialize(), INDEX_BLOB)
        header = {
            "backend": state.index.backend,
            "dimension": self._dimension(state.recipe),
            "recipe": state.recipe,
            "count": len(state.index),
            "generation": state.generation,
            "payload_bytes": len(sealed),
            "encryption": "AES-256-GCM, collection key",
        }
        write_index_file(self.path(collection_id), header, sealed)

    def _read(self, collection_id: int, recipe: str) -> tuple[VectorIndex, int]:
        stored = read_index_file(self.path(collection_id))
        dimension = self._dimension(recipe)
        held = stored.header.get("recipe")  # files written before recipes: dlib's 128-d, the folder's own recipe
        if (held is not None and held != recipe) or stored.header.get("dimension") != dimension:
            raise IndexFileError(f"it holds templates of recipe {held or 'unrecorded'}, the catalog's are {recipe}")
        payload = self.cipher(collection_id).open(stored.payload, INDEX_BLOB)
        return self.policy.read(str(stored.header.get("backend")), payload, dimension), stored.generation

    @staticmethod
    def _dimension(recipe: str) -> int:
        return recipe_named(recipe).dimension

    def _build(self, collection_id: int, recipe: str) -> VectorIndex:
        """A new index holding exactly the catalog's faces, of the kind the policy picks for their number."""
        ids, vectors = self.catalog.embeddings(collection_id, self.cipher(collection_id).open_template)
        index = self.policy.new_index(self._dimension(recipe), vectors)
        index.add(ids, vectors)
        return index

    def _resize(self, collection_id: int, state: _Open) -> bool:
        """Switch exact <-> approximate, or re-train the IVF cells, when the collection's size asks for it;
        says whether it did."""
        if not self.policy.needs_rebuild(state.index):
            return False
        before = state.index.backend
        state.index = self._build(collection_id, state.recipe)
        state.dirty = True
        log.info("collection #%s: vector index rebuilt (%s -> %s)", collection_id, before, state.index.backend)
        return True

    def _catch_up(self, collection_id: int, state: _Open) -> None:
        state.generation = self.catalog.generation(collection_id)
        recipe = self.recipe_of(collection_id)
        if recipe != state.recipe:  # another process reindexed the collection: every template changed
            state.index, state.recipe = self._build(collection_id, recipe), recipe
        else:
            self.reconcile(collection_id, state.index)
        state.dirty = True

    def _opened(self, collection_id: int) -> _Open:
        state = self._open.get(collection_id)
        if state is not None:
            return state
        expected = self.catalog.generation(collection_id)
        recipe = self.recipe_of(collection_id)
        path = self.path(collection_id)
        try:
            index, generation = self._read(collection_id, recipe)
        except IndexFileError as problem:
            if path.exists() or expected > 0:
                log.warning(
                    "rebuilding the vector index of collection #%s from the catalog: %s", collection_id, problem
                )
            index, generation = self._build(collection_id, recipe), -1
        state = _Open(index, expected, recipe)
        if generation != expected:
            result = self.reconcile(collection_id, index)
            if result.added or result.removed:
                log.warning(
                    "vector index of collection #%s was at generation %s, catalog at %s: reconciled (+%s, -%s)",
                    collection_id,
                    generation,
                    expected,
                    result.added,
                    result.removed,
                )
            self._write(collection_id, state)
        if self._resize(collection_id, state):
            self._write(collection_id, state)
        self._open[collection_id] = state
        return state
