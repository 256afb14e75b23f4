"""Peak memory of an ingest of malformed files, with worker processes: the parent and each worker sampled.

The folder holds the fuzz suite's seeded mix (``tests/test_fuzz_images.py``: random bytes, empty files, headers
claiming extreme sizes, thin and one-pixel images, truncated and byte-flipped photos), once per seed.

    python -m bench.fuzz_ingest [--seeds 8] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from facesearch.safeguards.vault import generate_master_key  # noqa: E402
from test_fuzz_images import malformed_folder  # noqa: E402


def _tree_rss_mb(pid: int) -> dict[int, int]:
    """Resident memory of ``pid`` and its children, by pid."""
    found: dict[int, int] = {}
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        found[current] = next((int(line.split()[1]) // 1024 for line in status.splitlines() if "VmRSS" in line), 0)
        pending += [int(child) for child in children]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "fuzzed"
        count = 0
        for seed in range(args.seeds):
            (folder / str(seed)).mkdir(parents=True)
            count += malformed_folder(folder / str(seed), seed)
        environment = {k: v for k, v in os.environ.items() if not k.startswith("FACESEARCH_")}
        environment |= {"FACESEARCH_MASTER_KEY": generate_master_key(), "FACESEARCH_DATA_DIR": f"{tmp}/data"}
        environment["PYTHONPATH"] = str(ROOT / "src")
        base = [sys.executable, "-m", "facesearch"]
        subprocess.run([*base, "init"], env=environment, check=True, capture_output=True)
        purpose = "Measuring ingests of malformed files"
        basis = ["--basis", "legitimate-interests", "--condition", "substantial-public-interest", "--retention", "1y"]
        create = ["collection", "create", "fuzz", "--purpose", purpose, *basis]
        subprocess.run([*base, *create], env=environment, check=True, capture_output=True)
        command = [*base, "ingest", "fuzz", str(folder), "--json", "--no-progress", "--workers", str(args.workers)]
        start = time.monotonic()
        child = subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        peaks: dict[int, int] = {}
        while child.poll() is None:
            for pid, rss in _tree_rss_mb(child.pid).items():
                peaks[pid] = max(peaks.get(pid, 0), rss)
            time.sleep(0.05)
        out, err = child.communicate()
        report = json.loads(out) if out else {}
        print(
            f"{count} files, {args.workers} workers, exit {child.returncode}, {time.monotonic() - start:.1f} s: "
            f"{report.get('images_added')} added, {len(report.get('failed', []))} failed, "
            f"{len(report.get('unsupported', []))} unsupported; peak MB by process: "
            f"{sorted(peaks.values(), reverse=True)}"
        )
        if child.returncode not in (0, 7):
            print(err.decode()[-2000:])


if __name__ == "__main__":
    main()
