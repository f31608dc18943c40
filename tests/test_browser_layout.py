"""What a stakeholder sees on a laptop screen (1280x720) in Chromium: the navigation and the
verdicts of the sample pair, never cut off.

Skipped only where ``/usr/bin/chromium`` is missing (``.ci/run`` installs it).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from browser_util import CHROMIUM, chromium, streamlit_server
from conftest import make_test_model
from playwright.sync_api import Page, expect

from ui.common import HOME, PAGES

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason=f"{CHROMIUM} is missing (apt-get install chromium)")

LAPTOP = {"width": 1280, "height": 720}
SAMPLE_TIMEOUT_MS = 300_000  # fetching, making and analysing the sample pair on a busy CPU


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[str]:
    model = make_test_model(tmp_path_factory.mktemp("layout_model") / "m.pt")
    log = tmp_path_factory.mktemp("layout_server") / "streamlit.log"
    with streamlit_server({"PALSY_MODEL": str(model)}, log) as base:
        yield base


@pytest.fixture(scope="module")
def page(server) -> Iterator[Page]:
    with chromium() as browser:
        yield browser.new_context(viewport=LAPTOP).new_page()


def _sidebar_entries(page: Page) -> list[str]:
    links = page.get_by_test_id("stSidebarNav").get_by_role("link")
    expect(links.first).to_be_visible(timeout=120_000)
    return [t.strip().split("\n")[-1] for t in links.all_inner_texts()]  # after the icon


def test_navigation_lists_home_and_page_titles_from_any_entry_url(page, server):
    """Opening a page's own address (a bookmark, a shared link) shows the same navigation as the
    home page: Home first, then the pages by title; never the script name "app"."""
    titles = [HOME.title, *(p.title for p in PAGES)]
    for path in ("", "/Live", "/Ablation"):
        page.goto(f"{server}{path}")
        assert _sidebar_entries(page) == titles, path
    expect(page).to_have_title(re.compile("^Modality ablation"))


def test_sample_verdicts_are_never_cut_off_on_a_laptop_screen(page, server):
    page.goto(f"{server}/Analyse")
    page.get_by_role("button", name="Try a sample").click()
    expect(page.get_by_text("Explore in detail")).to_be_visible(timeout=SAMPLE_TIMEOUT_MS)
    expect(page.get_by_role("heading", name=re.compile("^Result: "))).to_be_visible()
    values = page.get_by_test_id("stMetricValue")
    expect(values.first).to_be_visible()
    # Every metric value (the two sample verdicts and the result's) shows its whole text: its
    # content is no wider than its box, so no ellipsis.
    seen = values.evaluate_all(
        "els => els.map(e => { const p = e.querySelector('p') || e; "
        "return [e.innerText, p.scrollWidth, p.clientWidth]; })")
    verdicts = [s for s in seen if s[0] in ("palsy suspected", "no palsy detected")]
    assert len(verdicts) >= 3, seen
    cut = [s for s in seen if s[1] > s[2] + 1]
    assert not cut, f"cut-off metric values (text, content width, box width): {cut}"
