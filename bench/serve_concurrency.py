"""Searches over HTTP with 1, 2 and 6 clients at once, and searches during a stream of uploads, on a real server.

Builds a data folder in a temporary directory: one collection holding ``--gallery`` dev photos (default 150;
the test fixtures where the dev set is absent), a search key and an ingest key, and starts ``facesearch serve``
on it (from ``--src``, default this checkout's ``src``: point it at another checkout's to measure that one).
Then, one after the other in the same run, for ``--seconds`` each (default 12):

1. **1, 2 and 6 clients** (``--clients``), each a thread posting ``/v1/search`` again and again, a new request as
   soon as its last one is answered, with probe photos that are not in the gallery (the same fixed list, each
   client starting at another place in it). Reported: searches answered per second, its ratio to 1 client,
   p50 and p95 latency, errors;
2. **searches during uploads**: one client searching as in 1 while another uploads photos one per request
   (``POST /v1/collections/.../images``, each photo re-encoded with a small crop, so that none is already held
   and each is analysed and written), without pause. Reported: the searches' p50 and p95 against the 1-client
   p50 ("idle"), and uploads per second.

The server runs with the service's defaults (ONNX Runtime's threads on every core) and a search rate limit high
enough not to refuse. The machine's load average is printed with the figures: on a shared machine other work
takes cores too, and ratios read against it. Markdown on stdout, progress on stderr, ``--json PATH`` for the
figures.

    python -m bench.serve_concurrency
    python -m bench.serve_concurrency --seconds 20 --clients 1 2 4 6 --src ../main/src
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx2
from PIL import Image

from bench.embed_speed import REPO, candidate_images, default_dev_dir
from facesearch.core.settings import Settings
from facesearch.engine.engine import Engine
from facesearch.safeguards.audit import Actor
from facesearch.safeguards.governance import CollectionSpec
from facesearch.safeguards.vault import generate_master_key
from facesearch.store.keys import KeyStore

COLLECTION = "gallery"
ADMIN = Actor("bench")
PROBES = 24
STARTUP_SECONDS = 120


@dataclass
class Phase:
    name: str
    clients: int
    seconds: float
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    uploads: int = 0

    @property
    def per_second(self) -> float:
        return len(self.latencies) / self.seconds

    def percentile(self, share: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


@dataclass(frozen=True)
class Server:
    base: str
    search_key: str
    ingest_key: str


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gallery", type=int, default=150, help="photos in the gallery (default 150)")
    parser.add_argument("--seconds", type=float, default=12.0, help="length of each phase (default 12)")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 2, 6], help="client counts (default 1 2 6)")
    parser.add_argument("--data", type=Path, default=None, help="the dev set (default: ../shared/faces/dev)")
    parser.add_argument("--src", type=Path, default=REPO / "src", help="the facesearch sources to serve")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    photos = candidate_images(args.data or default_dev_dir())
    gallery, probes, uploads = photos[: args.gallery], photos[args.gallery :][:PROBES], photos[args.gallery + PROBES :]
    if not probes:  # the fixtures alone: search for photos that are also held
        probes = photos
    uploads = uploads or photos
    with tempfile.TemporaryDirectory(prefix="facesearch-serve-bench-") as scratch:
        key_file, data_dir = Path(scratch) / "master.key", Path(scratch) / "data"
        key_file.write_text(generate_master_key())
        key_file.chmod(0o600)
        _log(f"ingesting {len(gallery)} photos")
        search_key, ingest_key = _prepare(data_dir, key_file, gallery)
        phases = _measure(args, data_dir, key_file, search_key, ingest_key, probes, uploads)
    _report(phases, args, len(gallery))
    return 0


def _prepare(data_dir: Path, key_file: Path, gallery: Sequence[Path]) -> tuple[str, str]:
    settings = Settings(data_dir=data_dir, master_key_file=str(key_file))
    spec = CollectionSpec.parse(
        COLLECTION, "Benchmark of concurrent searches", "legitimate-interests", "substantial-public-interest", "1y"
    )
    with Engine.init(settings) as engine:
        engine.create_collection(spec, ADMIN)
        engine.ingest(COLLECTION, list(gallery), ADMIN)
        store = KeyStore(engine.catalog)
        _, search_key = store.create("bench searcher", "search", ADMIN, purpose="Benchmark of concurrent searches")
        _, ingest_key = store.create("bench uploader", "ingest", ADMIN, collections=[COLLECTION])
    return search_key, ingest_key


def _measure(
    args: argparse.Namespace,
    data_dir: Path,
    key_file: Path,
    search_key: str,
    ingest_key: str,
    probes: Sequence[Path],
    uploads: Sequence[Path],
) -> list[Phase]:
    probe_bytes = [path.read_bytes() for path in probes]
    with ServedProcess(args.src, data_dir, key_file) as base:
        server = Server(base, search_key, ingest_key)
        _log("warming up")
        _run(Phase("warm-up", 2, 3.0), server, probe_bytes)
        phases = []
        for clients in args.clients:
            _log(f"{clients} client(s) searching for {args.seconds:.0f} s")
            phases.append(_run(Phase(f"{clients} client(s)", clients, args.seconds), server, probe_bytes))
        _log(f"1 client searching during uploads for {args.seconds:.0f} s")
        phases.append(_run(Phase("during uploads", 1, args.seconds), server, probe_bytes, uploads))
    return phases


def _run(phase: Phase, server: Server, probes: Sequence[bytes], uploads: Sequence[Path] = ()) -> Phase:
    stop = threading.Event()
    lock = threading.Lock()

    def search(client: int) -> None:
        position = client * len(probes) // max(phase.clients, 1)
        with httpx2.Client(base_url=server.base, timeout=120) as http:
            while not stop.is_set():
                data = probes[position % len(probes)]
                position += 1
                started = time.perf_counter()
                response = http.post(
                    "/v1/search", files={"file": ("probe.jpg", data)}, headers={"X-API-Key": server.search_key}
                )
                elapsed = time.perf_counter() - started
                with lock:
                    if response.status_code == 200 or response.status_code == 422:  # 422: no face in that probe
                        phase.latencies.append(elapsed)
                    else:
                        phase.errors.append(f"{response.status_code} {response.text[:200]}")

    def upload() -> None:
        with httpx2.Client(base_url=server.base, timeout=120) as http:
            for number in range(10**9):
                if stop.is_set():
                    return
                data = _distinct(uploads[number % len(uploads)], number)
                response = http.post(
                    f"/v1/collections/{COLLECTION}/images",
                    files={"files": (f"upload-{number}.jpg", data)},
                    headers={"X-API-Key": server.ingest_key},
                )
                with lock:
                    if response.status_code == 200:
                        phase.uploads += 1
                    else:
                        phase.errors.append(f"upload: {response.status_code} {response.text[:200]}")

    threads = [threading.Thread(target=search, args=(client,)) for client in range(phase.clients)]
    if uploads:
        threads.append(threading.Thread(target=upload))
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    time.sleep(phase.seconds)
    stop.set()
    for thread in threads:
        thread.join()
    phase.seconds = time.perf_counter() - started  # to the last answer: requests under way are counted
    return phase


def _distinct(path: Path, number: int) -> bytes:
    """The photo re-encoded with a crop of 1-8 pixels off its left edge: new content, the same faces."""
    with Image.open(path) as image:
        rgb = image.convert("RGB")
    cropped = rgb.crop((1 + number % 8, 0, rgb.width, rgb.height))
    buffer = io.BytesIO()
    cropped.save(buffer, "JPEG", quality=90 - number // 8 % 10)
    return buffer.getvalue()


class ServedProcess:
    """``facesearch serve`` from ``src`` in its own process, on a free port."""

    def __init__(self, src: Path, data_dir: Path, key_file: Path) -> None:
        self._src, self._data_dir, self._key_file = src, data_dir, key_file
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> str:
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        environment = {
            **os.environ,
            "PYTHONPATH": str(self._src.resolve()),
            "FACESEARCH_MASTER_KEY_FILE": str(self._key_file),
            "FACESEARCH_SEARCH_RATE_PER_MINUTE": "1000000",
        }
        environment.pop("FACESEARCH_MASTER_KEY", None)
        command = [sys.executable, "-m", "facesearch.cli.main", "--data-dir", str(self._data_dir)]
        self._process = subprocess.Popen([*command, "serve", "--port", str(port)], env=environment)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"facesearch serve exited with {self._process.returncode}")
            try:
                if httpx2.get(f"{base}/ready", timeout=2).status_code == 200:
                    return base
            except httpx2.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"facesearch serve did not become ready within {STARTUP_SECONDS} s")

    def __exit__(self, *_: object) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=30)


def _report(phases: Sequence[Phase], args: argparse.Namespace, gallery: int) -> None:
    load = os.getloadavg()
    single = next((p for p in phases if p.clients == 1 and p.name != "during uploads"), phases[0])
    print(
        f"Server from `{args.src}`; gallery of {gallery} photos; {os.cpu_count()} cores; {args.seconds:.0f} s a phase"
    )
    print(f"Load average after the run: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}\n")
    print("| clients | searches/s | against 1 client | p50 | p95 | errors |")
    print("|---:|---:|---:|---:|---:|---:|")
    for phase in phases:
        if phase.name == "during uploads":
            continue
        print(
            f"| {phase.clients} | {phase.per_second:.1f} | {phase.per_second / single.per_second:.2f}x "
            f"| {phase.percentile(0.5) * 1000:.0f} ms | {phase.percentile(0.95) * 1000:.0f} ms | {len(phase.errors)} |"
        )
    during = next(p for p in phases if p.name == "during uploads")
    idle = single.percentile(0.5)
    print("\n| searches during uploads | p50 | p95 | p50 against idle p50 | uploads/s | errors |")
    print("|---|---:|---:|---:|---:|---:|")
    print(
        f"| 1 searcher, 1 uploader | {during.percentile(0.5) * 1000:.0f} ms | {during.percentile(0.95) * 1000:.0f} ms "
        f"| {during.percentile(0.5) / idle:.2f}x | {during.uploads / during.seconds:.1f} | {len(during.errors)} |"
    )
    for phase in phases:
        for error in phase.errors[:3]:
            print(f"\n{phase.name}: {error}")
    if args.json:
        figures = {
            "src": str(args.src),
            "gallery": gallery,
            "load_average": load,
            "phases": [
                {
                    **{k: v for k, v in asdict(phase).items() if k != "latencies"},
                    "searches": len(phase.latencies),
                    "per_second": phase.per_second,
                    "p50_s": phase.percentile(0.5),
                    "p95_s": phase.percentile(0.95),
                    "median_s": statistics.median(phase.latencies) if phase.latencies else None,
                }
                for phase in phases
            ],
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2))


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
