"""Search and erasure on Milvus against local faiss, side by side on one gallery (``bench/scale_out.py --part search``).

The gallery is synthetic faces that behave like real ones (``bench/face_model.py``: a person's centre plus
within-person noise fitted to real templates, so a person's photos lie 0.42 apart at the median, 96 %
within 0.6, and strangers 0.80, 5 % under 0.65), ``--per-person`` photos of each person. The same vectors go into:

- facesearch's exact index (``FlatIndex``, faiss's ``IndexFlatL2``: what a collection of up to
  ``index_exact_max`` faces gets, 1M by default);
- facesearch's IVF index (``IvfIndex`` at the product's cells and nprobe: what a larger collection gets);
- facesearch's ``MilvusIndex`` on the server at ``--vector-store`` (IVF_FLAT, 1,024 cells, the collection's
  rotation: the product's settings), in a collection named ``bench_...``, dropped at the end. Its searches are
  timed as facesearch makes them (read-your-writes consistency; exhaustive ones Strong), and side by side at
  Strong (how every search ran before) and at Bounded (which may miss the last second's writes: not the product's).

For each: single-probe search p50/p95 over ``--probes`` new photos of gallery people (each searched alone, as the
service does, top ``K``), the recall of the probe person's own faces within the 0.6 threshold (of those exact
search finds), memory per face (faiss: the index's bytes; Milvus: the server process's resident memory after the
gallery is inserted, flushed and indexed, less before: the server's own growth and release outweigh the faces
below about a million, where it can even be negative) and the erasure of one person's faces (faiss ``remove``;
Milvus ``MilvusIndex.remove``: find which of the ids it holds, delete, flush, compact and wait for the
compaction). For Milvus the finding is also timed alone, both ways: a query bounded by the person's ids (what
``remove`` does) and a listing of every id of the collection (what it did before), whose cost grows with the
collection.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlparse

import faiss
import numpy as np
import numpy.typing as npt

from bench.face_model import MODELS, FaceModel
from bench.search_scale import THRESHOLD, Truth, recall, truth
from facesearch.safeguards.rotation import VectorRotation
from facesearch.store.index.flat import FlatIndex
from facesearch.store.index.ivf import IvfIndex
from facesearch.store.index.milvus import STRONG, VECTOR_FIELD, MilvusIndex, MilvusServer
from facesearch.store.index.policy import IndexPolicy

K = 100
"""Neighbours each search returns: a person's own photos are among the nearest, strangers within 0.6 after."""
ADD_BATCH = 50_000
EXHAUSTIVE_TIMED = 100
INDEX_WAIT_S = 1800.0
Floats = npt.NDArray[np.float32]
Search = Callable[[Floats], tuple[Floats, npt.NDArray[np.int64]]]


@dataclass(frozen=True)
class Row:
    method: str
    load_s: float
    """Adding (and for Milvus flushing and indexing) the gallery."""
    bytes_per_face: float
    p50_ms: float
    p95_ms: float
    same_person_recall: float
    erase_s: float
    """Removing one person's faces."""


@dataclass(frozen=True)
class Lookup:
    """Finding which of one person's ids Milvus holds, the two ways (seconds)."""

    bounded_s: float
    listing_s: float


def milvus_rss(pid: int) -> int:
    """Resident bytes of the Milvus server process (and its children: a standalone server is one process)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise SystemExit(f"no VmRSS for process {pid}")


def timed_probes(search: Search, probes: Floats) -> tuple[float, float]:
    """p50 and p95 in ms of searching each probe alone (faiss on one thread: the service runs a search per request)."""
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    times = []
    try:
        for probe in probes:
            started = time.perf_counter()
            search(probe[None, :])
            times.append((time.perf_counter() - started) * 1000)
    finally:
        faiss.omp_set_num_threads(threads)
    return float(np.percentile(times, 50)), float(np.percentile(times, 95))


def own_recall(search: Search, probes: Floats, exact: Truth) -> float:
    distances, ids = search(probes)
    found = [set(row[d <= THRESHOLD].tolist()) for row, d in zip(ids, distances, strict=True)]
    return recall(exact.same_person, found)


def index_search(index: MilvusIndex, *, exhaustive: bool) -> Search:
    def search(queries: Floats) -> tuple[Floats, npt.NDArray[np.int64]]:
        return index.search(queries, K, exhaustive=exhaustive)

    return search


def level_search(index: MilvusIndex, level: str) -> Search:
    """``index.search`` at the consistency ``level`` instead of the product's: Strong waits for the server's next
    time tick; Bounded does not wait, and may miss the last second's writes."""

    def search(queries: Floats) -> tuple[Floats, npt.NDArray[np.int64]]:
        rotated = index.rotation.protect(queries)
        hits = index.server.client.search(
            index.name,
            data=[row.tolist() for row in rotated],
            limit=K,
            anns_field=VECTOR_FIELD,
            search_params={"metric_type": "L2", "params": {"nprobe": index.nprobe}},
            output_fields=[],
            consistency_level=level,
        )
        distances = np.full((len(queries), K), np.inf, dtype=np.float32)
        ids = np.full((len(queries), K), -1, dtype=np.int64)
        for row, found in enumerate(hits):
            for column, hit in enumerate(found):
                ids[row, column] = int(hit["id"])
                distances[row, column] = np.sqrt(max(float(hit["distance"]), 0.0))
        return distances, ids

    return search


def timed_lookup(index: MilvusIndex, person: npt.NDArray[np.int64]) -> Lookup:
    """Which of ``person`` the collection holds: by a query bounded by them, and by listing every id."""
    started = time.perf_counter()
    bounded = index.held(person)
    bounded_s = time.perf_counter() - started
    started = time.perf_counter()
    listed = np.intersect1d(person, index.ids()).tolist()
    listing_s = time.perf_counter() - started
    if bounded != listed or len(bounded) != len(person):
        raise SystemExit(f"the look-ups disagree: {bounded} and {listed} of {person.tolist()}")
    return Lookup(bounded_s, listing_s)


def wait_indexed(index: MilvusIndex, faces: int) -> None:
    """Flush, then wait until Milvus has built the IVF index of every sealed segment."""
    client = index.server.client
    client.flush(index.name)
    deadline = time.monotonic() + INDEX_WAIT_S
    while True:
        described = client.describe_index(index.name, index_name=client.list_indexes(index.name)[0])
        indexed, pending = int(described.get("indexed_rows", 0)), int(described.get("pending_index_rows", 0))
        if pending == 0 and indexed >= faces:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"Milvus indexed {indexed:,} of {faces:,} rows in {INDEX_WAIT_S:.0f} s")
        time.sleep(2)


def faiss_row(
    method: str,
    index: FlatIndex | IvfIndex,
    vectors: Floats,
    probes: Floats,
    exact: Truth,
    person: npt.NDArray[np.int64],
    extra_bytes: int,
    prepare_s: float,
) -> Row:
    started = time.perf_counter()
    index.add(np.arange(len(vectors), dtype=np.int64), vectors)
    load_s = prepare_s + time.perf_counter() - started

    def search(queries: Floats) -> tuple[Floats, npt.NDArray[np.int64]]:
        return index.search(queries, K)

    p50, p95 = timed_probes(search, probes)
    found = own_recall(search, probes, exact)
    started = time.perf_counter()
    removed = index.remove(person)
    erase_s = time.perf_counter() - started
    if removed != len(person):
        raise SystemExit(f"{method} removed {removed} of {len(person)} faces")
    size = len(vectors) * (vectors.shape[1] * 4 + 8) + extra_bytes  # vectors and ids (and centroids)
    return Row(method, load_s, size / len(vectors), p50, p95, found, erase_s)


def milvus_row(
    address: str, pid: int, vectors: Floats, probes: Floats, exact: Truth, person: npt.NDArray[np.int64], nprobe: int
) -> tuple[list[Row], Lookup]:
    """The approximate search (``nprobe`` cells) and the exhaustive one; one load and one erasure."""
    parsed = urlparse(address)
    if parsed.scheme != "milvus" or parsed.hostname is None or parsed.port is None:
        raise SystemExit(f"--vector-store must be milvus://HOST:PORT, not {address!r}")
    server = MilvusServer(parsed.hostname, parsed.port, timeout_s=600.0)
    rotation = VectorRotation.from_secret(os.urandom(32), vectors.shape[1])
    name = f"bench_scale_{os.getpid()}_{len(vectors)}"
    before = milvus_rss(pid)
    index = MilvusIndex(server, name, vectors.shape[1], rotation, nprobe=nprobe)
    try:
        started = time.perf_counter()
        for start in range(0, len(vectors), ADD_BATCH):
            stop = min(len(vectors), start + ADD_BATCH)
            index.add(np.arange(start, stop, dtype=np.int64), vectors[start:stop])
            print(f"   milvus: {stop:,} added", file=sys.stderr, flush=True)
        wait_indexed(index, len(vectors))
        load_s = time.perf_counter() - started
        time.sleep(5)  # let the query node load the indexed segments in place of the growing ones
        per_face = (milvus_rss(pid) - before) / len(vectors)
        searches: list[tuple[str, Search, Floats]] = [
            (
                f"Milvus IVF_FLAT (1,024 cells, nprobe {index.nprobe}; facesearch MilvusIndex, read-your-writes)",
                index_search(index, exhaustive=False),
                probes,
            ),
            (
                f"Milvus nprobe {index.nprobe} at Strong consistency (every search before read-your-writes)",
                level_search(index, STRONG),
                probes,
            ),
            (
                "Milvus, every cell (exhaustive, as for subject access and erasure; first 100 probes timed)",
                index_search(index, exhaustive=True),
                probes[:EXHAUSTIVE_TIMED],
            ),
            (
                f"Milvus nprobe {index.nprobe} at Bounded consistency (not the product's)",
                level_search(index, "Bounded"),
                probes,
            ),
        ]
        rows = []
        for method, search, timed in searches:
            p50, p95 = timed_probes(search, timed)
            rows.append(Row(method, load_s, per_face, p50, p95, own_recall(search, probes, exact), 0.0))
            print(f"   {rows[-1]}", file=sys.stderr, flush=True)
        lookup = timed_lookup(index, person)
        started = time.perf_counter()
        removed = index.remove(person)
        erase_s = time.perf_counter() - started
        if removed != len(person):
            raise SystemExit(f"Milvus removed {removed} of {len(person)} faces")
        return [replace(rows[0], erase_s=erase_s), *rows[1:]], lookup
    finally:
        index.drop()
        server.close()


def run(faces: int, per_person: int, probe_count: int, address: str, pid: int, template_views: int) -> str:
    """Every row, as markdown."""
    model = FaceModel.load(MODELS[template_views])
    print(f"== {faces:,} faces of {faces // per_person:,} people: generating ...", file=sys.stderr, flush=True)
    vectors, labels = model.faces(faces, seed=faces, per_person=per_person)
    probes, sources = model.probes(vectors, probe_count)
    exact = truth(vectors, labels, probes, labels[sources])
    person = np.flatnonzero(labels == labels[sources[0]]).astype(np.int64)
    policy = IndexPolicy()
    rows = [faiss_row("faiss exact (facesearch FlatIndex)", FlatIndex(128), vectors, probes, exact, person, 0, 0.0)]
    print(f"   {rows[-1]}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    ivf = IvfIndex.trained(vectors, 128, policy.nprobe)
    trained_s = time.perf_counter() - started
    method = f"faiss IVF (facesearch IvfIndex, {ivf.cells:,} cells, nprobe {policy.nprobe})"
    rows.append(faiss_row(method, ivf, vectors, probes, exact, person, ivf.cells * 512, trained_s))
    print(f"   {rows[-1]}", file=sys.stderr, flush=True)
    milvus_rows, lookup = milvus_row(address, pid, vectors, probes, exact, person, policy.nprobe)
    rows.extend(milvus_rows)
    return markdown(faces, per_person, probe_count, exact, rows, lookup)


def markdown(faces: int, per_person: int, probes: int, exact: Truth, rows: list[Row], lookup: Lookup) -> str:
    within = np.mean([len(w) for w in exact.same_person])
    lines = [
        f"# Milvus against local faiss ({platform.machine()}, {os.cpu_count()} cores, faiss {faiss.__version__}, "
        f"{faiss.omp_get_max_threads()} threads)\n",
        f"{faces:,} synthetic faces of {faces // per_person:,} people ({per_person} each); {probes:,} probes, each a "
        f"new photo of a gallery person, searched alone, top {K}; per probe {within:.1f} of the person's own faces "
        f"within {THRESHOLD} by exact search. Erasure: one person's {per_person} faces.\n",
        "| index | load s | bytes/face | p50 ms | p95 ms | own-faces recall | erase one person, s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        erase = f"{r.erase_s:.3f}" if r.erase_s else "(as above)"
        lines.append(
            f"| {r.method} | {r.load_s:.1f} | {r.bytes_per_face:.0f} | {r.p50_ms:.2f} | {r.p95_ms:.2f} | "
            f"{r.same_person_recall:.4f} | {erase} |"
        )
    flat, ivf, milvus, strong, bounded = rows[0], rows[1], rows[2], rows[3], rows[5]
    lines.append(
        f"\nMilvus as facesearch searches it (nprobe, read-your-writes) against faiss exact: "
        f"p50 {milvus.p50_ms / flat.p50_ms:.1f}x, "
        f"p95 {milvus.p95_ms / flat.p95_ms:.1f}x, memory per face {milvus.bytes_per_face / flat.bytes_per_face:.1f}x, "
        f"erasure {milvus.erase_s / flat.erase_s:.0f}x; own-faces recall {milvus.same_person_recall:.4f} against "
        f"{flat.same_person_recall:.4f}. At Bounded consistency against faiss IVF: p50 "
        f"{bounded.p50_ms / ivf.p50_ms:.1f}x, recall {bounded.same_person_recall:.4f} "
        f"against {ivf.same_person_recall:.4f}. Read-your-writes against Strong: p50 {milvus.p50_ms:.2f} against "
        f"{strong.p50_ms:.2f} ms ({strong.p50_ms / milvus.p50_ms:.1f}x faster). Erasure's look-up of the person's "
        f"{per_person} ids: {lookup.bounded_s:.3f} s by a query bounded by them (MilvusIndex.remove), "
        f"{lookup.listing_s:.3f} s by listing every id (before)."
    )
    return "\n".join(lines)
