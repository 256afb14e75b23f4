"""What the browser tests share: Debian's Chromium (skipped with a message where it is missing, a failure
under CI, which installs it), how it is launched, and where screenshots go."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

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


def sign_in(page: Page, base_url: str, token: str, role: str) -> None:
    page.goto(f"{base_url}/ui/#/signin")
    page.get_by_label("API key").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#who-text")).to_contain_text(f"({role})")


def sign_out(page: Page) -> None:
    """Sign out: the tab forgets the key and every result it kept; nothing was ever kept beyond the tab."""
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("API key")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0
    assert page.evaluate("localStorage.length") == 0


def search(page: Page, probe: Path, case: str) -> None:
    page.get_by_label("Probe photo").set_input_files(str(probe))
    page.get_by_label("Case reference").fill(case)
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.locator("#search-status")).not_to_have_text(re.compile(r"^$|Searching"))
