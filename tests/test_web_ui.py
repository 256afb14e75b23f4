"""The web UI at /ui/ end to end, in real headless Chromium (Playwright) against a real ``facesearch serve``.

Screenshots of the main pages go to $FACESEARCH_SCREENSHOTS (default build/screenshots)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from browser_support import TIMEOUT_MS, require_chromium, search, sign_in, sign_out
from server_support import FIXTURES, Gallery, live_server, prepare_gallery

require_chromium()

from playwright.sync_api import Browser, Dialog, Page, expect  # noqa: E402

PROBE = FIXTURES / "identities" / "obama__3.jpg"
OBAMA_SOURCES = ("obama__1.jpg", "obama__2.jpg")
"""The other photos of the probe's person: the probe itself is held out of the gallery."""


@pytest.fixture(scope="module")
def gallery(tmp_path_factory: pytest.TempPathFactory) -> Gallery:
    return prepare_gallery(tmp_path_factory.mktemp("webui"), hold_out=(PROBE.name,))


@pytest.fixture(scope="module")
def base_url(gallery: Gallery) -> Iterator[str]:
    with live_server(gallery, FACESEARCH_SEARCH_RATE_PER_MINUTE="1000") as base:
        yield base


def assert_no_sideways_scroll(page: Page, what: str) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375 + 1, f"{what} scrolls sideways at 375 px: {width} px wide"


def test_phone_width_and_keyboard_sign_in(browser: Browser, base_url: str, gallery: Gallery, screenshots: Path) -> None:
    context = browser.new_context(viewport={"width": 375, "height": 740})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        page.goto(f"{base_url}/ui/")
        key_input = page.get_by_label("API key")
        key_input.focus()
        expect(key_input).to_be_focused()
        page.keyboard.type(gallery.keys["search"])
        page.keyboard.press("Enter")
        expect(page).to_have_url(re.compile(r"#/search$"))
        expect(page.get_by_label("Probe photo")).to_be_visible()
        expect(page.locator("#purpose")).to_contain_text("fact checks")
        assert_no_sideways_scroll(page, "the search page")
        search(page, FIXTURES / "identities" / "bbt_penny__1.png", "phone check")
        expect(page.locator("#results .match").first).to_be_visible()
        expect(page.locator("#results .match .source").first).to_contain_text("bbt_penny__")
        assert_no_sideways_scroll(page, "the search results")
        page.screenshot(path=str(screenshots / "phone-search.png"), full_page=True)
    finally:
        context.close()


def test_search_view_erase_and_audit(page: Page, base_url: str, gallery: Gallery, screenshots: Path) -> None:
    page.goto(f"{base_url}/ui/")
    expect(page).to_have_url(re.compile(r"#/signin$"))
    page.screenshot(path=str(screenshots / "signin.png"))

    # A bad key is refused with the API's message.
    page.get_by_label("API key").fill("not-a-key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("invalid or revoked API key")

    # Search: the same person's other photos come first.
    sign_in(page, base_url, gallery.keys["search"], "search")
    expect(page).to_have_url(re.compile(r"#/search$"))
    expect(page.locator("nav")).to_contain_text("Search")
    expect(page.locator("nav")).not_to_contain_text("Audit log")
    assert page.evaluate("localStorage.length") == 0
    search(page, PROBE, "ticket 42")
    cards = page.locator("#results .match")
    expect(cards.first).to_be_visible()
    sources = cards.locator(".source").all_inner_texts()
    assert sources[0] in OBAMA_SOURCES, sources
    assert sorted(sources[:2]) == sorted(OBAMA_SOURCES), sources
    expect(cards.first.locator("img")).to_have_js_property("complete", True)
    page.wait_for_function("() => document.querySelector('#results .match img').naturalWidth > 0")
    expect(cards.first).to_have_attribute("href", re.compile(r"^#/image/\d+\?face=\d+$"))
    page.screenshot(path=str(screenshots / "search-results.png"), full_page=True)

    # The image view: the picture with boxes, and its facts.
    first_source = sources[0]
    cards.first.click()
    expect(page).to_have_url(re.compile(r"#/image/\d+\?face=\d+$"))
    expect(page.locator("#image-facts")).to_contain_text(first_source)
    expect(page.locator("#image-facts")).to_contain_text("news")
    page.wait_for_function("() => document.querySelector('#picture').naturalWidth > 0")
    page.screenshot(path=str(screenshots / "image-view.png"), full_page=True)

    # Collections.
    page.get_by_role("link", name="Collections").click()
    rows = page.locator("#collections tbody tr")
    expect(rows.filter(has_text="news")).to_contain_text("legitimate-interests")
    expect(rows.filter(has_text="news")).to_contain_text("11")
    page.screenshot(path=str(screenshots / "collections.png"), full_page=True)
    sign_out(page)

    # A CompreFace recognition key: its collections, and where its work is done.
    sign_in(page, base_url, gallery.keys["recognition"], "recognition")
    expect(page).to_have_url(re.compile(r"#/collections$"))
    expect(page.locator("#recognition-note")).to_contain_text("/api/v1/recognition")
    expect(page.locator("#collections tbody tr").filter(has_text="subjects")).to_be_visible()
    sign_out(page)

    # Rights: an access report, then an erasure.
    sign_in(page, base_url, gallery.keys["rights"], "rights")
    expect(page).to_have_url(re.compile(r"#/rights$"))
    page.get_by_label("Photo of the person").set_input_files(str(PROBE))
    page.get_by_label("Request reference").fill("SAR-2026-017")
    page.get_by_role("button", name="Access report").click()
    expect(page.locator("#access-status")).to_contain_text("2 image(s) held")
    expect(page.locator("#access tbody tr")).to_have_count(2)
    expect(page.locator("#access")).to_contain_text("obama__1.jpg")
    page.screenshot(path=str(screenshots / "rights-access.png"), full_page=True)

    dialogs: list[str] = []

    def accept(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    page.get_by_role("button", name="Erase").click()
    expect(page.locator("#erase-status")).to_contain_text("2 face(s) and 2 image(s) removed")
    expect(page.locator("#erase-status")).to_contain_text("SAR-2026-017")
    assert dialogs and "Erase" in dialogs[0]
    page.screenshot(path=str(screenshots / "rights-erasure.png"), full_page=True)
    sign_out(page)

    # The person is gone from search.
    sign_in(page, base_url, gallery.keys["search"], "search")
    search(page, PROBE, "ticket 42 again")
    expect(page.locator("#search-status")).to_contain_text("No matches")
    expect(page.locator("#results .match")).to_have_count(0)
    sign_out(page)

    # The audit log: the searches and the erasure are there, and the chain verifies.
    sign_in(page, base_url, gallery.keys["auditor"], "auditor")
    expect(page).to_have_url(re.compile(r"#/audit$"))
    table = page.locator("#audit tbody")
    expect(table.locator("tr").filter(has_text="erasure")).not_to_have_count(0)
    expect(table.locator("tr").filter(has_text="ticket 42")).not_to_have_count(0)
    page.get_by_label("Action").select_option("search")
    page.get_by_role("button", name="Filter").click()
    expect(table.locator("tr").filter(has_text="configuration")).to_have_count(0)
    expect(table.locator("tr").filter(has_text="ticket 42 again")).to_have_count(1)
    for action in table.locator("tr td:nth-child(4)").all_inner_texts():
        assert action == "search", action
    page.get_by_role("button", name="Verify chain").click()
    expect(page.locator("#chain-status")).to_contain_text(re.compile(r"Chain intact: \d+ entries"))
    page.screenshot(path=str(screenshots / "audit-log.png"), full_page=True)
