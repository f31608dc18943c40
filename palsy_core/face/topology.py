"""Face-mesh topology: named landmarks, region contours and the left/right mirror table.

Side convention (used everywhere in palsy-fusion): **left and right are the subject's own left and
right**. In an unmirrored photo the subject's left side appears on the image's right. MediaPipe
follows the same convention (``FACEMESH_LEFT_EYE`` holds landmark 263, the subject's left outer eye
corner), and so do all feature names (``*_left`` / ``*_right``) and the ``side`` column of
manifests.

Landmark layout (MediaPipe Face Mesh with refined irises, 478 points):
0-467 the face mesh (see MediaPipe's canonical face model), 468-472 the subject's right iris
(centre, then image-right, top, image-left, bottom contour points), 473-477 the subject's left iris
in the same order.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import numpy as np
from mediapipe.python.solutions import face_mesh_connections as fmc

N_LANDMARKS = 478
N_MESH = 468

# Named landmarks (subject's side).
FOREHEAD = 10
NOSE_TIP = 1
NOSE_BRIDGE = 168
SUBNASALE = 2
CHIN = 152
UPPER_LIP_TOP = 0
UPPER_LIP_INNER = 13
LOWER_LIP_INNER = 14
LOWER_LIP_BOTTOM = 17
RIGHT_IRIS = 468
LEFT_IRIS = 473
RIGHT_EYE_OUTER, RIGHT_EYE_INNER = 33, 133
LEFT_EYE_OUTER, LEFT_EYE_INNER = 263, 362
RIGHT_EYE_UPPER, RIGHT_EYE_LOWER = 159, 145
LEFT_EYE_UPPER, LEFT_EYE_LOWER = 386, 374
RIGHT_BROW_PEAK, LEFT_BROW_PEAK = 105, 334
RIGHT_BROW_INNER, LEFT_BROW_INNER = 107, 336
RIGHT_BROW_OUTER, LEFT_BROW_OUTER = 70, 300
RIGHT_ALA, LEFT_ALA = 129, 358
RIGHT_MOUTH_CORNER, LEFT_MOUTH_CORNER = 61, 291
RIGHT_UPPER_LIP_PEAK, LEFT_UPPER_LIP_PEAK = 37, 267
RIGHT_LOWER_LIP, LEFT_LOWER_LIP = 84, 314
RIGHT_UPPER_LIP_INNER, LEFT_UPPER_LIP_INNER = 82, 312
RIGHT_LOWER_LIP_INNER, LEFT_LOWER_LIP_INNER = 87, 317
RIGHT_CHEEK, LEFT_CHEEK = 234, 454

# Iris ring indices relative to the centre: +1 image-right, +2 top, +3 image-left, +4 bottom.
_IRIS_MIRROR = {468: 473, 469: 476, 470: 475, 471: 474, 472: 477}

# Bilateral pairs joined by construction lines in the line-segment image: (right, left).
BILATERAL_PAIRS: dict[str, tuple[int, int]] = {
    "brow_peaks": (RIGHT_BROW_PEAK, LEFT_BROW_PEAK),
    "outer_eye_corners": (RIGHT_EYE_OUTER, LEFT_EYE_OUTER),
    "inner_eye_corners": (RIGHT_EYE_INNER, LEFT_EYE_INNER),
    "iris_centres": (RIGHT_IRIS, LEFT_IRIS),
    "nasal_alae": (RIGHT_ALA, LEFT_ALA),
    "mouth_corners": (RIGHT_MOUTH_CORNER, LEFT_MOUTH_CORNER),
}

# Facial midline, top to bottom.
MIDLINE = (FOREHEAD, NOSE_BRIDGE, NOSE_TIP, SUBNASALE, UPPER_LIP_TOP, LOWER_LIP_BOTTOM, CHIN)

# Region contours as edge sets, keyed by region name (subject's side).
CONTOURS: dict[str, frozenset[tuple[int, int]]] = {
    "brow_right": fmc.FACEMESH_RIGHT_EYEBROW,
    "brow_left": fmc.FACEMESH_LEFT_EYEBROW,
    "eye_right": fmc.FACEMESH_RIGHT_EYE,
    "eye_left": fmc.FACEMESH_LEFT_EYE,
    "iris_right": fmc.FACEMESH_RIGHT_IRIS,
    "iris_left": fmc.FACEMESH_LEFT_IRIS,
    "nose": fmc.FACEMESH_NOSE,
    "lips": fmc.FACEMESH_LIPS,
    "face_oval": fmc.FACEMESH_FACE_OVAL,
}


@lru_cache(maxsize=1)
def canonical_face() -> np.ndarray:
    """MediaPipe's canonical face mesh (468x3, cm; +x towards the subject's left, +y up)."""
    path = resources.files("palsy_core") / "data" / "canonical_face_468.txt"
    with path.open("r", encoding="utf-8") as fh:
        return np.loadtxt(fh, dtype=np.float64)


@lru_cache(maxsize=1)
def mirror_index() -> np.ndarray:
    """``m[i]`` is the landmark that mirrors landmark ``i`` across the facial midline.

    Derived from the exact bilateral symmetry of the canonical mesh; midline points map to
    themselves. Flipping an image horizontally and re-indexing its landmarks with this table gives
    landmarks with the same anatomical meaning.
    """
    canon = canonical_face()
    reflected = canon * np.array([-1.0, 1.0, 1.0])
    d2 = ((canon[:, None, :] - reflected[None, :, :]) ** 2).sum(-1)
    m = np.empty(N_LANDMARKS, dtype=np.int64)
    m[:N_MESH] = d2.argmin(axis=1)
    for right, left in _IRIS_MIRROR.items():
        m[right], m[left] = left, right
    return m


def mirror_points(points: np.ndarray, width: float) -> np.ndarray:
    """Landmarks of the horizontally flipped image, re-indexed so index ``i`` keeps its meaning."""
    flipped = points.copy()
    flipped[:, 0] = width - 1 - flipped[:, 0]
    return flipped[mirror_index()]


def landmark_xy(points: np.ndarray) -> np.ndarray:
    """(478, 2) float64 x, y of (478, 2 or 3) landmarks; ValueError for any other shape or for
    NaN or infinite coordinates."""
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[0] != N_LANDMARKS or pts.shape[1] < 2:
        raise ValueError(f"expected ({N_LANDMARKS}, 2 or 3) landmarks, got shape {pts.shape}")
    if not np.isfinite(pts[:, :2]).all():
        raise ValueError("landmarks contain NaN or infinite coordinates")
    return pts[:, :2]
