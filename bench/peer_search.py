"""Peer benchmark: face search at scale, facesearch against milvus-lite, side by side in one run.

The same synthetic faces (bench/face_model.py, 5 per person) and the same probes (new photos of gallery
people) as bench/search_scale.py, whose code this reuses: faiss exact search gives the true answers, then each
method answers the probes one at a time (as the service sends them) and is scored the same way:

- numpy brute force, facesearch's exact index (faiss flat) and its IVF index at ``--nprobe`` (64 and 256),
  exactly as search_scale.py measures them (up to 1,000 neighbours a probe, kept within the 0.6 threshold);
- milvus-lite (``pymilvus.MilvusClient("/tmp/.../milvus.db")``, the embedded Milvus): a collection with an
  int64 primary key and a 128-d FLOAT_VECTOR field, rows inserted 10,000 a call, flushed, an HNSW index
  (metric L2, ``--hnsw-m`` 16, ``--ef-construction`` 200) created, the collection loaded. For each ``--ef``
  (64 and 256) it is searched two ways: a **range search** (``radius`` 0.36, the square of 0.6, since Milvus
  L2 distances are squared; ``limit`` 1,000, as facesearch is asked) for range and same-person recall, and a
  **top-10 search** (``limit`` 10) for recall@10 (its range recall is capped by the 10 answers; the range
  search's recall@10 is capped too, for probes with fewer than 10 faces within 0.6). milvus-lite 3.x is pure
  Python, its gRPC server in this process, and walks every face's id on each search: about 1 s a query at 1M
  faces, so it is scored on at most 100,000,000 / faces of the probes (100 at 1M).

Figures per method: build time (milvus-lite: insert + flush + index + load), bytes per face (milvus-lite: every
file of its data folder on disk, measured; facesearch: its vectors and ids, as search_scale.py counts them),
p50/p99 single-query latency, range recall, same-person recall and recall@10 (see search_scale.py).

Erasure: 1 % of the faces (every 100th id) is deleted from milvus-lite (``delete``, ``flush``, ``compact``),
then the raw float32 bytes of a sample of the deleted vectors are searched in every file under its data folder,
with a face that was not deleted as the control that the search can find a vector at all. The same is done
for facesearch's exact index (``remove``, then the bytes it writes to disk, ``serialize()``). facesearch must
erase biometric data physically (GDPR art. 17); a tombstone that hides a face from searches is not enough.

milvus-lite and pymilvus are not facesearch dependencies and this bench installs nothing: it exits with code
2 and the pip command when they are missing.

    .venv/bin/pip install milvus-lite==3.2.2 pymilvus==3.0.2
    python -m bench.peer_search                          # 100k and 1M faces (about 40 minutes on 2 cores)
    python -m bench.peer_search --sizes 10000 --queries 100

Markdown goes to stdout and bench/results/peer_search.md (all figures also to .json), progress to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.metadata
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt

from bench.face_model import DIMENSION, FaceModel
from bench.peer_ingest import cpu_model
from bench.search_scale import (
    RESULTS,
    THRESHOLD,
    TRUTH_K,
    Floats,
    Row,
    Search,
    Workload,
    baseline_rows,
    markdown,
    score,
    workload,
)
from facesearch.store.index.flat import FlatIndex

INSTALL_COMMAND = ".venv/bin/pip install milvus-lite==3.2.2 pymilvus==3.0.2"
COLLECTION = "faces"
INSERT_BATCH = 10_000
DELETE_EVERY = 100
"""Every 100th id is deleted: 1 % of the faces."""
ERASURE_SAMPLE = 20
"""Deleted vectors whose bytes are searched for in the files."""
MILVUS_PROBE_BUDGET = 100_000_000
"""milvus-lite's search walks every face's id in Python (about 1 s a query at 1M faces): 100 probes at 1M."""
NO_KEEPALIVE = {"grpc.keepalive_time_ms": 2**31 - 1}
"""pymilvus pings its server every 10 s; in a call that lasts minutes (create_index at 1M faces) milvus-lite's
gRPC server answers with GOAWAY "too_many_pings" and pymilvus retries the call. The server is in this process."""
Ids = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Hnsw:
    m: int
    ef_construction: int

    def label(self) -> str:
        return f"milvus-lite HNSW (M {self.m}, efC {self.ef_construction})"


@dataclass
class MilvusBuild:
    faces: int
    insert_s: float
    flush_s: float
    index_s: float
    load_s: float
    disk_bytes: int
    files: int
    rss_growth_bytes: int
    """Growth of this process's resident memory over the build (milvus-lite runs in it), approximate."""

    @property
    def build_s(self) -> float:
        return self.insert_s + self.flush_s + self.index_s + self.load_s


@dataclass
class Erasure:
    faces: int
    system: str
    deleted: int
    seconds: float
    sampled: int
    bytes_still_on_disk: int
    """Of the ``sampled`` deleted vectors, how many have their exact float32 bytes in some file."""
    files_holding_them: list[str]
    control_found: bool
    """Whether the bytes of a face that was not deleted were found: the search works."""
    returned_by_search: int
    """Of the sampled deleted vectors, how many a search for the vector itself still returns."""


@dataclass
class SizeResult:
    rows: list[Row]
    build: MilvusBuild
    erasures: list[Erasure]


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def load_pymilvus() -> ModuleType | None:
    """``pymilvus`` (untyped, so imported by name), or None when it or milvus-lite is not installed."""
    try:
        importlib.import_module("milvus_lite")
        return importlib.import_module("pymilvus")
    except ImportError:
        return None


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


# -- milvus-lite -----------------------------------------------------------------------------------


def create_collection(pymilvus: ModuleType, client: Any) -> None:
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", pymilvus.DataType.INT64, is_primary=True)
    schema.add_field("vector", pymilvus.DataType.FLOAT_VECTOR, dim=DIMENSION)
    client.create_collection(COLLECTION, schema=schema)


def insert_all(client: Any, vectors: Floats) -> None:
    for start in range(0, len(vectors), INSERT_BATCH):
        stop = min(len(vectors), start + INSERT_BATCH)
        client.insert(COLLECTION, [{"id": i, "vector": vectors[i]} for i in range(start, stop)])
        if stop % (10 * INSERT_BATCH) == 0 or stop == len(vectors):
            _log(f"   milvus-lite: {stop:,} rows inserted")


def create_hnsw(pymilvus: ModuleType, client: Any, hnsw: Hnsw) -> None:
    """Builds every segment's HNSW graph inside the call (the collection is loaded), under the collection's
    lock: a retried call is answered only once the first one has built them, with "index already exists"."""
    params = client.prepare_index_params()
    params.add_index(
        field_name="vector",
        index_type="HNSW",
        metric_type="L2",
        params={"M": hnsw.m, "efConstruction": hnsw.ef_construction},
    )
    try:
        client.create_index(COLLECTION, params, timeout=None)
    except pymilvus.MilvusException as error:
        if "already exists" not in str(error):
            raise
        _log(f"   milvus-lite: create_index was retried by pymilvus and the first call built the index ({error})")


def timed(step: str, action: Any, *args: Any) -> float:
    started = time.perf_counter()
    action(*args)
    seconds = time.perf_counter() - started
    _log(f"   milvus-lite: {step} {seconds:.1f} s")
    return seconds


def build_milvus(pymilvus: ModuleType, db: Path, vectors: Floats, hnsw: Hnsw) -> tuple[Any, MilvusBuild]:
    """A loaded milvus-lite collection of ``vectors`` (ids 0..n-1) at ``db``, and what building it cost."""
    before = rss_bytes()
    client = pymilvus.MilvusClient(str(db), grpc_options=NO_KEEPALIVE)
    create_collection(pymilvus, client)
    insert_s = timed("insert", insert_all, client, vectors)
    flush_s = timed("flush", client.flush, COLLECTION)
    index_s = timed("HNSW index", create_hnsw, pymilvus, client, hnsw)
    load_s = timed("load", client.load_collection, COLLECTION)
    files = files_under(db)
    build = MilvusBuild(
        faces=len(vectors),
        insert_s=round(insert_s, 1),
        flush_s=round(flush_s, 1),
        index_s=round(index_s, 1),
        load_s=round(load_s, 1),
        disk_bytes=sum(p.stat().st_size for p in files),
        files=len(files),
        rss_growth_bytes=rss_bytes() - before,
    )
    return client, build


def padded(hits: Sequence[dict[str, Any]], width: int) -> tuple[Floats, Ids]:
    """One answer as search_scale's searches give it: Euclidean distances (Milvus L2 is squared), ids, padded
    with inf and -1 to ``width``."""
    distances = np.full(width, np.inf, dtype=np.float32)
    ids = np.full(width, -1, dtype=np.int64)
    for slot, hit in enumerate(hits[:width]):
        distances[slot] = np.sqrt(max(float(hit["distance"]), 0.0))
        ids[slot] = int(hit["id"])
    return distances, ids


def milvus_search(client: Any, limit: int, params: dict[str, float]) -> Search:
    """Each query sent alone, as a service does. ``score`` times every probe alone, then asks for all the
    probes again to score them: those answers are kept from the timed calls rather than searched twice (HNSW
    search is deterministic, so they are the same)."""
    answers: dict[bytes, tuple[Floats, Ids]] = {}
    search_params = {"metric_type": "L2", "params": params}

    def one(query: Floats) -> tuple[Floats, Ids]:
        key = query.tobytes()
        if key not in answers:
            hits = client.search(
                COLLECTION, data=[query.tolist()], limit=limit, output_fields=["id"], search_params=search_params
            )
            answers[key] = padded(hits[0], limit)
        return answers[key]

    def search(queries: Floats) -> tuple[Floats, Ids]:
        found = [one(query) for query in queries]
        return np.stack([d for d, _ in found]), np.stack([i for _, i in found])

    return search


def milvus_rows(client: Any, build: MilvusBuild, work: Workload, hnsw: Hnsw, efs: Sequence[int]) -> list[Row]:
    """Range and top-10 searches at each ``ef``, on at most MILVUS_PROBE_BUDGET / faces probes."""
    count = min(len(work.probes), max(3, MILVUS_PROBE_BUDGET // work.faces))
    probes, exact = work.probes[:count], work.exact.first(count)
    probe_note = f", {count} probes" if count < len(work.probes) else ""
    kinds: tuple[tuple[str, int, dict[str, float]], ...] = (
        (f"range search (radius {THRESHOLD**2:.2f}, limit {TRUTH_K})", TRUTH_K, {"radius": THRESHOLD**2}),
        ("top 10 (limit 10)", 10, {}),
    )
    rows = []
    for kind, limit, extra in kinds:
        for ef in efs:
            method = f"{hnsw.label()}, ef {ef}, {kind}{probe_note}"
            _log(f"   {method} ...")
            search = milvus_search(client, limit, {"ef": ef, **extra})
            rows.append(score(work.faces, method, build.build_s, build.disk_bytes, search, probes, exact))
            _log(f"   {rows[-1]}")
    return rows


# -- erasure ---------------------------------------------------------------------------------------


def deleted_ids(faces: int) -> Ids:
    return np.arange(0, faces, DELETE_EVERY, dtype=np.int64)


def sample_of(deleted: Ids) -> Ids:
    positions = np.linspace(0, len(deleted) - 1, min(ERASURE_SAMPLE, len(deleted))).astype(np.int64)
    sample: Ids = deleted[positions]
    return sample


def holders(blobs: dict[str, bytes], vector: Floats) -> list[str]:
    """Names of the blobs that hold ``vector``'s exact float32 bytes."""
    needle = np.ascontiguousarray(vector, dtype=np.float32).tobytes()
    return [name for name, blob in blobs.items() if needle in blob]


def bytes_check(blobs: dict[str, bytes], vectors: Floats, sample: Ids, control: int) -> tuple[int, list[str], bool]:
    """How many sampled vectors some blob holds, which blobs, and whether the control vector is found."""
    found = [holders(blobs, vectors[i]) for i in sample]
    names = sorted({name for names in found for name in names})
    return sum(1 for names in found if names), names, bool(holders(blobs, vectors[control]))


def milvus_erasure(client: Any, db: Path, vectors: Floats) -> Erasure:
    deleted = deleted_ids(len(vectors))
    _log(f"   milvus-lite: deleting {len(deleted):,} faces, flush, compact ...")
    started = time.perf_counter()
    client.delete(COLLECTION, ids=deleted.tolist())
    client.flush(COLLECTION)
    job = client.compact(COLLECTION)
    while client.get_compaction_state(job) == "Executing":
        time.sleep(0.5)
    seconds = time.perf_counter() - started
    sample = sample_of(deleted)
    returned = sum(int(i) in milvus_search(client, 10, {"ef": 64})(vectors[i][None, :])[1][0] for i in sample)
    blobs = {str(p.relative_to(db)): p.read_bytes() for p in files_under(db)}
    count, names, control = bytes_check(blobs, vectors, sample, control=1)
    return Erasure(
        len(vectors), "milvus-lite", len(deleted), round(seconds, 2), len(sample), count, names, control, returned
    )


def facesearch_erasure(vectors: Floats) -> Erasure:
    """facesearch's exact index: ``remove``, then the bytes it writes to its index file."""
    deleted = deleted_ids(len(vectors))
    _log(f"   facesearch exact: removing {len(deleted):,} faces, serializing ...")
    index = FlatIndex(DIMENSION)
    index.add(np.arange(len(vectors), dtype=np.int64), vectors)
    started = time.perf_counter()
    index.remove(deleted)
    payload = index.serialize()
    seconds = time.perf_counter() - started
    sample = sample_of(deleted)
    returned = sum(int(i) in index.search(vectors[i][None, :], 10)[1][0] for i in sample)
    count, names, control = bytes_check({"index file payload": payload}, vectors, sample, control=1)
    return Erasure(
        len(vectors),
        "facesearch exact (faiss flat)",
        len(deleted),
        round(seconds, 2),
        len(sample),
        count,
        names,
        control,
        returned,
    )


# -- one size --------------------------------------------------------------------------------------


@contextlib.contextmanager
def milvus_folder(parent: Path | None) -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="peer_search-", dir=parent))
    try:
        yield folder / "milvus.db"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def release(db: Path, client: Any) -> None:
    """Close the client and stop milvus-lite's in-process server for ``db``, freeing its memory."""
    client.close()
    importlib.import_module("milvus_lite.server_manager").server_manager_instance.release_server(str(db))


def run_size(
    pymilvus: ModuleType, work: Workload, nprobes: Sequence[int], hnsw: Hnsw, efs: Sequence[int], parent: Path | None
) -> SizeResult:
    rows = baseline_rows(work, nprobes)
    with milvus_folder(parent) as db:
        _log(f"   milvus-lite: building at {db} ...")
        client, build = build_milvus(pymilvus, db, work.vectors, hnsw)
        _log(f"   {build}")
        rows.extend(milvus_rows(client, build, work, hnsw, efs))
        erasures = [milvus_erasure(client, db, work.vectors)]
        release(db, client)
    _log(f"   {erasures[-1]}")
    erasures.append(facesearch_erasure(work.vectors))
    _log(f"   {erasures[-1]}")
    return SizeResult(rows, build, erasures)


# -- report ----------------------------------------------------------------------------------------


def version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def machine_line(load_start: str) -> str:
    packages = ("milvus-lite", "pymilvus", "faiss-cpu", "numpy")
    return (
        f"{time.strftime('%Y-%m-%d %H:%M')}; {platform.machine()}, {len(os.sched_getaffinity(0))} usable cores, "
        f"{cpu_model()}; load average at start {load_start}, at end {load_average()}; Python "
        f"{platform.python_version()}, " + ", ".join(f"{p} {version(p)}" for p in packages) + "."
    )


def load_average() -> str:
    return " / ".join(f"{v:.2f}" for v in os.getloadavg())


def ratio_lines(rows: Sequence[Row]) -> list[str]:
    lines = ["| faces | method | p50 vs facesearch exact | p50 vs milvus-lite range search at the first ef |"]
    lines.append("|---:|---|---:|---:|")
    for faces in sorted({r.faces for r in rows}):
        group = [r for r in rows if r.faces == faces]
        exact = next(r for r in group if r.method.startswith("facesearch exact"))
        milvus = next(r for r in group if "range search" in r.method)
        for r in group:
            lines.append(
                f"| {faces:,} | {r.method} | {r.p50_ms / exact.p50_ms:.3g}x | {r.p50_ms / milvus.p50_ms:.3g}x |"
            )
    return lines


def build_lines(builds: Sequence[MilvusBuild]) -> list[str]:
    lines = [
        "| faces | insert s | flush s | HNSW index s | load s | total s | files | bytes/face on disk | RSS growth MB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for b in builds:
        lines.append(
            f"| {b.faces:,} | {b.insert_s} | {b.flush_s} | {b.index_s} | {b.load_s} | {b.build_s:.1f} | {b.files} | "
            f"{b.disk_bytes / b.faces:.0f} | {b.rss_growth_bytes / 2**20:.0f} |"
        )
    return lines


def kinds_of(names: Sequence[str]) -> str:
    """``2 data/*.parquet, 2 indexes/*.idx`` for a list of file paths (all of them are in the .json)."""
    kinds = Counter(f"{Path(n).parent.name}/*{Path(n).suffix}" if Path(n).parent.name else n for n in names)
    return ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items())) or "-"


def erasure_lines(erasures: Sequence[Erasure]) -> list[str]:
    lines = [
        "| faces | system | deleted | seconds | deleted vectors still on disk (of sample) | files holding them | "
        "control found | deleted returned by search |",
        "|---:|---|---:|---:|---:|---|---|---:|",
    ]
    for e in erasures:
        lines.append(
            f"| {e.faces:,} | {e.system} | {e.deleted:,} | {e.seconds} | {e.bytes_still_on_disk} of {e.sampled} | "
            f"{kinds_of(e.files_holding_them)} | {'yes' if e.control_found else 'NO'} | "
            f"{e.returned_by_search} of {e.sampled} |"
        )
    return lines


def render(results: Sequence[SizeResult], machine: str) -> str:
    rows = [r for result in results for r in result.rows]
    parts = [
        "# Face search at scale: facesearch against milvus-lite",
        machine,
        markdown(rows),
        "\n".join(ratio_lines(rows)),
        "milvus-lite build (bytes per face: every file of its data folder):",
        "\n".join(build_lines([r.build for r in results])),
        f"Erasure of 1 % of the faces (every {DELETE_EVERY}th id): exact float32 bytes of {ERASURE_SAMPLE} deleted "
        "vectors searched in every file written (milvus-lite: its data folder after delete, flush and compact; "
        "facesearch: the index payload it writes to disk after remove).",
        "\n".join(erasure_lines([e for result in results for e in result.erasures])),
    ]
    return "\n\n".join(parts) + "\n"


def write(out: Path, results: Sequence[SizeResult], hnsw: Hnsw, machine: str) -> str:
    report = render(results, machine)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report)
    figures = {
        "machine": machine,
        "hnsw": asdict(hnsw),
        "rows": [asdict(r) for result in results for r in result.rows],
        "milvus_builds": [asdict(result.build) for result in results],
        "erasure": [asdict(e) for result in results for e in result.erasures],
    }
    out.with_suffix(".json").write_text(json.dumps(figures, indent=2) + "\n")
    return report


# -- main ------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--nprobe", type=int, nargs="+", default=[64, 256], help="facesearch IVF probes")
    parser.add_argument("--ef", type=int, nargs="+", default=[64, 256], help="milvus-lite HNSW search ef")
    parser.add_argument("--hnsw-m", type=int, default=16, help="milvus-lite HNSW M (default 16)")
    parser.add_argument("--ef-construction", type=int, default=200, help="milvus-lite HNSW efConstruction")
    parser.add_argument("--queries", type=int, default=300, help="probes, each timed alone and scored")
    parser.add_argument("--tmp", type=Path, help="where milvus-lite's data folder goes (default: the system's)")
    parser.add_argument("--out", type=Path, default=RESULTS / "peer_search.md", help="markdown report (and .json)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    pymilvus = load_pymilvus()
    if pymilvus is None:
        _log(f"pymilvus and milvus-lite are needed (bench only, not facesearch dependencies): {INSTALL_COMMAND}")
        return 2
    started, load_start = time.perf_counter(), load_average()
    hnsw = Hnsw(args.hnsw_m, args.ef_construction)
    model = FaceModel.load()
    _log(f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads; milvus-lite {version('milvus-lite')}")
    results: list[SizeResult] = []
    with contextlib.redirect_stdout(sys.stderr):  # search_scale's progress lines
        for faces in args.sizes:
            work = workload(faces, model, args.queries)
            results.append(run_size(pymilvus, work, args.nprobe, hnsw, args.ef, args.tmp))
            report = write(args.out, results, hnsw, machine_line(load_start))  # each size, in case of a stop
            _log(f"   written to {args.out} and .json after {time.perf_counter() - started:.0f} s")
    sys.stdout.write(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
