"""Each collection's cipher, its key unwrapped by the master key on first use and kept for the process."""

from __future__ import annotations

from facesearch.safeguards.vault import CollectionCipher, MasterKey
from facesearch.store.catalog.store import Catalog

OBJECTIONS_COLLECTION_ID = 0
"""The protected templates of people who objected (``accountability/rights.py``) live under a key of their own."""
OBJECTIONS_KEY = "objections_key"
_OBJECTIONS_NAME = "__objections__"


class Ciphers:
    def __init__(self, catalog: Catalog, master_key: MasterKey) -> None:
        self._catalog = catalog
        self._master_key = master_key
        self._unwrapped: dict[int, CollectionCipher] = {}

    def __call__(self, collection_id: int) -> CollectionCipher:
        """The collection's cipher (its key unwrapped by the master key on first use)."""
        if collection_id not in self._unwrapped:
            if collection_id == OBJECTIONS_COLLECTION_ID:
                name, wrapped = _OBJECTIONS_NAME, self._objections_key()
            else:
                name, wrapped = self._catalog.collection_key(collection_id)
            self._unwrapped[collection_id] = self._master_key.collection_cipher(collection_id, name, wrapped)
        return self._unwrapped[collection_id]

    def forget(self, collection_id: int) -> None:
        """Drop a deleted collection's cipher: its wrapped key is gone from the catalog."""
        self._unwrapped.pop(collection_id, None)

    def _objections_key(self) -> bytes:
        wrapped_hex = self._catalog.meta(OBJECTIONS_KEY)
        if wrapped_hex is None:
            wrapped_hex = self._master_key.new_collection_key(_OBJECTIONS_NAME).hex()
            self._catalog.set_meta(OBJECTIONS_KEY, wrapped_hex)
        return bytes.fromhex(wrapped_hex)
