"""A day's work in the web UI, end to end in real headless Chromium (Playwright) against a real ``facesearch serve``:
search results that survive Back and reload without a new search, the image page's way back and the match's
distance, an erased image, an administrator creating a collection, an ingest key uploading photos with progress
and grouping them into people, a merge of a named person, readable audit details, an erasure that leaves only its
receipt, and tables at phone width.

Screenshots go to $FACESEARCH_SCREENSHOTS (default build/screenshots)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from browser_support import TIMEOUT_MS, require_chromium, search, sign_in, sign_out
from server_support import FIXTURES, Gallery, live_server, prepare_gallery

require_chromium()

from playwright.sync_api import Browser, Dialog, Page, expect  # noqa: E402

IDENTITIES = FIXTURES / "identities"
PROBE = IDENTITIES / "obama__3.jpg"
FAMILY = "family"


@pytest.fixture(scope="module")
def gallery(tmp_path_factory: pytest.TempPathFactory) -> Gallery:
    return prepare_gallery(tmp_path_factory.mktemp("webui-workday"), hold_out=(PROBE.name,))


@pytest.fixture(scope="module")
def base_url(gallery: Gallery) -> Iterator[str]:
    with live_server(gallery, FACESEARCH_SEARCH_RATE_PER_MINUTE="1000") as base:
        yield base


def call(base_url: str, token: str, method: str, path: str, **kwargs: Any) -> Any:
    with httpx2.Client(base_url=base_url, headers={"X-API-Key": token}, timeout=60) as client:
        response = client.request(method, path, **kwargs)
    response.raise_for_status()
    return response.json() if response.content else None


def audited(base_url: str, gallery: Gallery, action: str) -> int:
    answer = call(base_url, gallery.keys["auditor"], "GET", "/v1/audit", params={"action": action, "limit": 1000})
    return len(answer["items"])


def accept_dialogs(page: Page) -> list[str]:
    seen: list[str] = []

    def accept(dialog: Dialog) -> None:
        seen.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    return seen


def thumbnails_loaded(page: Page, selector: str) -> None:
    page.wait_for_function(
        "sel => [...document.querySelectorAll(sel)].every(i => i.complete && i.naturalWidth > 0)", arg=selector
    )


def test_results_survive_back_and_reload_without_a_new_search(
    page: Page, base_url: str, gallery: Gallery, screenshots: Path
) -> None:
    sign_in(page, base_url, gallery.keys["search"], "search")
    search(page, PROBE, "case 7")
    cards = page.locator("#results .match")
    expect(cards.first).to_be_visible()
    sources = cards.locator(".source").all_inner_texts()
    first_distance = cards.first.locator("dd").first.inner_text()
    searches = audited(base_url, gallery, "search")

    # The image page: a way back, and the match's distance beside the image's facts.
    cards.first.click()
    expect(page).to_have_url(re.compile(r"#/image/\d+\?face=\d+$"))
    facts = page.locator("#match-facts")
    expect(facts).to_be_visible()
    expect(facts.locator("tr").filter(has_text="Distance")).to_contain_text(first_distance)
    expect(facts).to_contain_text("case 7")
    page.wait_for_function("() => document.querySelector('#picture').naturalWidth > 0")
    page.screenshot(path=str(screenshots / "workday-image-match.png"), full_page=True)

    # Back (the browser's), then the page's own link, then a reload: the same results every time.
    page.go_back()
    expect(page).to_have_url(re.compile(r"#/search$"))
    expect(cards).to_have_count(len(sources))
    assert cards.locator(".source").all_inner_texts() == sources
    expect(page.locator("#results-note")).to_contain_text("case 7")
    expect(page.locator("#results-note")).to_contain_text("runs no new search")
    thumbnails_loaded(page, "#results .match img")
    cards.first.click()
    page.wait_for_function("() => document.querySelector('#picture').naturalWidth > 0")
    views = audited(base_url, gallery, "view")
    page.get_by_role("link", name="Back to the results").click()
    expect(page).to_have_url(re.compile(r"#/search$"))
    expect(page.locator("#results a.match").first).to_be_focused()
    thumbnails_loaded(page, "#results .match img")
    page.reload()
    expect(cards).to_have_count(len(sources))
    assert cards.locator(".source").all_inner_texts() == sources
    thumbnails_loaded(page, "#results .match img")
    page.screenshot(path=str(screenshots / "workday-results-kept.png"), full_page=True)
    assert audited(base_url, gallery, "search") == searches, "showing kept results ran a new search"
    assert audited(base_url, gallery, "view") == views, "showing kept results fetched their thumbnails again"

    # Sign-out forgets them; the next key in this tab starts with an empty form.
    sign_out(page)
    sign_in(page, base_url, gallery.keys["search"], "search")
    expect(page.get_by_label("Probe photo")).to_be_visible()
    expect(cards).to_have_count(0)
    expect(page.locator("#results-kept")).to_be_hidden()


def test_an_erased_image_says_so_and_leaves_the_results(page: Page, base_url: str, gallery: Gallery) -> None:
    sign_in(page, base_url, gallery.keys["search"], "search")
    search(page, IDENTITIES / "twd_daryl__1.jpg", "case 8")
    cards = page.locator("#results .match")
    expect(cards.first).to_be_visible()
    before = cards.count()
    cards.first.click()
    expect(page.locator("#image-facts")).to_be_visible()
    image_id = int(re.search(r"#/image/(\d+)", page.url).group(1))  # type: ignore[union-attr]

    call(base_url, gallery.keys["rights"], "DELETE", f"/v1/images/{image_id}", params={"reason": "ER-2026-8"})
    page.reload()
    expect(page.get_by_role("heading", name="Image no longer held")).to_be_visible()
    expect(page.locator("#image-gone-text")).to_contain_text(f"Image #{image_id} is no longer held")
    expect(page.locator("#image-card")).to_be_hidden()
    expect(page.get_by_role("alert")).to_be_hidden()
    page.get_by_role("link", name="Back to the results").click()
    expect(cards).to_have_count(before - 1)
    expect(page.locator(f'#results a.match[href^="#/image/{image_id}?"]')).to_have_count(0)


def test_admin_creates_a_collection_and_ingest_uploads_and_groups_it(
    page: Page, base_url: str, gallery: Gallery, screenshots: Path
) -> None:
    # The administrator: a collection with its purpose, basis, condition and retention.
    sign_in(page, base_url, gallery.keys["admin"], "admin")
    expect(page).to_have_url(re.compile(r"#/collections$"))
    page.get_by_label("Name", exact=True).fill(FAMILY)
    page.get_by_label("Purpose", exact=True).fill("Our own family photo archive, grouped by person")
    page.get_by_label("Lawful basis").select_option("consent")
    page.get_by_label("Biometric condition").select_option("explicit-consent")
    page.get_by_label("Retention").fill("10 years")
    page.get_by_label("The purpose allows grouping faces into people").check()
    page.get_by_role("button", name="Create collection").click()
    expect(page.get_by_role("alert")).to_contain_text("retention '10 years' is not a period")
    page.get_by_label("Retention").fill("10y")
    page.get_by_role("button", name="Create collection").click()
    expect(page.locator("#collection-status")).to_contain_text(f"Created collection {FAMILY}")
    expect(page.locator("#collections tbody tr").filter(has_text=FAMILY)).to_contain_text("consent")
    page.screenshot(path=str(screenshots / "workday-admin-collections.png"), full_page=True)
    sign_out(page)

    ingest = call(
        base_url,
        gallery.keys["admin"],
        "POST",
        "/v1/keys",
        json={"owner": "family archivist", "role": "ingest", "collections": [FAMILY]},
    )["token"]

    # Ingest: upload the photos a few at a time, with progress, then group them from the people page.
    sign_in(page, base_url, ingest, "ingest")
    expect(page).to_have_url(re.compile(r"#/upload$"))
    photos = [*sorted(str(p) for p in IDENTITIES.iterdir()), str(FIXTURES / "corrupt" / "text.jpg")]
    page.get_by_label("Photos").set_input_files(photos)
    page.get_by_role("button", name="Upload").click()
    progress = page.locator("#upload-progress")
    expect(page.locator("#upload-status")).to_contain_text("Done.")
    assert progress.evaluate("p => [p.value, p.max]") == [len(photos), len(photos)]
    expect(page.locator("#upload-status")).to_contain_text(f"{len(photos)} of {len(photos)} photo(s) sent: 12 image(s)")
    expect(page.locator("#upload-failures li")).to_have_count(1)
    expect(page.locator("#upload-failures")).to_contain_text("text.jpg")
    page.screenshot(path=str(screenshots / "workday-upload.png"), full_page=True)

    page.get_by_role("link", name="People").click()
    page.get_by_role("button", name="Group into people").click()
    grouped = re.compile(r"Grouped \d+ faces of family in [\d.]+ s: \d+ people")
    expect(page.locator("#grouping-status")).to_contain_text(grouped)
    assert page.locator("#grouping-progress").evaluate("p => [p.value, p.max]") == [4, 4]
    page.screenshot(path=str(screenshots / "workday-grouping.png"), full_page=True)
    sign_out(page)
    listed = call(base_url, gallery.keys["search"], "GET", f"/v1/collections/{FAMILY}/people")
    assert len(listed["items"]) >= 4, listed


def test_merging_into_an_unnamed_person_names_both_sides(page: Page, base_url: str, gallery: Gallery) -> None:
    token = gallery.keys["search"]
    items = call(base_url, token, "GET", f"/v1/collections/{FAMILY}/people")["items"]
    keep, named = items[0], items[1]
    call(base_url, token, "PATCH", f"/v1/people/{named['id']}", json={"name": "Andre Agassi"})

    sign_in(page, base_url, token, "search")
    page.goto(f"{base_url}/ui/#/people?collection={FAMILY}")
    dialogs = accept_dialogs(page)
    page.locator(f"#select-person-{keep['id']}").check()
    page.locator(f"#select-person-{named['id']}").check()
    page.get_by_role("button", name="Merge selected").click()
    status = page.locator("#people-status")
    merged = f"Merged Andre Agassi (#{named['id']}) into Person #{keep['id']}, now named Andre Agassi"
    expect(status).to_contain_text(merged)
    assert "into Andre Agassi" not in status.inner_text()
    assert dialogs and f"Person #{keep['id']}" in dialogs[0]


def test_erasure_leaves_only_its_receipt_and_audit_details_read_as_fields(
    page: Page, base_url: str, gallery: Gallery, screenshots: Path
) -> None:
    sign_in(page, base_url, gallery.keys["rights"], "rights")
    page.get_by_label("Photo of the person").set_input_files(str(IDENTITIES / "bbt_sheldon__1.png"))
    page.get_by_label("Request reference").fill("ER-2026-9")
    page.get_by_role("button", name="Access report").click()
    expect(page.locator("#access tbody tr")).not_to_have_count(0)
    accept_dialogs(page)
    page.get_by_role("button", name="Erase").click()
    expect(page.locator("#erase-status")).to_contain_text("Erasure receipt")
    expect(page.locator("#erase-status")).to_have_class(re.compile(r"\bok\b"))
    expect(page.locator("#access-wrap")).to_be_hidden()
    expect(page.locator("#access-status")).to_have_text("")
    page.screenshot(path=str(screenshots / "workday-erasure.png"), full_page=True)
    sign_out(page)

    sign_in(page, base_url, gallery.keys["auditor"], "auditor")
    page.get_by_label("Action").select_option("erasure")
    page.get_by_role("button", name="Filter").click()
    row = page.locator("#audit tbody tr").filter(has_text="ER-2026-9")
    expect(row).to_have_count(1)
    details = row.locator("td.details dl.fields")
    expect(details.locator("dt").first).to_be_visible()
    expect(details.locator("dt").filter(has_text="faces removed")).to_be_visible()
    expect(details.locator("dt").filter(has_text="receipt id")).to_be_visible()
    for text in page.locator("#audit td.details").all_inner_texts():
        assert "{" not in text and '"' not in text, text
    page.screenshot(path=str(screenshots / "workday-audit.png"), full_page=True)


@pytest.mark.parametrize("width", [390, 1280])
def test_wide_tables_say_they_scroll(
    browser: Browser, base_url: str, gallery: Gallery, screenshots: Path, width: int
) -> None:
    context = browser.new_context(viewport={"width": width, "height": 800})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        sign_in(page, base_url, gallery.keys["auditor"], "auditor")
        page.get_by_role("link", name="Collections").click()
        expect(page.locator("#collections tbody tr")).not_to_have_count(0)
        cue = page.locator("#collections").locator("xpath=..").locator(".scroll-cue")
        if width < 500:
            expect(cue).to_be_visible()
            expect(page.locator("#collections").locator("xpath=..")).to_have_class(re.compile(r"\bwide\b"))
            assert page.evaluate("document.documentElement.scrollWidth") <= width + 1
        else:
            expect(cue).to_be_hidden()
        page.screenshot(path=str(screenshots / f"workday-collections-{width}.png"), full_page=True)
        page.get_by_role("link", name="Audit log").click()
        expect(page.locator("#audit tbody tr")).not_to_have_count(0)
        page.screenshot(path=str(screenshots / f"workday-audit-{width}.png"), full_page=True)
        sign_out(page)

        # The search results and a match's image page fit the screen too.
        sign_in(page, base_url, gallery.keys["search"], "search")
        search(page, PROBE, f"width {width}")
        page.locator("#results .match").first.click()
        expect(page.locator("#match-facts")).to_be_visible()
        page.wait_for_function("() => document.querySelector('#picture').naturalWidth > 0")
        assert page.evaluate("document.documentElement.scrollWidth") <= width + 1
        page.screenshot(path=str(screenshots / f"workday-image-{width}.png"), full_page=True)
        page.go_back()
        expect(page.locator("#results .match").first).to_be_visible()
        thumbnails_loaded(page, "#results .match img")
        page.screenshot(path=str(screenshots / f"workday-results-{width}.png"), full_page=True)
    finally:
        context.close()
