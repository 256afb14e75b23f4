"""Each collection's vectors on a Milvus server, kept in step with the catalog (``FACESEARCH_VECTOR_STORE``).

The same order as ``store.consistency``: the catalog commits first (it holds every template), then Milvus is
changed to match. Milvus keeps no record of the catalog generation it reflects, so a collection's vectors are
reconciled with the catalog, id for id, whenever this process first opens it or finds the catalog's generation
ahead of what it last wrote: after a crash, after a write that failed because the server was down or died, after
another process's write. After such a catch-up, the collection's next searches wait until the server has applied
every write acknowledged before it (``MilvusIndex.see_writes_until_now``): a search made after another process's
write sees it, while searches in between run at read-your-writes, not Strong, consistency. The vectors are
rotated by the collection's key before they reach the server (``index.milvus``); a deleted collection's Milvus
collection is dropped, and if the server cannot be reached then, what it keeps can no longer be matched: the key
that rotated it is destroyed with the collection.

Each data folder's collections get names of their own on the server (``facesearch_<namespace>_<id>_<recipe>``, the
namespace recorded in the catalog), so that several data folders can share one server; a reindex to another recipe
fills a new one and drops the old.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

from facesearch.core.errors import VectorStoreUnavailableError
from facesearch.safeguards.vault import CollectionCipher
from facesearch.store.catalog.store import Catalog
from facesearch.store.consistency import CollectionIndexes, _Open
from facesearch.store.index.base import Ids, VectorIndex, Vectors
from facesearch.store.index.milvus import MilvusIndex, MilvusServer
from facesearch.store.index.policy import IndexPolicy

log = logging.getLogger(__name__)

NAMESPACE_KEY = "milvus_namespace"


class MilvusIndexes(CollectionIndexes):
    def __init__(
        self,
        catalog: Catalog,
        folder: Path,
        recipe_of: Callable[[int], str],
        cipher: Callable[[int], CollectionCipher],
        policy: IndexPolicy,
        server: MilvusServer,
    ) -> None:
        super().__init__(catalog, folder, recipe_of, cipher, policy)
        self.server = server
        namespace = catalog.meta(NAMESPACE_KEY)
        if namespace is None:
            namespace = secrets.token_hex(6)
            catalog.set_meta(NAMESPACE_KEY, namespace)
        self.namespace = namespace

    def collection_name(self, collection_id: int, recipe: str) -> str:
        """Milvus allows letters, digits and underscores in a name: the recipe's other characters become ``_``."""
        return self._prefix(collection_id) + re.sub(r"\W", "_", recipe)

    def _prefix(self, collection_id: int) -> str:
        return f"facesearch_{self.namespace}_{collection_id}_"

    def _drop_held(self, collection_id: int, keep: str | None = None) -> None:
        """Drop the server's collections of ``collection_id`` (but ``keep``): those of a recipe it no longer has."""
        prefix = self._prefix(collection_id)
        names = self.server.call("listing the collections of", self.server.client.list_collections)
        for name in names:
            if name.startswith(prefix) and name != keep:
                self.server.call("dropping a collection from", partial(self.server.client.drop_collection, name))

    def index(self, collection_id: int) -> VectorIndex:
        """The collection's vectors, first brought up to the catalog's generation (the server is changed in
        place: it serves searches under way itself)."""
        with self._guard, self._forgotten_on_failure(collection_id):
            state = self._opened(collection_id)
            if state.generation != self.catalog.generation(collection_id):
                self._catch_up(collection_id, state)
            return state.index

    def add(self, collection_id: int, ids: Ids, vectors: Vectors, generation: int) -> None:
        with self._guard, self._forgotten_on_failure(collection_id):
            super().add(collection_id, ids, vectors, generation)

    def remove(self, collection_id: int, ids: Ids, generation: int) -> None:
        with self._guard, self._forgotten_on_failure(collection_id):
            super().remove(collection_id, ids, generation)

    @contextmanager
    def _forgotten_on_failure(self, collection_id: int) -> Iterator[None]:
        """A failed call leaves the collection to be opened, so reconciled, afresh: the server may have lost or
        kept any part of it (a restarted server replays its log from its last write to disk)."""
        try:
            yield
        except VectorStoreUnavailableError:
            self._open.pop(collection_id, None)
            raise

    def drop(self, collection_id: int) -> None:
        with self._guard:
            self._open.pop(collection_id, None)
            try:
                self._drop_held(collection_id)
            except VectorStoreUnavailableError as problem:
                log.warning("%s: its vectors stay there, unmatchable (the collection key is destroyed)", problem)

    def close(self) -> None:
        self.server.close()

    def _open_index(self, collection_id: int, recipe: str) -> MilvusIndex:
        dimension = self._dimension(recipe)
        rotation = self.cipher(collection_id).vector_rotation(dimension)
        name = self.collection_name(collection_id, recipe)
        return MilvusIndex(self.server, name, dimension, rotation, self.policy.nprobe)

    def _read(self, collection_id: int, recipe: str) -> tuple[VectorIndex, int]:
        """The server's collection, as of no known generation: ``_opened`` reconciles it with the catalog."""
        index = self._open_index(collection_id, recipe)
        self._drop_held(collection_id, keep=self.collection_name(collection_id, recipe))
        return index, -1

    def _build(self, collection_id: int, recipe: str) -> VectorIndex:
        index = self._open_index(collection_id, recipe)
        self.reconcile(collection_id, index)
        self._drop_held(collection_id, keep=self.collection_name(collection_id, recipe))
        return index

    def _catch_up(self, collection_id: int, state: _Open) -> None:
        """As for an index file; then the index's searches see every write made so far, this process's or not."""
        super()._catch_up(collection_id, state)
        if isinstance(state.index, MilvusIndex):
            state.index.see_writes_until_now()

    def _write(self, collection_id: int, state: _Open) -> None:
        """Nothing to write: the server keeps what it was given (its write-ahead log survives a crash)."""

    def _resize(self, collection_id: int, state: _Open) -> bool:
        """Milvus's index serves every size: no switch to make."""
        return False
