"""Encryption at rest: AES-256-GCM with one key per collection, each wrapped by a master key.

The master key (32 random bytes, base64) comes from ``FACESEARCH_MASTER_KEY`` or a key file named by
``FACESEARCH_MASTER_KEY_FILE``; it is never written into the data folder, and a key file inside the
data folder is refused. Collection keys are stored only wrapped (encrypted) by the master key, so
deleting a collection's wrapped key makes everything encrypted under it unreadable (crypto-shredding).
Every ciphertext is bound to what it belongs to by its associated data (collection id and purpose of
the blob), so a blob moved to another row or collection does not decrypt.

The master key also keys the audit log's chain (``audit_mac_key``, derived with HKDF under its own label), and
the value that checks the key records from which entry on that chain is keyed: only the master key makes one.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from facesearch.core.errors import DataFolderError, InvalidValueError
from facesearch.safeguards.rotation import VectorRotation

KEY_BYTES = 32
NONCE_BYTES = 12
_KEY_CHECK_PLAINTEXT = b"facesearch master key check v1"
"""The check of data folders made before the audit chain was keyed."""
_KEYED_CHECK_PREFIX = b"facesearch master key check v2; audit chain keyed from entry "
_AUDIT_MAC_LABEL = b"facesearch audit chain mac v1"
_ROTATION_LABEL = b"facesearch vector rotation key v1"
TEMPLATE_DTYPE = np.dtype("<f4")


def generate_master_key() -> str:
    """A new random master key, base64 encoded, for ``FACESEARCH_MASTER_KEY`` or a key file."""
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()


def _seal(key: bytes, plaintext: bytes, associated: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, associated)


def _open(key: bytes, sealed: bytes, associated: bytes) -> bytes:
    return AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], associated)


@dataclass(frozen=True)
class MasterKey:
    _key: bytes = field(repr=False)

    @classmethod
    def parse(cls, text: str, source: str) -> MasterKey:
        try:
            key = base64.b64decode(text.strip(), validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if len(key) != KEY_BYTES:
            raise InvalidValueError(
                f"the master key in {source} is not {KEY_BYTES} bytes of base64; "
                "create one with 'facesearch key generate'"
            )
        return cls(key)

    @classmethod
    def load(cls, key: str, key_file: str, data_dir: Path) -> MasterKey:
        """The master key from the setting or from the key file (never one stored in the data folder)."""
        if key:
            return cls.parse(key, "FACESEARCH_MASTER_KEY")
        if not key_file:
            raise DataFolderError(
                "no master key: set FACESEARCH_MASTER_KEY or FACESEARCH_MASTER_KEY_FILE "
                "(create a key with 'facesearch key generate --out PATH', kept outside the data folder)"
            )
        path = Path(key_file).expanduser().resolve()
        if path.is_relative_to(data_dir.expanduser().resolve()):
            raise InvalidValueError(
                f"master key file {path} is inside the data folder; keep it elsewhere, or a copy of the "
                "data folder would carry its own key"
            )
        try:
            text = path.read_text()
        except OSError as exc:
            raise DataFolderError(f"cannot read master key file {path} ({exc.strerror}); check the path") from None
        return cls.parse(text, str(path))

    def key_check(self, audit_keyed_from: int) -> bytes:
        """A value stored in the catalog so that opening it with another key fails before anything changes;
        it records the first audit entry whose chain is keyed (``audit_mac_key``), which only this key can."""
        return _seal(self._key, _KEYED_CHECK_PREFIX + str(audit_keyed_from).encode(), b"key-check")

    def verify(self, check: bytes) -> int | None:
        """Fail unless ``check`` was made with this key; return the first keyed audit entry it records (None for
        a data folder made before the audit chain was keyed)."""
        try:
            plaintext = _open(self._key, check, b"key-check")
        except InvalidTag:
            plaintext = b""
        if plaintext == _KEY_CHECK_PLAINTEXT:
            return None
        if plaintext.startswith(_KEYED_CHECK_PREFIX) and plaintext[len(_KEYED_CHECK_PREFIX) :].isdigit():
            return int(plaintext[len(_KEYED_CHECK_PREFIX) :])
        raise DataFolderError(
            "the master key does not open this data folder; use the key it was created with (nothing was changed)"
        )

    def audit_mac_key(self) -> bytes:
        """The key of the audit log's chain: derived, so that it is never the key that wraps collection keys."""
        return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=_AUDIT_MAC_LABEL).derive(self._key)

    def new_collection_key(self, collection_name: str) -> bytes:
        """A fresh collection key, returned wrapped (only the wrapped form is ever stored)."""
        return _seal(self._key, secrets.token_bytes(KEY_BYTES), b"collection-key:" + collection_name.encode())

    def collection_cipher(self, collection_id: int, collection_name: str, wrapped: bytes) -> CollectionCipher:
        try:
            key = _open(self._key, wrapped, b"collection-key:" + collection_name.encode())
        except InvalidTag:
            raise DataFolderError(
                f"the key of collection {collection_name!r} cannot be unwrapped: the master key is wrong "
                "or the catalog was altered"
            ) from None
        return CollectionCipher(key, collection_id)


@dataclass(frozen=True)
class CollectionCipher:
    _key: bytes = field(repr=False)
    collection_id: int

    def seal_template(self, template: npt.NDArray[np.float32]) -> bytes:
        raw = np.asarray(template, dtype=TEMPLATE_DTYPE).tobytes()
        return _seal(self._key, raw, self._associated("template"))

    def open_template(self, sealed: bytes) -> npt.NDArray[np.float32]:
        raw = self._open(sealed, "template")
        return np.frombuffer(raw, dtype=TEMPLATE_DTYPE).astype(np.float32)

    def vector_rotation(self, dimension: int) -> VectorRotation:
        """The collection's secret rotation of templates (``safeguards.rotation``), derived from its key."""
        secret = HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=_ROTATION_LABEL).derive(self._key)
        return VectorRotation.from_secret(secret, dimension)

    def seal(self, data: bytes, purpose: str) -> bytes:
        return _seal(self._key, data, self._associated(purpose))

    def open(self, sealed: bytes, purpose: str) -> bytes:
        return self._open(sealed, purpose)

    def _open(self, sealed: bytes, purpose: str) -> bytes:
        try:
            return _open(self._key, sealed, self._associated(purpose))
        except InvalidTag:
            raise DataFolderError(
                f"encrypted {purpose} of collection #{self.collection_id} does not decrypt: it was altered "
                "or moved from another collection"
            ) from None

    def _associated(self, purpose: str) -> bytes:
        return f"{purpose}:{self.collection_id}".encode()
