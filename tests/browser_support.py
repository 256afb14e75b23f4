"""What the browser tests share: Debian's Chromium (skipped with a message where it is missing, a failure
under CI, which installs it), how it is launched, and where screenshots go."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 60_000
SCREENSHOTS = Path(
    os.environ.get("FACESEARCH_SCREENSHOTS", str(Path(__file__).resolve().parents[1] / "build" / "screenshots"))
)


def require_chromium() -> None:
    """Skip the calling test module without Chromium; fail instead under CI."""
    if CHROMIUM.exists():
        return
    message = f"Debian chromium not installed at {CHROMIUM}: apt-get install chromium"
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message, allow_module_level=True)
