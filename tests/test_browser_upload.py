"""Uploads in a real browser: a real Cancel click during an analysis, and no upload on disk.

AppTest cannot click while a script runs, so ``test_privacy`` interrupts the analysis with
``st.stop()`` and checks the disk from inside the process. Here Debian's Chromium, driven by
Playwright, talks to a real ``streamlit run`` server: Cancel is clicked while the progress bar
moves, and the files reach the server through Chromium's file chooser and Streamlit's HTTP
upload handler, with the server's temporary folder, its cache, the repository and
``~/.streamlit`` compared before and after. Skipped only where ``/usr/bin/chromium`` is missing.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_pages import (
    ANALYSIS_TIMEOUT_MS,
    choose_file,
    metric,
    no_exception,
    open_analyse,
    result_heading,
    slider_to_max,
    wait_idle,
)
from browser_util import CHROMIUM, ROOT, chromium, streamlit_server
from conftest import make_test_model
from playwright.sync_api import Browser, Page, expect

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason=f"{CHROMIUM} is missing (apt-get install chromium)")

VIEWPORT = {"width": 1400, "height": 1000}
LONG_VIDEO = "WolfgangLanger_Pexels.mp4"  # 19.7 s, 472 frames
PHOTO, VIDEO = "single_face.jpg", "single_face.mp4"
EARLIER_PHOTO = "0-f1-su-ph.jpg"  # another real face, analysed before the cancelled video
CANCELLED = "Analysis cancelled: nothing of it was kept."
NO_ANALYSIS = "Upload a photo or video, or try the sample, to see the analysis here."
# Repository folders left out of the snapshot (the brief's list: tool and interpreter caches).
SKIPPED_DIRS = {".git", ".venv", "__pycache__", ".pytest_cache"}
# Folders other processes may write while the test runs, never the dashboard: the background
# `make train` (models/default.pt, its card and CV files), other test or lint runs (their
# Hypothesis and ruff caches) and edits to the CI scripts. Changes there are allowed but still
# searched for the uploaded bytes.
UNRELATED_WRITERS = (ROOT / "models", ROOT / ".hypothesis", ROOT / ".ruff_cache", ROOT / ".ci")
# The repository's sources, docs and config may be edited meanwhile too (by people or tools);
# the server never writes such files, and they are searched for the uploads like the rest.
EDITED_SUFFIXES = {".py", ".md", ".toml", ".txt", ".in", ".cfg"}


def _unrelated(path: str) -> bool:
    p = Path(path)
    return (any(p.is_relative_to(d) for d in UNRELATED_WRITERS)
            or (p.is_relative_to(ROOT) and p.suffix in EDITED_SUFFIXES))


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    return make_test_model(tmp_path_factory.mktemp("upload_model") / "m.pt")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


@pytest.fixture
def page(browser) -> Iterator[Page]:
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    yield page
    context.close()


# --- a real Cancel click ----------------------------------------------------------------------


def test_cancel_click_during_a_running_analysis_keeps_nothing_and_the_page_stays_usable(
        page, model_file, pyfeat_dir, tmp_path):
    """After a photo's analysis, a long video is uploaded and Cancel clicked while its progress
    bar moves: the notice shows, with no result (neither the video's nor the photo's), verdict,
    progress or Cancel button, and no exception; a photo uploaded next is analysed and shown
    under its own name."""
    log = tmp_path / "streamlit.log"
    with streamlit_server({"PALSY_MODEL": str(model_file)}, log) as base:
        uploader, stream = open_analyse(page, base)
        expect(page.get_by_text(NO_ANALYSIS)).to_be_visible()
        # A finished earlier analysis, which must not show under the cancelled file either.
        choose_file(page, uploader, pyfeat_dir / EARLIER_PHOTO)
        expect(result_heading(page, EARLIER_PHOTO)).to_be_visible(timeout=ANALYSIS_TIMEOUT_MS)
        wait_idle(page)
        # The most frames the page allows (15 per second, cap 300: 296 frames of this video),
        # so the analysis is surely still running when the click arrives.
        page.get_by_test_id("stExpander").filter(has_text="Analysis settings") \
            .locator("summary").click()
        assert slider_to_max(page, stream, "Frames analysed per second") == "15"
        assert slider_to_max(page, stream, "At most this many frames") == "300"

        choose_file(page, uploader, pyfeat_dir / LONG_VIDEO)
        expect(uploader.get_by_test_id("stFileChipName")).to_have_attribute("title", LONG_VIDEO)
        progress = page.get_by_test_id("stProgress")
        expect(progress).to_contain_text(re.compile(rf"{re.escape(LONG_VIDEO)}: frame \d+ of "
                                                    r"~296"), timeout=ANALYSIS_TIMEOUT_MS)
        cancel = page.get_by_role("button", name=re.compile("Cancel analysis"))
        expect(cancel).to_be_visible()
        at_click = progress.inner_text()
        cancel.click()
        print(f"Cancel clicked at {at_click!r}")

        # Whichever comes first: the notice, the cancelled file's result or an exception.
        notice = page.get_by_text(CANCELLED)
        expect(notice.or_(result_heading(page, LONG_VIDEO))
               .or_(page.get_by_test_id("stException")).first).to_be_visible(
            timeout=ANALYSIS_TIMEOUT_MS)
        wait_idle(page)
        # Nothing of the cancelled file: no result, no verdict, no progress, no Cancel button;
        # and no older result under it.
        assert result_heading(page, LONG_VIDEO).count() == 0, \
            f"the cancelled file's result is shown (clicked at {at_click!r})"
        no_exception(page, log)
        expect(notice).to_be_visible()
        expect(page.get_by_role("heading", name=re.compile(r"^Result: "))).to_have_count(0)
        expect(metric(page, "Verdict")).to_have_count(0)
        expect(metric(page, "P(palsy)")).to_have_count(0)
        expect(progress).to_have_count(0)
        expect(cancel).to_have_count(0)
        expect(page.get_by_role("button", name="Analyse again")).to_be_visible()
        no_exception(page, log)

        # Still usable: a photo uploaded next is analysed and its result names the photo.
        choose_file(page, uploader, pyfeat_dir / PHOTO)
        expect(result_heading(page, PHOTO)).to_be_visible(timeout=ANALYSIS_TIMEOUT_MS)
        wait_idle(page)
        expect(page.get_by_role("heading", name=re.compile(r"^Result: "))).to_have_count(1)
        expect(metric(page, "Verdict").get_by_test_id("stMetricValue")).to_have_text(
            re.compile(r"\S"))
        expect(page.get_by_text(CANCELLED)).to_have_count(0)
        expect(page.get_by_text(NO_ANALYSIS)).to_have_count(0)
        for other in (LONG_VIDEO, EARLIER_PHOTO):
            expect(page.get_by_text(other)).to_have_count(0)  # not even in the uploader
        no_exception(page, log)


# --- nothing written to disk by the real server ------------------------------------------------


Snapshot = dict[str, tuple]


def _snapshot(*roots: Path) -> Snapshot:
    """Every file and folder under ``roots`` (repository tool caches left out): path ->
    (kind, size, mtime in ns)."""
    found: Snapshot = {}
    for root in roots:
        if not root.exists():
            continue
        for folder, dirs, files in os.walk(root):
            dirs[:] = [d for d in dirs if d not in SKIPPED_DIRS]
            for name in dirs + files:
                path = Path(folder, name)
                try:
                    st = path.lstat()
                except FileNotFoundError:  # removed meanwhile
                    continue
                kind = "dir" if name in dirs else "file"
                found[str(path)] = (kind, st.st_size if kind == "file" else 0, st.st_mtime_ns)
    return found


def _holding(paths: list[str], needles: dict[str, bytes]) -> list[str]:
    """``path: what`` for each file among ``paths`` holding one of ``needles`` (name -> bytes)."""
    hits = []
    for path in paths:
        p = Path(path)
        if not p.is_file() or p.is_symlink():
            continue
        try:
            data = p.read_bytes()
        except OSError:
            continue
        hits += [f"{path}: {what}" for what, needle in needles.items() if needle in data]
    return hits


def test_uploads_through_the_browser_write_nothing_to_disk(page, model_file, pyfeat_dir,
                                                          tmp_path):
    """A photo and a video uploaded through Chromium's file chooser to the real server are
    analysed from memory: no file is created or changed in the server's TMPDIR, its cache, the
    repository or ``~/.streamlit``, and no file there holds the uploaded bytes."""
    tmp, cache = tmp_path / "server_tmp", tmp_path / "server_cache"
    tmp.mkdir()
    cache.mkdir()
    log = tmp_path / "streamlit.log"  # outside every watched folder
    home_streamlit = Path.home() / ".streamlit"
    watched = (tmp, cache, ROOT, home_streamlit)
    uploads = {name: (pyfeat_dir / name).read_bytes() for name in (PHOTO, VIDEO)}
    needles = {}
    for name, data in uploads.items():
        assert len(data) > 3 * 4096
        needles[f"{name} first 4 KB"] = data[:4096]
        middle = len(data) // 2
        needles[f"{name} middle 4 KB"] = data[middle:middle + 4096]
    originals = {str(pyfeat_dir / name) for name in uploads}  # where the test reads them from

    env = {"PALSY_MODEL": str(model_file), "TMPDIR": str(tmp), "TEMP": str(tmp),
           "TMP": str(tmp), "PALSY_CACHE": str(cache)}
    sent = []  # the requests to Streamlit's upload handler, with their answers
    page.on("requestfinished", lambda r: sent.append((r.method, r.response().status))
            if "/_stcore/upload_file/" in r.url else None)
    with streamlit_server(env, log) as base:
        uploader, _ = open_analyse(page, base)
        before = _snapshot(*watched)
        assert _holding([p for p in before if p not in originals], needles) == [], \
            "the uploaded bytes are on disk before the upload"

        for name in (PHOTO, VIDEO):
            choose_file(page, uploader, pyfeat_dir / name)
            expect(result_heading(page, name)).to_be_visible(timeout=ANALYSIS_TIMEOUT_MS)
            wait_idle(page)
            expect(metric(page, "Verdict").get_by_test_id("stMetricValue")).to_have_text(
                re.compile(r"\S"))
            # The frame views reach the browser from the media endpoint (memory, not disk).
            page.wait_for_function(
                "() => { const i = [...document.querySelectorAll('[data-testid=stImage] img')];"
                " return i.length >= 2 && i.every(x => x.complete && x.naturalWidth > 0); }",
                timeout=60_000)
        no_exception(page, log)
        after = _snapshot(*watched)
    # Each file went over HTTP to the upload handler; the video replaced the photo there.
    assert sent == [("PUT", 204), ("DELETE", 204), ("PUT", 204)]

    new = sorted(set(after) - set(before))
    changed = sorted(p for p in set(after) & set(before) if after[p] != before[p])
    unrelated = [p for p in new + changed if _unrelated(p)]
    if unrelated:
        print("written meanwhile by training, edits, tests or lint (allowed):", unrelated)
    assert [p for p in new if p not in unrelated] == []
    assert [p for p in changed if p not in unrelated] == []
    assert _holding(new + changed, needles) == []
    assert _holding([p for p in after if p not in originals], needles) == []
    assert list(tmp.iterdir()) == []  # the server's temporary folder stayed empty
