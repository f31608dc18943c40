"""Playwright helpers for the dashboard's pages in a real browser: open a page and wait for its
script run to end (read from the server's own messages), upload a file through Chromium's file
chooser, move a slider, find a metric or a result, check that nothing failed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from browser_util import log_tail
from google.protobuf.message import DecodeError
from playwright.sync_api import Locator, Page, WebSocket, expect
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

ANALYSIS_TIMEOUT_MS = 240_000  # one upload's analysis on a busy 2-core CPU
PAGE_TIMEOUT_MS = 120_000  # the page's first run, the model load included


def open_analyse(page: Page, base: str) -> tuple[Locator, WebSocket]:
    """The Analyse page once its first run is over: its uploader and the page's connection to
    the server (its messages tell when a script run ends, see ``_rerun``)."""
    with page.expect_websocket(lambda ws: ws.url.endswith("/_stcore/stream"),
                               timeout=PAGE_TIMEOUT_MS) as stream:
        page.goto(f"{base}/Analyse")
    uploader = page.get_by_test_id("stFileUploader")
    expect(uploader).to_be_visible(timeout=PAGE_TIMEOUT_MS)
    wait_idle(page)
    return uploader, stream.value


def run_finished(payload: str | bytes) -> bool:
    """Whether a message from the server says a script run is over (not cut short by another)."""
    if isinstance(payload, str):
        return False
    try:
        msg = ForwardMsg.FromString(payload)
    except DecodeError:
        return False
    return (msg.WhichOneof("type") == "script_finished"
            and msg.script_finished == ForwardMsg.FINISHED_SUCCESSFULLY)


def wait_idle(page: Page, timeout_ms: float = ANALYSIS_TIMEOUT_MS) -> None:
    """Until the script run is over: during a rerun, the previous run's elements still show."""
    expect(page.get_by_test_id("stApp")).to_have_attribute(
        "data-test-script-state", "notRunning", timeout=timeout_ms)


def choose_file(page: Page, uploader: Locator, path: Path) -> None:
    """Upload ``path`` as a user does: the uploader's "Upload" button ("Add files" once it holds
    a file; one file at a time, so the new one replaces it), then Chromium's file chooser."""
    zone = uploader.get_by_test_id("stFileUploaderDropzone")
    button = zone.get_by_role("button", name="Add files").or_(
        zone.get_by_role("button").filter(has_text=re.compile(r"Upload\s*$")))
    with page.expect_file_chooser() as chooser:
        button.click()
    chooser.value.set_files(path)


def rerun(stream: WebSocket, action: Callable[[], None],
           timeout_ms: float = PAGE_TIMEOUT_MS) -> None:
    """Do ``action`` and wait until the server says the script run it causes is over.

    A widget's value reaches the server a moment after the browser shows it, so the page's
    script state may still read "notRunning" from before; on a busy machine the browser may
    even never show "running" for a short run. The server's own message is exact."""
    with stream.expect_event("framereceived", predicate=run_finished, timeout=timeout_ms):
        action()


def slider_to_max(page: Page, stream: WebSocket, label: str) -> str:
    """Move the settings slider labelled ``label`` to its maximum with the keyboard (End)."""
    slider = page.get_by_test_id("stSlider").filter(has_text=label)
    thumb = slider.get_by_role("slider")
    top = thumb.get_attribute("max")
    assert thumb.input_value() != top
    thumb.focus()
    rerun(stream, lambda: thumb.press("End"))
    expect(thumb).to_have_value(top)
    return top


def metric(page: Page, label: str) -> Locator:
    return page.get_by_test_id("stMetric").filter(
        has=page.get_by_test_id("stMetricLabel").get_by_text(label, exact=True))


def result_heading(page: Page, name: str) -> Locator:
    return page.get_by_role("heading", name=f"Result: {name}")


def no_exception(page: Page, log: Path) -> None:
    expect(page.get_by_test_id("stException")).to_have_count(0)
    assert "Traceback" not in log.read_text(errors="replace"), log_tail(log)


def analyse_file(page: Page, base: str, path: Path) -> Locator:
    """Open Analyse, upload ``path`` and wait until its result is shown and the run is over;
    returns the uploader."""
    uploader, _ = open_analyse(page, base)
    choose_file(page, uploader, path)
    expect(result_heading(page, path.name)).to_be_visible(timeout=ANALYSIS_TIMEOUT_MS)
    wait_idle(page)
    return uploader


def full_page_screenshot(page: Page, path: Path) -> None:
    """Streamlit scrolls inside its main block, so grow the viewport to all of it first."""
    viewport = page.viewport_size
    height = page.evaluate("document.querySelector('[data-testid=stMain]').scrollHeight")
    page.set_viewport_size({"width": viewport["width"], "height": max(height, 600)})
    page.screenshot(path=path)
    page.set_viewport_size(viewport)
