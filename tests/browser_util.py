"""Helpers for the real-browser tests: a ``streamlit run`` server, a fake-camera file, pixels.

Kept apart from the tests so that each helper is plain, testable code: the server is a
subprocess on a free localhost port, the fake camera is a YUV4MPEG2 file that Chromium's
``--use-file-for-fake-video-capture`` plays in a loop.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
# Keep Chromium offline and quiet: no GPU, no background traffic, no first-run UI.
CHROMIUM_ARGS = ("--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-default-apps", "--disable-extensions", "--mute-audio")


@contextmanager
def chromium(*extra_args: str) -> Iterator:
    """A headless Chromium (playwright ``Browser``) with the sandbox-safe arguments; closed on
    exit."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                     args=[*CHROMIUM_ARGS, *extra_args])
        try:
            yield browser
        finally:
            browser.close()


def fake_camera_args(y4m: Path) -> list[str]:
    """Chromium flags that grant camera access and play ``y4m`` as the camera."""
    return ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-video-capture={y4m}"]


def free_port() -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def streamlit_server(env: dict[str, str], log: Path, *args: str, timeout_s: float = 120.0
                     ) -> Iterator[str]:
    """``streamlit run app.py`` on a free port with the repository's config; yields its base URL
    (on localhost), stops it after.

    ``env`` is added to this process's environment (e.g. ``PALSY_MODEL``); ``args`` are extra
    ``streamlit run`` options. The server's output goes to ``log``, whose tail is in the error
    when it dies or never gets healthy.
    """
    port = free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
           "--server.port", str(port), "--server.fileWatcherType", "none", *args]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **env}, stdout=out,
                                stderr=subprocess.STDOUT)
    base = f"http://localhost:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while not _healthy(f"{base}/_stcore/health"):
            if proc.poll() is not None or time.monotonic() > deadline:
                why = (f"exited with {proc.returncode}" if proc.poll() is not None
                       else f"not healthy after {timeout_s:.0f} s")
                raise RuntimeError(f"streamlit server {why}; log tail:\n{log_tail(log)}")
            time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:  # a WebRTC worker can hold up a graceful shutdown
            proc.kill()
            proc.wait()


def log_tail(log: Path, chars: int = 3000) -> str:
    return log.read_text(errors="replace")[-chars:] if log.exists() else "(no log)"


def write_y4m(frames: Iterable[np.ndarray], path: Path, fps: int, size: tuple[int, int]
              ) -> int:
    """RGB uint8 frames resized to ``size`` (width, height) as a 4:2:0 YUV4MPEG2 file.

    OpenCV's I420 conversion yields exactly the planar Y, U, V layout the format stores per
    frame. Returns the number of frames written.
    """
    w, h = size
    if w % 2 or h % 2:
        raise ValueError(f"4:2:0 needs an even width and height, got {w}x{h}")
    n = 0
    with open(path, "wb") as out:
        out.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for rgb in frames:
            frame = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
            out.write(b"FRAME\n")
            out.write(cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_I420).tobytes())
            n += 1
    if n == 0:
        raise ValueError("no frames to write")
    return n


def read_y4m(path: Path) -> list[np.ndarray]:
    """The RGB frames of a 4:2:0 YUV4MPEG2 file written by ``write_y4m``."""
    data = path.read_bytes()
    header, _, body = data.partition(b"\n")
    fields = {f[:1]: f[1:] for f in header.split()[1:]}
    w, h = int(fields[b"W"]), int(fields[b"H"])
    marker, size = b"FRAME\n", w * h * 3 // 2
    step = len(marker) + size
    starts = range(0, len(body), step)
    if len(body) % step or any(body[i:i + len(marker)] != marker for i in starts):
        raise ValueError(f"{path}: not a sequence of {w}x{h} 4:2:0 frames")
    frames = []
    for i in starts:
        yuv = np.frombuffer(body, np.uint8, size, i + len(marker)).reshape(h * 3 // 2, w)
        frames.append(cv2.cvtColor(yuv, cv2.COLOR_YUV2RGB_I420))
    return frames


def overlay_green(rgb: np.ndarray) -> np.ndarray:
    """Where a frame shows the overlay's contour green (strong G, weak R and B): a bool mask."""
    r, g, b = (rgb[..., i].astype(np.int16) for i in range(3))
    return (g > 160) & (g - r > 90) & (g - b > 90)
