"""Peak memory and time of detecting faces in thin, extreme-aspect and one-pixel images, against a normal photo.

Each image is written to a temporary folder and detected (``FaceAnalyser.detect``, as ``facesearch detect`` and
``/v1/detect`` do) in a fresh process; the parent samples the child's resident memory and stops it past a ceiling
(``--ceiling-mb``, 3000 by default), so that a run of the unbounded code cannot take the machine down.

    python -m bench.extreme_shapes [--ceiling-mb 3000] [--timeout 60]
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

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
NORMAL_PHOTO = ROOT / "tests" / "fixtures" / "identities" / "obama__1.jpg"
SHAPES: tuple[tuple[str, int, int, str], ...] = (
    ("3x9000.png", 3, 9000, "PNG"),
    ("1x20000.png", 1, 20000, "PNG"),
    ("20000x1.png", 20000, 1, "PNG"),
    ("1x65000.jpg", 1, 65000, "JPEG"),
    ("1x90000000.png", 1, 90_000_000, "PNG"),
    ("20x2048.png", 20, 2048, "PNG"),
    ("8x1000.png", 8, 1000, "PNG"),
    ("1x1.png", 1, 1, "PNG"),
)

CHILD = """
import json, sys, time
from pathlib import Path
from facesearch.core.errors import FacesearchError
from facesearch.core.settings import Settings
from facesearch.vision.analysis import FaceAnalyser
analyser = FaceAnalyser(Settings())
analyser.models.detector, analyser.models.landmarks, analyser.models.proposer  # loaded before the clock starts
def peak_mb():  # VmHWM starts afresh at exec, where ru_maxrss keeps the forking parent's
    line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmHWM:"))
    return int(line.split()[1]) // 1024
base = peak_mb()
start = time.perf_counter()
try:
    outcome = f"{len(analyser.detect(Path(sys.argv[1])).faces)} faces"
except FacesearchError as error:
    outcome = f"refused: {error}"
print(json.dumps({"outcome": outcome, "seconds": round(time.perf_counter() - start, 2),
                  "base_mb": base, "peak_mb": peak_mb()}))
"""


def write_shape(folder: Path, name: str, width: int, height: int, fmt: str) -> Path:
    path = folder / name
    Image.new("RGB", (width, height), (128, 128, 128)).save(path, fmt)
    return path


def measure(path: Path, ceiling_mb: int, timeout: float) -> dict[str, object]:
    """Detect ``path`` in a fresh process; its peak memory, time and outcome (or why it was stopped)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True
    )
    start, seen_mb = time.monotonic(), 0
    while child.poll() is None:
        seen_mb = max(seen_mb, rss_mb(child.pid))
        if seen_mb > ceiling_mb or time.monotonic() - start > timeout:
            child.kill()
            child.wait()
            why = f"over {ceiling_mb} MB" if seen_mb > ceiling_mb else f"over {timeout:.0f} s"
            return {"outcome": f"stopped: {why}", "peak_mb": seen_mb, "seconds": round(time.monotonic() - start, 1)}
        time.sleep(0.02)
    out, err = child.communicate()
    if child.returncode:
        return {"outcome": f"crashed ({child.returncode}): {err.strip().splitlines()[-1:]}", "peak_mb": seen_mb}
    result: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    return result


def rss_mb(pid: int) -> int:
    """A running process's resident memory in MB (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ceiling-mb", type=int, default=3000)
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths = [write_shape(folder, *shape) for shape in SHAPES]
        for path in [NORMAL_PHOTO, *paths]:
            result = measure(path, args.ceiling_mb, args.timeout)
            size = f"{path.stat().st_size:,} B"
            print(f"{path.name:>16} {size:>12}  {json.dumps(result)}", flush=True)


if __name__ == "__main__":
    main()
