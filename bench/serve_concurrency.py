"""Searches over HTTP with 1, 2 and 6 clients at once, and searches during a stream of uploads, on a real server.

Builds a data folder in a temporary directory: one collection holding ``--gallery`` dev photos (default 150;
the test fixtures where the dev set is absent), a search key and an ingest key, and starts ``facesearch serve``
on it (from ``--src``, default this checkout's ``src``: point it at another checkout's to measure that one).
Then, in the same run, ``--rounds`` rounds (default 2) of these phases of ``--seconds`` each (default 8), the
client counts in the opposite order from one round to the next, so that a change in the machine's load weighs
on all of them alike:

1. **1, 2 and 6 clients** (``--clients``), each a process of its own (forked; ``http.client``, request bodies
   encoded beforehand, so that the clients' own CPU stays small; ``--thread-clients``: threads of this process with
   httpx, as before) posting ``/v1/search`` again and again, a new request as
   soon as its last one is answered, with probe photos that are not in the gallery (the same fixed list, each
   client starting at another place in it). Reported: searches answered per second in each round, its ratio to
   1 client in the same round and the median ratio, p50 and p95 latency over the rounds, errors;
2. **searches during uploads**: one client searching as in 1 while another uploads photos one per request
   (``POST /v1/collections/.../images``, each photo re-encoded with a small crop, so that none is already held
   and each is analysed and written), without pause. Reported: the searches' p50 and p95, the p50 against the
   1-client p50 ("idle"), and uploads per second.

With each phase, the server process's CPU time (``/proc``): the cores it kept busy, and its CPU time per search.
Where other work takes cores, throughput ratios fall short of what the server does with free cores; the CPU
time per search staying flat from 1 client to 2 and 6 says that concurrency costs it no extra work, and the
cores busy how much of the machine it got.

The server runs with the service's defaults (ONNX Runtime's threads on every core) and a search rate limit high
enough not to refuse. The machine's load average is printed with the figures: on a shared machine other work
takes cores too, and ratios read against it. Markdown on stdout, progress on stderr, ``--json PATH`` for the
figures. A default run takes about two minutes.

    python -m bench.serve_concurrency
    python -m bench.serve_concurrency --rounds 3 --seconds 10 --clients 1 2 4 6 --src ../main/src
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import multiprocessing
import multiprocessing.process
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
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
DURING_UPLOADS = "during uploads"


@dataclass
class Phase:
    name: str
    clients: int
    round: int
    seconds: float
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    uploads: int = 0
    server_cpu_seconds: float = 0.0

    @property
    def per_second(self) -> float:
        return len(self.latencies) / self.seconds


@dataclass(frozen=True)
class Server:
    base: str
    pid: int
    search_key: str
    ingest_key: str

    def cpu_seconds(self) -> float:
        """CPU time the server process has used so far, all its threads (Linux; 0 elsewhere)."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gallery", type=int, default=150, help="photos in the gallery (default 150)")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each phase (default 8)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of every phase (default 2)")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 2, 6], help="client counts (default 1 2 6)")
    parser.add_argument("--data", type=Path, default=None, help="the dev set (default: ../shared/faces/dev)")
    parser.add_argument("--src", type=Path, default=REPO / "src", help="the facesearch sources to serve")
    parser.add_argument(
        "--thread-clients",
        action="store_true",
        help="search from threads of this process with httpx (as before), not from a light process per client",
    )
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
    with ServedProcess(args.src, data_dir, key_file) as (base, pid):
        server = Server(base, pid, search_key, ingest_key)
        _log("warming up")
        _run(Phase("warm-up", 2, 0, 3.0), server, probe_bytes)
        phases = []
        for round_number in range(1, args.rounds + 1):
            order = args.clients if round_number % 2 else list(reversed(args.clients))
            for clients in order:
                _log(f"round {round_number}: {clients} client(s) searching for {args.seconds:.0f} s")
                phase = Phase(f"{clients} client(s)", clients, round_number, args.seconds)
                phases.append(_run(phase, server, probe_bytes, light=not args.thread_clients))
            _log(f"round {round_number}: 1 client searching during uploads for {args.seconds:.0f} s")
            phase = Phase(DURING_UPLOADS, 1, round_number, args.seconds)
            phases.append(_run(phase, server, probe_bytes, uploads, light=not args.thread_clients))
    return phases


def _run(
    phase: Phase, server: Server, probes: Sequence[bytes], uploads: Sequence[Path] = (), *, light: bool = True
) -> Phase:
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

    threads = [threading.Thread(target=upload)] if uploads else []
    if not light:
        threads += [threading.Thread(target=search, args=(client,)) for client in range(phase.clients)]
    searchers = _light_searchers(phase, server, probes) if light else []
    started, cpu = time.perf_counter(), server.cpu_seconds()
    for thread in threads:
        thread.start()
    for process, _ in searchers:
        process.start()
    time.sleep(phase.seconds)
    stop.set()
    for thread in threads:
        thread.join()
    for process, answers in searchers:
        latencies, errors = answers.recv()
        process.join()
        phase.latencies += latencies
        phase.errors += errors
    phase.seconds = time.perf_counter() - started  # to the last answer: requests under way are counted
    phase.server_cpu_seconds = server.cpu_seconds() - cpu
    return phase


def _light_searchers(
    phase: Phase, server: Server, probes: Sequence[bytes]
) -> list[tuple[multiprocessing.process.BaseProcess, Connection]]:
    """One process per client (forked, so nothing is imported again), each posting searches with ``http.client``
    and bodies encoded beforehand, until the phase's time is up: the clients' own CPU stays small and off the
    server's interpreter."""
    context = multiprocessing.get_context("fork")
    deadline = time.time() + phase.seconds
    made: list[tuple[multiprocessing.process.BaseProcess, Connection]] = []
    for client in range(phase.clients):
        first = client * len(probes) // max(phase.clients, 1)
        ours, theirs = context.Pipe(duplex=False)
        made.append((context.Process(target=_search_until, args=(server, probes, first, deadline, theirs)), ours))
    return made


def _search_until(server: Server, probes: Sequence[bytes], first: int, deadline: float, answers: Connection) -> None:
    boundary = "facesearch-bench-boundary"
    bodies = [
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="probe.jpg"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
        for data in probes
    ]
    headers = {"X-API-Key": server.search_key, "Content-Type": f"multipart/form-data; boundary={boundary}"}
    host, port = server.base.removeprefix("http://").rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=120)
    latencies: list[float] = []
    errors: list[str] = []
    position = first
    while time.time() < deadline:
        body = bodies[position % len(bodies)]
        position += 1
        started = time.perf_counter()
        connection.request("POST", "/v1/search", body=body, headers=headers)
        response = connection.getresponse()
        text = response.read()
        if response.status in (200, 422):  # 422: no face in that probe
            latencies.append(time.perf_counter() - started)
        else:
            errors.append(f"{response.status} {text[:200]!r}")
    connection.close()
    answers.send((latencies, errors))


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

    def __enter__(self) -> tuple[str, int]:
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
                    return base, self._process.pid
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
    searching = [p for p in phases if p.name != DURING_UPLOADS]
    during = [p for p in phases if p.name == DURING_UPLOADS]
    rounds = range(1, args.rounds + 1)
    rate = {(p.round, p.clients): p.per_second for p in searching}
    base = min(args.clients)
    print(
        f"Server from `{args.src}`; gallery of {gallery} photos; {os.cpu_count()} cores; {args.rounds} rounds "
        f"of {args.seconds:.0f} s a phase; load average after the run {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}\n"
    )
    print(
        f"| clients | searches/s per round | against {base} client(s), per round | median | p50 | p95 "
        "| server cores busy | server CPU per search | errors |"
    )
    print("|---:|---|---|---:|---:|---:|---:|---:|---:|")
    idle: list[float] = []
    for clients in args.clients:
        mine = [p for p in searching if p.clients == clients]
        latencies = [t for p in mine for t in p.latencies]
        if clients == base:
            idle = latencies
        ratios = [rate[(r, clients)] / rate[(r, base)] for r in rounds]
        print(
            f"| {clients} | {', '.join(f'{rate[(r, clients)]:.1f}' for r in rounds)} "
            f"| {', '.join(f'{x:.2f}x' for x in ratios)} | {statistics.median(ratios):.2f}x "
            f"| {_ms(latencies, 0.5)} | {_ms(latencies, 0.95)} | {_cores(mine):.2f} "
            f"| {sum(p.server_cpu_seconds for p in mine) / max(len(latencies), 1) * 1000:.0f} ms "
            f"| {sum(len(p.errors) for p in mine)} |"
        )
    searches = [t for p in during for t in p.latencies]
    uploads = sum(p.uploads for p in during) / sum(p.seconds for p in during)
    print(f"\n| searches during uploads | p50 | p95 | p50 against idle p50 ({base} client) | uploads/s | errors |")
    print("|---|---:|---:|---:|---:|---:|")
    print(
        f"| 1 searcher, 1 uploader | {_ms(searches, 0.5)} | {_ms(searches, 0.95)} "
        f"| {_percentile(searches, 0.5) / _percentile(idle, 0.5):.2f}x | {uploads:.1f} "
        f"| {sum(len(p.errors) for p in during)} |"
    )
    for phase in phases:
        for error in phase.errors[:3]:
            print(f"\n{phase.name}, round {phase.round}: {error}")
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
                    "p50_s": _percentile(phase.latencies, 0.5),
                    "p95_s": _percentile(phase.latencies, 0.95),
                }
                for phase in phases
            ],
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2))


def _cores(phases: Sequence[Phase]) -> float:
    """Server CPU seconds per second of the phases: how many cores it kept busy."""
    return sum(p.server_cpu_seconds for p in phases) / sum(p.seconds for p in phases)


def _percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def _ms(values: Sequence[float], share: float) -> str:
    return f"{_percentile(values, share) * 1000:.0f} ms"


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
