"""The web UI shows each search's operating point and each match's same-person score, and a rights request's
possible matches with checkboxes whose ticked faces the erasure takes (real Chromium, real ``facesearch serve``)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from browser_support import require_chromium, search, sign_in, sign_out
from server_support import ADMIN, Gallery, live_server, prepare_gallery
from test_rights_review import GROUP, PROBE, REVIEW_RECIPE, RICK

require_chromium()

from playwright.sync_api import Dialog, Page, expect  # noqa: E402

from facesearch.engine.engine import Engine  # noqa: E402


@pytest.fixture(scope="module")
def gallery(tmp_path_factory: pytest.TempPathFactory) -> Gallery:
    made = prepare_gallery(tmp_path_factory.mktemp("webui-review"), ingest=False, template_recipe=REVIEW_RECIPE)
    with Engine.open(made.settings) as engine:
        engine.ingest("news", [*RICK, GROUP], ADMIN, workers=1)
    return made


@pytest.fixture(scope="module")
def base_url(gallery: Gallery) -> Iterator[str]:
    with live_server(gallery, FACESEARCH_SEARCH_RATE_PER_MINUTE="1000") as base:
        yield base


def test_scores_operating_point_and_confirmed_possible_matches(page: Page, base_url: str, gallery: Gallery) -> None:
    sign_in(page, base_url, gallery.keys["search"], "search")
    search(page, PROBE, "ticket 7")
    expect(page.locator("#results .operating-point")).to_contain_text(
        re.compile(r"Threshold 0\.\d+ \(chosen for 0\.1 wrong people per probe face\) over 7 face\(s\) searched")
    )
    expect(page.locator("#results .match").first).to_contain_text(re.compile(r"Same person\s*>99%"))
    sign_out(page)

    sign_in(page, base_url, gallery.keys["rights"], "rights")
    page.get_by_label("Photo of the person").set_input_files(str(PROBE))
    page.get_by_label("Request reference").fill("SAR-2026-031")
    page.get_by_role("button", name="Access report").click()
    expect(page.locator("#access-status")).to_contain_text("3 image(s) held")
    expect(page.locator("#access-status")).to_contain_text("1 possible match(es) to review")
    review = page.locator("#review tbody tr")
    expect(review).to_have_count(1)
    expect(review).to_contain_text(GROUP.name)
    review.get_by_role("checkbox").check()

    page.on("dialog", lambda dialog: dialog.accept() if isinstance(dialog, Dialog) else None)
    page.get_by_role("button", name="Erase").click()
    expect(page.locator("#erase-status")).to_contain_text(
        "4 face(s) and 3 image(s) removed, including 1 confirmed possible match(es)"
    )
    expect(page.locator("#review-wrap")).to_be_hidden()
