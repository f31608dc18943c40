"""The guided exam in Chromium: the Live page's exam run end to end on a fake camera that plays a
face performing the seven movements, and the Exam page on the sample exam video; both must end
in a report with every movement that opens offline. Skipped only where ``/usr/bin/chromium`` is
missing (``.ci/run`` installs it).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_pages import ANALYSIS_TIMEOUT_MS, PAGE_TIMEOUT_MS, full_page_screenshot, wait_idle
from browser_util import CHROMIUM, chromium, fake_camera_args, streamlit_server, write_y4m
from conftest import make_test_model
from playwright.sync_api import Browser, Page, expect

from palsy_core.inference.demo import EXAM_FPS, EXAM_WEAK_SIDE, exam_sample
from palsy_core.inference.exam import PROTOCOL
from palsy_core.io.media import iter_video_frames

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason=f"{CHROMIUM} is missing (apt-get install chromium)")

VIEWPORT = {"width": 1400, "height": 1000}
CAMERA_SIZE = (480, 472)  # the sample face's aspect, even sides
EXAM_TIMEOUT_MS = 300_000  # seven movements, each waiting for enough face frames on a busy CPU


@pytest.fixture(scope="module")
def exam_video() -> Path:
    return exam_sample()


@pytest.fixture(scope="module")
def camera_y4m(tmp_path_factory, exam_video) -> Path:
    """The fake camera: the sample exam (rest, then each movement), looped by Chromium."""
    path = tmp_path_factory.mktemp("exam_camera") / "exam.y4m"
    frames = (f.rgb for f in iter_video_frames(exam_video, sample_fps=0))
    write_y4m(frames, path, EXAM_FPS, CAMERA_SIZE)
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    folder = tmp_path_factory.mktemp("exam_server")
    log = folder / "streamlit.log"
    with streamlit_server({"PALSY_MODEL": str(make_test_model(folder / "m.pt"))}, log) as base:
        yield base, log


@pytest.fixture(scope="module")
def browser(camera_y4m) -> Iterator[Browser]:
    with chromium(*fake_camera_args(camera_y4m)) as browser:
        yield browser


@pytest.fixture
def page(browser) -> Iterator[Page]:
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    yield context.new_page()
    context.close()


def _check_report(page: Page, tmp_path: Path, label: str) -> str:
    """Download the HTML report; it names every movement and loads nothing from anywhere."""
    with page.expect_download() as download:
        page.get_by_role("button", name=label).click()
    path = tmp_path / download.value.suggested_filename
    download.value.save_as(path)
    text = path.read_text()
    for m in PROTOCOL:
        assert m.name in text, f"{m.name} missing from the report"
    assert text.count("<img src=\"data:image/png;base64,") == len(PROTOCOL)
    assert not re.search(r"(src|href)=\"(https?:)?//", text), "the report fetches something"
    assert "not clinically validated" in text
    return text


def _check_results(page: Page) -> None:
    """Every movement's panel, with its key frame (loaded) and its own P(palsy)."""
    for m in PROTOCOL:
        expect(page.get_by_text(m.name, exact=True).first).to_be_visible()
    expect(page.get_by_test_id("stImage")).to_have_count(len(PROTOCOL))
    page.wait_for_function("() => [...document.querySelectorAll('[data-testid=stImage] img')]"
                           ".every(i => i.complete && i.naturalWidth > 0)", timeout=30_000)
    expect(page.get_by_text(re.compile(r"^P\(palsy\) (0\.\d\d|1\.00|n/a) · \d+ frame"))
           ).to_have_count(len(PROTOCOL))
    expect(page.get_by_test_id("stMetric").filter(has_text="Exam total")).to_contain_text(
        re.compile(r"\d"))


def test_live_guided_exam_runs_end_to_end_and_gives_a_report(page, server, tmp_path):
    base, log = server
    page.goto(f"{base}/Live")
    page.get_by_text("Guided exam", exact=True).click()
    webrtc = page.frame_locator('iframe[title="streamlit_webrtc.component.webrtc_streamer"]')
    start_camera = webrtc.get_by_role("button", name="Start")
    expect(start_camera).to_be_visible(timeout=PAGE_TIMEOUT_MS)
    start_camera.click()

    start_exam = page.get_by_role("button", name="Start the exam")
    expect(start_exam).to_be_enabled(timeout=PAGE_TIMEOUT_MS)  # once the stream plays
    start_exam.click()
    # The first prompt, then the last one: the exam walks through the protocol in order.
    expect(page.get_by_text(f"Movement 1 of {len(PROTOCOL)}: {PROTOCOL[0].name}")).to_be_visible(
        timeout=PAGE_TIMEOUT_MS)
    expect(page.get_by_text(re.compile(rf"^Movement {len(PROTOCOL)} of {len(PROTOCOL)}"))
           ).to_be_visible(timeout=EXAM_TIMEOUT_MS)
    expect(page.get_by_role("heading", name="Exam results")).to_be_visible(
        timeout=EXAM_TIMEOUT_MS)
    wait_idle(page)
    _check_results(page)
    expect(page.get_by_role("button", name="Redo")).to_have_count(len(PROTOCOL))

    # Redo one movement: its prompt comes back, then the results again.
    page.get_by_role("button", name="Redo").nth(5).click()
    expect(page.get_by_text(f"Movement 1 of 1: {PROTOCOL[5].name}")).to_be_visible(
        timeout=PAGE_TIMEOUT_MS)
    expect(page.get_by_role("button", name="Start the exam")).to_be_visible(
        timeout=EXAM_TIMEOUT_MS)
    wait_idle(page)
    _check_results(page)

    full_page_screenshot(page, tmp_path / "live_exam.png")
    print(f"screenshot: {tmp_path / 'live_exam.png'}")
    _check_report(page, tmp_path, "Report (HTML)")
    with page.expect_download() as pdf:
        page.get_by_role("button", name="Report (PDF)").click()
    pdf_path = tmp_path / "exam.pdf"
    pdf.value.save_as(pdf_path)
    assert pdf_path.read_bytes()[:5] == b"%PDF-"
    text = log.read_text(errors="replace")
    assert "Traceback" not in text and "Please replace" not in text  # no deprecation spam


def test_exam_page_finds_the_movements_of_the_sample_and_grades_them(page, server, tmp_path):
    base, log = server
    page.goto(f"{base}/Exam")
    page.get_by_role("button", name="Try the sample exam").click()
    expect(page.get_by_role("heading", name=re.compile("Movements found in sample exam"))
           ).to_be_visible(timeout=ANALYSIS_TIMEOUT_MS)
    wait_idle(page)
    _check_results(page)
    # The sample's weak side is the subject's left: the exam says so.
    expect(page.get_by_test_id("stMetric").filter(has_text="Exam points to")
           .get_by_test_id("stMetricValue")).to_have_text(EXAM_WEAK_SIDE.capitalize())
    full_page_screenshot(page, tmp_path / "exam_page.png")
    print(f"screenshot: {tmp_path / 'exam_page.png'}")
    text = _check_report(page, tmp_path, "Report (HTML)")
    assert "Guided exam: sample exam" in text
    assert "Traceback" not in log.read_text(errors="replace")
