"""A collection's vectors on a Milvus server (``FACESEARCH_VECTOR_STORE=milvus://HOST:PORT``), over pymilvus.

Milvus is given templates only rotated by the collection's secret rotation (``safeguards.rotation``): probes are
rotated the same way before a search, so distances, and so results, are those of the plain templates. The index
is IVF_FLAT (approximate: ``nprobe`` of its cells compared with each probe); an exhaustive search compares every
cell, which for IVF_FLAT is exact.

Consistency: each call says which writes it must see, so that none waits longer than it must.

- **Strong** (the server waits until it has applied every write made before the call): exhaustive searches (subject
  access and erasure requests, which may not miss a face), id listings, counts, reading stored vectors, and the
  look-up of which ids ``remove`` finds. Strong waits for the server's next time tick: about 200 ms at 1M faces.
- **Read-your-writes** for ordinary searches: Milvus's Customized level, at a guarantee timestamp that this index
  raises, by asking the server for a fresh timestamp, after each of its writes (``add``, ``remove``), when it is
  opened, and when ``see_writes_until_now`` is called: ``store.milvus_indexes`` calls it when it finds the catalog's
  generation moved, that is, when another process wrote. A search waits only until the server has applied what is
  below that timestamp: at once when it already has, as it has for every search but the first after a write
  (Strong waits for the server's next time tick on every call). This is Milvus's Session level done by hand:
  pymilvus's own Session tracks a process's inserts but not its deletes (a 2.3 server answers a delete with no
  timestamp), so a search just after a delete could still find the deleted vector.

``remove`` looks up which of the given ids the collection holds (``id in [...]``, in batches: its cost follows the
ids given, not the collection), then deletes, flushes and compacts, and waits for the compaction, so that the
removed vectors' segments are rewritten without them (the server's garbage collection then deletes the old files:
see ``docs/scale.md`` for the settings that make it prompt).

Any failure of the server (a wrong address, a server that is down or dies mid-call) is raised as
``VectorStoreUnavailableError`` naming the server; the catalog, which holds every template, stays the source of
truth, and ``store.milvus_indexes`` brings the collection back in step with it when the server is back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from facesearch.core.errors import VectorStoreUnavailableError
from facesearch.safeguards.rotation import VectorRotation
from facesearch.store.index.base import Ids, Vectors
from facesearch.store.index.faiss_base import as_matrix, empty_result

BACKEND = "milvus"
ID_FIELD = "id"
VECTOR_FIELD = "vector"
NLIST = 1024
"""IVF cells of each segment's index (Milvus indexes a segment once it holds 1024 rows; smaller ones are scanned)."""
STRONG = "Strong"
"""Every write made before the call: for what may not miss a face, and for listings and counts."""
READ_YOUR_WRITES = "Customized"
"""With a guarantee timestamp: the writes below it (``MilvusIndex.see_writes_until_now``)."""
INSERT_BATCH = 5_000
QUERY_BATCH = 10_000
SEARCH_BATCH = 1_000
MAX_TOP_K = 16_384
"""The most neighbours Milvus returns for one query."""
COMPACTION_WAIT_S = 120.0

T = TypeVar("T")


class _QuietIterator(logging.Filter):
    """pymilvus warns on every id listing that a 2.3 server does not give its iterator a timestamp; it then uses
    its own, which strong consistency makes safe."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "mvccTs" not in record.getMessage()


_QUIET_ITERATOR = _QuietIterator()


class MilvusServer:
    """One connection to the server at ``address``; each call's failure becomes a ``VectorStoreUnavailableError``."""

    def __init__(self, host: str, port: int, *, timeout_s: float = 30.0) -> None:
        self.address = f"milvus://{host}:{port}"
        self.timeout_s = timeout_s
        with self.failures("connecting to"):
            from pymilvus import MilvusClient  # imported only when Milvus is configured

            logging.getLogger("pymilvus.client.iterator.query_iterator").addFilter(_QUIET_ITERATOR)

            self.client = MilvusClient(uri=f"http://{host}:{port}", timeout=timeout_s)

    @contextmanager
    def failures(self, doing: str) -> Iterator[None]:
        """Turns whatever pymilvus or gRPC raise into one clear error naming the server."""
        try:
            yield
        except VectorStoreUnavailableError:
            raise
        except Exception as exc:  # pymilvus raises MilvusException, gRPC errors and plain exceptions alike
            reason = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            raise VectorStoreUnavailableError(
                f"the vector store {self.address} (FACESEARCH_VECTOR_STORE) failed while {doing} it: {reason}. "
                "Check that the Milvus server runs there (deploy/local-cluster status) and try again; nothing "
                "is lost: the catalog holds every template and the index is brought back in step from it"
            ) from None

    def call(self, doing: str, action: Callable[[], T]) -> T:
        with self.failures(doing):
            return action()

    def timestamp(self) -> int:
        """A timestamp from the server's clock: every write it acknowledged before this call has a smaller one
        (0 from a server that cannot allocate one)."""
        with self.failures("reading the clock of"):
            return int(self.client._get_connection().alloc_timestamp())  # MilvusClient has no public call for it

    def close(self) -> None:
        with self.failures("closing the connection to"):
            self.client.close()


class MilvusIndex:
    """The ``VectorIndex`` of one collection, held in the Milvus collection ``name``."""

    backend = BACKEND

    def __init__(
        self, server: MilvusServer, name: str, dimension: int, rotation: VectorRotation, nprobe: int = 256
    ) -> None:
        if rotation.dimension != dimension:
            raise ValueError(f"a rotation of {rotation.dimension} dimensions for an index of {dimension}")
        self.server = server
        self.name = name
        self.dimension = dimension
        self.rotation = rotation
        self.nprobe = min(nprobe, NLIST)
        self._client = server.client
        self._seen_ts: int | None = 0
        """Searches see every write below this server timestamp; None: the server gives none, so search Strong."""
        self.server.call("creating a collection on", self._create)
        self.see_writes_until_now()

    def see_writes_until_now(self) -> None:
        """Make every later search see each write the server acknowledged before now (this process's or another's)."""
        if self._seen_ts is None:
            return
        now = self.server.timestamp()
        self._seen_ts = max(self._seen_ts, now) if now else None

    def _search_consistency(self, exhaustive: bool) -> dict[str, Any]:
        if exhaustive or self._seen_ts is None:
            return {"consistency_level": STRONG}
        return {"consistency_level": READ_YOUR_WRITES, "guarantee_timestamp": self._seen_ts}

    def _create(self) -> None:
        from pymilvus import DataType, MilvusClient

        if self._client.has_collection(self.name):
            self._client.load_collection(self.name)
            return
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field(ID_FIELD, DataType.INT64, is_primary=True)
        schema.add_field(VECTOR_FIELD, DataType.FLOAT_VECTOR, dim=self.dimension)
        index = self._client.prepare_index_params()
        index.add_index(field_name=VECTOR_FIELD, index_type="IVF_FLAT", metric_type="L2", params={"nlist": NLIST})
        self._client.create_collection(self.name, schema=schema, index_params=index, consistency_level=STRONG)
        self._client.load_collection(self.name)

    def __len__(self) -> int:
        rows = self.server.call(
            "counting the vectors on",
            lambda: self._client.query(self.name, filter="", output_fields=["count(*)"], consistency_level=STRONG),
        )
        return int(rows[0]["count(*)"])

    def add(self, ids: Ids, vectors: Vectors) -> None:
        if len(ids) == 0:
            return
        matrix = as_matrix(vectors, self.dimension)
        if matrix.shape[0] != len(ids):
            raise ValueError(f"{len(ids)} ids for {matrix.shape[0]} vectors")
        stored = self.rotation.protect(matrix)
        rows = [
            {ID_FIELD: int(face_id), VECTOR_FIELD: vector.tolist()} for face_id, vector in zip(ids, stored, strict=True)
        ]
        for start in range(0, len(rows), INSERT_BATCH):
            self._insert(rows[start : start + INSERT_BATCH])
        self.see_writes_until_now()

    def _insert(self, rows: list[dict[str, Any]]) -> None:
        self.server.call("inserting vectors into", lambda: self._client.insert(self.name, rows))

    def remove(self, ids: Ids) -> int:
        """Delete, flush and compact: the segments that held the vectors are rewritten without them. Reads only the
        ids given, whatever the collection's size."""
        present = self.held(ids)
        if not present:
            return 0
        for start in range(0, len(present), QUERY_BATCH):
            self._delete(present[start : start + QUERY_BATCH])
        self.compact()
        self.see_writes_until_now()
        return len(present)

    def held(self, ids: Ids) -> list[int]:
        """Those of ``ids`` the collection holds, sorted: queries bounded by them (``QUERY_BATCH`` at a time)."""
        wanted = np.unique(np.asarray(ids, dtype=np.int64))
        return [
            face_id
            for start in range(0, len(wanted), QUERY_BATCH)
            for face_id in self._held(wanted[start : start + QUERY_BATCH])
        ]

    def _held(self, ids: Ids) -> list[int]:
        listed = ", ".join(str(int(i)) for i in ids)
        rows = self.server.call(
            "looking up vectors on",
            lambda: self._client.query(
                self.name, filter=f"{ID_FIELD} in [{listed}]", output_fields=[ID_FIELD], consistency_level=STRONG
            ),
        )
        return sorted(int(row[ID_FIELD]) for row in rows)

    def _delete(self, ids: list[int]) -> None:
        self.server.call("deleting vectors from", lambda: self._client.delete(self.name, ids=ids))

    def compact(self) -> None:
        """Flush, then compact and wait for it, so that deleted rows leave the segments that held them."""
        self.server.call("flushing", lambda: self._client.flush(self.name))
        job = self.server.call("compacting", lambda: self._client.compact(self.name))
        deadline = time.monotonic() + COMPACTION_WAIT_S
        while self.server.call("compacting", lambda: self._client.get_compaction_state(job)) != "Completed":
            if time.monotonic() > deadline:
                raise VectorStoreUnavailableError(
                    f"the vector store {self.server.address} did not finish compacting {self.name} in "
                    f"{COMPACTION_WAIT_S:.0f} s; deleted vectors may still be in its segments until it does"
                )
            time.sleep(0.5)

    def search(self, queries: Vectors, k: int, *, exhaustive: bool = False) -> tuple[npt.NDArray[np.float32], Ids]:
        matrix = as_matrix(queries, self.dimension)
        limit = min(k, MAX_TOP_K)
        if k <= 0 or len(matrix) == 0:
            return empty_result(matrix.shape[0], k)
        params: dict[str, Any] = {"metric_type": "L2", "params": {"nprobe": NLIST if exhaustive else self.nprobe}}
        consistency = self._search_consistency(exhaustive)
        rotated = self.rotation.protect(matrix)
        distances, ids = empty_result(matrix.shape[0], k)
        for start in range(0, len(rotated), SEARCH_BATCH):  # Milvus takes at most 16,384 probes per request
            hits = self._search(rotated[start : start + SEARCH_BATCH], limit, params, consistency)
            for row, found in enumerate(hits, start):
                for column, hit in enumerate(found):
                    ids[row, column] = int(hit["id"])
                    distances[row, column] = np.sqrt(max(float(hit["distance"]), 0.0))  # Milvus's L2 is squared
        return distances, ids

    def _search(
        self, rotated: Vectors, limit: int, params: dict[str, Any], consistency: dict[str, Any]
    ) -> list[list[dict[str, Any]]]:
        return self.server.call(
            "searching",
            lambda: self._client.search(
                self.name,
                data=[row.tolist() for row in rotated],
                limit=limit,
                anns_field=VECTOR_FIELD,
                search_params=params,
                output_fields=[],
                **consistency,
            ),
        )

    def ids(self) -> Ids:
        def every_id() -> list[int]:
            iterator = self._client.query_iterator(
                self.name, batch_size=QUERY_BATCH, filter="", output_fields=[ID_FIELD], consistency_level=STRONG
            )
            found: list[int] = []
            try:
                while batch := iterator.next():
                    found.extend(int(row[ID_FIELD]) for row in batch)
            finally:
                iterator.close()
            return found

        return np.array(self.server.call("listing the ids on", every_id), dtype=np.int64)

    def stored_vectors(self, ids: Ids) -> Vectors:
        """The vectors Milvus holds for ``ids``, as it holds them (rotated), in the order of ``ids``."""
        wanted = [int(i) for i in ids]
        rows = self.server.call(
            "reading vectors from",
            lambda: self._client.get(self.name, ids=wanted, output_fields=[VECTOR_FIELD], consistency_level=STRONG),
        )
        by_id = {int(row[ID_FIELD]): row[VECTOR_FIELD] for row in rows}
        return np.array([by_id[i] for i in wanted], dtype=np.float32).reshape(len(wanted), self.dimension)

    def drop(self) -> None:
        """Drop the collection from the server."""
        self.server.call("dropping a collection from", lambda: self._client.drop_collection(self.name))

    def serialize(self) -> bytes:
        """Milvus holds the vectors; there is nothing to write to an index file."""
        return b""
