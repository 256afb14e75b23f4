"""The People pages of the web UI (#/people, #/person/<id>) end to end, in real headless Chromium (Playwright)
against a real ``facesearch serve`` over a collection whose faces were grouped into people.

Screenshots go to $FACESEARCH_SCREENSHOTS (default build/screenshots)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from browser_support import TIMEOUT_MS, require_chromium
from server_support import ADMIN, FIXTURES, Gallery, live_server, prepare_gallery

require_chromium()

from playwright.sync_api import Browser, Dialog, Locator, Page, expect  # noqa: E402

from facesearch.engine.engine import Engine  # noqa: E402
from facesearch.people.service import People  # noqa: E402
from facesearch.safeguards.governance import CollectionSpec  # noqa: E402

COLLECTION = "family"
IMAGES_LOADED = "sel => [...document.querySelectorAll(sel)].every(i => i.complete && i.naturalWidth > 0)"


@pytest.fixture(scope="module")
def gallery(tmp_path_factory: pytest.TempPathFactory) -> Gallery:
    """The fixture identities (4 people x 3 photos) in a collection declared for grouping, clustered."""
    prepared = prepare_gallery(tmp_path_factory.mktemp("webui-people"), ingest=False)
    spec = CollectionSpec.parse(
        name=COLLECTION,
        purpose="Our own family photo archive, grouped by person",
        lawful_basis="consent",
        biometric_condition="explicit-consent",
        retention="10y",
        people_allowed=True,
    )
    with Engine.open(prepared.settings) as engine:
        engine.create_collection(spec, ADMIN)
        engine.ingest(COLLECTION, [FIXTURES / "identities"], ADMIN, workers=1)
        People(engine).cluster(COLLECTION, ADMIN)
    return prepared


@pytest.fixture(scope="module")
def base_url(gallery: Gallery) -> Iterator[str]:
    with live_server(gallery) as base:
        yield base


@pytest.fixture(scope="module")
def client(base_url: str, gallery: Gallery) -> Iterator[httpx2.Client]:
    with httpx2.Client(base_url=base_url, headers={"X-API-Key": gallery.keys["search"]}, timeout=30) as opened:
        yield opened


def people(client: httpx2.Client, hidden: bool = False) -> dict[str, Any]:
    response = client.get(f"/v1/collections/{COLLECTION}/people", params={"hidden": str(hidden).lower()})
    response.raise_for_status()
    answer: dict[str, Any] = response.json()
    return answer


def person(client: httpx2.Client, person_id: int) -> dict[str, Any]:
    response = client.get(f"/v1/people/{person_id}")
    response.raise_for_status()
    answer: dict[str, Any] = response.json()
    return answer


def label(info: dict[str, Any]) -> str:
    return str(info["name"]).strip() or f"Person #{info['id']}"


def card(page: Page, person_id: int) -> Locator:
    return page.locator(f'#people .person[data-person-id="{person_id}"]')


def faces_word(count: int) -> str:
    return f"{count} face" if count == 1 else f"{count} faces"


def sign_in(page: Page, base_url: str, token: str) -> None:
    page.goto(f"{base_url}/ui/#/signin")
    page.get_by_label("API key").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#who-text")).to_contain_text("(search)")


def open_people(page: Page) -> None:
    page.get_by_role("link", name="People", exact=True).click()
    expect(page).to_have_url(re.compile(r"#/people"))
    page.get_by_label("Collection").select_option(COLLECTION)


def assert_grid_matches(page: Page, client: httpx2.Client) -> list[dict[str, Any]]:
    """The cards are the API's people, in its order (largest first), with their face counts."""
    items: list[dict[str, Any]] = people(client)["items"]
    cards = page.locator("#people .person")
    expect(cards).to_have_count(len(items))
    shown = [cards.nth(i).get_attribute("data-person-id") for i in range(len(items))]
    assert shown == [str(item["id"]) for item in items]
    for item in items:
        expect(card(page, item["id"]).locator(".person-name")).to_have_text(label(item))
        expect(card(page, item["id"]).locator(".person-count")).to_contain_text(faces_word(item["face_count"]))
    return items


def assert_no_sideways_scroll(page: Page, what: str) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375 + 1, f"{what} scrolls sideways at 375 px: {width} px wide"


def test_people_name_merge_split_hide(
    page: Page, base_url: str, gallery: Gallery, client: httpx2.Client, screenshots: Path
) -> None:
    sign_in(page, base_url, gallery.keys["search"])
    expect(page.locator("nav")).to_contain_text("People")
    open_people(page)

    # The grid is the API's people, with the faces kept out of grouping counted in a note.
    answer = people(client)
    assert len(answer["items"]) >= 3, answer
    items = assert_grid_matches(page, client)
    expect(page.locator("#people-note")).to_contain_text(
        f"{faces_word(answer['low_quality_faces'])} too small, blurred or unsure to group"
    )
    alone = answer["faces_alone"]
    assert alone == sum(1 for item in answer["items"] if item["face_count"] == 1)  # hidden people: none yet
    expect(page.locator("#people-note")).to_contain_text(f"{faces_word(alone)} stand{'s' if alone == 1 else ''} alone")
    expect(page.get_by_role("button", name="Merge selected")).to_be_disabled()
    page.wait_for_function(IMAGES_LOADED, arg="#people img")
    page.screenshot(path=str(screenshots / "people-grid.png"), full_page=True)

    # Name the first (largest) person on their page, and see the name back on the grid.
    first = items[0]
    card(page, first["id"]).locator(".person-link").click()
    expect(page).to_have_url(re.compile(rf"#/person/{first['id']}$"))
    expect(page.locator("#person-faces .face")).to_have_count(first["face_count"])
    page.get_by_label("Name", exact=True).fill("Grandma")
    page.get_by_role("button", name="Save name").click()
    expect(page.locator("#people-status")).to_contain_text("Grandma")
    expect(page.locator("#person-title")).to_have_text("Grandma")
    assert person(client, first["id"])["info"]["name"] == "Grandma"
    page.wait_for_function(IMAGES_LOADED, arg="#person-faces img")
    page.screenshot(path=str(screenshots / "person.png"), full_page=True)
    page.get_by_role("link", name="All people").click()
    expect(card(page, first["id"]).locator(".person-name")).to_have_text("Grandma")
    items = assert_grid_matches(page, client)

    # Merge: tick Grandma, then another person; the second joins the first.
    dialogs: list[str] = []

    def accept(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    other = items[1]
    page.get_by_label("Select Grandma", exact=True).check()
    expect(page.get_by_role("button", name="Merge selected")).to_be_disabled()
    page.get_by_label(f"Select {label(other)}", exact=True).check()
    expect(page.get_by_role("button", name="Merge selected")).to_be_enabled()
    page.get_by_role("button", name="Merge selected").click()
    merged_count = first["face_count"] + other["face_count"]
    expect(page.locator("#people .person")).to_have_count(len(items) - 1)
    expect(card(page, other["id"])).to_have_count(0)
    expect(card(page, first["id"]).locator(".person-count")).to_contain_text(faces_word(merged_count))
    expect(page.locator("#people-status")).to_contain_text("Merged")
    assert dialogs and "Merge" in dialogs[-1], dialogs
    assert person(client, first["id"])["info"]["face_count"] == merged_count
    items = assert_grid_matches(page, client)

    # Split one face out of the merged person: it becomes a new person, whose page opens.
    card(page, first["id"]).locator(".person-link").click()
    expect(page).to_have_url(re.compile(rf"#/person/{first['id']}$"))
    expect(page.locator("#person-faces .face")).to_have_count(merged_count)
    split_button = page.get_by_role("button", name="Split selected into a new person")
    expect(split_button).to_be_disabled()
    face_id = person(client, first["id"])["faces"][-1]["face_id"]
    page.get_by_label(f"Select face {face_id}", exact=True).check()
    expect(split_button).to_be_enabled()
    split_button.click()
    expect(page).not_to_have_url(re.compile(rf"#/person/{first['id']}$"))
    expect(page).to_have_url(re.compile(r"#/person/\d+$"))
    new_id = int(page.url.rsplit("/", 1)[1])
    expect(page.locator("#person-faces .face")).to_have_count(1)
    expect(page.locator(f'#person-faces .face[data-face-id="{face_id}"]')).to_have_count(1)
    expect(page.locator("#people-status")).to_contain_text("Split 1 face")
    assert "Split" in dialogs[-1], dialogs
    assert [f["face_id"] for f in person(client, new_id)["faces"]] == [face_id]
    assert person(client, first["id"])["info"]["face_count"] == merged_count - 1

    # Hide the new person: gone from the grid unless "Show hidden" is ticked.
    page.get_by_role("button", name="Hide", exact=True).click()
    expect(page.get_by_role("button", name="Show", exact=True)).to_be_visible()
    assert person(client, new_id)["info"]["hidden"] is True
    page.get_by_role("link", name="All people").click()
    expect(page.locator("#people .person")).to_have_count(len(people(client)["items"]))
    expect(card(page, first["id"])).to_have_count(1)
    expect(card(page, new_id)).to_have_count(0)
    page.get_by_label("Show hidden").check()
    expect(page.locator("#people .person")).to_have_count(len(people(client, hidden=True)["items"]))
    expect(card(page, new_id)).to_have_count(1)
    expect(card(page, new_id)).to_contain_text("hidden")
    page.get_by_label("Show hidden").uncheck()
    expect(card(page, new_id)).to_have_count(0)
    expect(page.get_by_role("alert")).to_be_hidden()


def test_people_at_phone_width(browser: Browser, base_url: str, gallery: Gallery, screenshots: Path) -> None:
    context = browser.new_context(viewport={"width": 375, "height": 740})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        sign_in(page, base_url, gallery.keys["search"])
        open_people(page)
        expect(page.locator("#people .person").first).to_be_visible()
        page.wait_for_function(IMAGES_LOADED, arg="#people img")
        assert_no_sideways_scroll(page, "the people page")
        page.screenshot(path=str(screenshots / "people-phone.png"), full_page=True)
        page.locator("#people .person-link").first.click()
        expect(page.locator("#person-faces .face").first).to_be_visible()
        assert_no_sideways_scroll(page, "a person's page")
    finally:
        context.close()
