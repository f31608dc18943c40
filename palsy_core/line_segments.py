"""Facial line-segment modality: region contours plus bilateral construction lines and the midline.

Modality 2 of Oo, Lee & Lim (2024, arXiv 2405.16496). Drawn in the aligned frame, the image makes
asymmetry explicit: a drooping mouth corner tilts the mouth-corner line, an unevenly raised brow
tilts the brow line, and both become uneven about the midline. Colours encode the element type,
never the side, so the drawing is mirror-equivariant: the line image of a mirrored face is the
horizontal flip of the original's, which keeps left/right palsy symmetric for the model.

One routine (``_render``) draws every element for every caller; the aligned image and the display
overlay differ only in canvas, coordinates and scale.
"""

from __future__ import annotations

import cv2
import numpy as np

from .topology import BILATERAL_PAIRS, CONTOURS, LEFT_IRIS, MIDLINE, N_LANDMARKS, N_MESH, RIGHT_IRIS

# RGB colours by element type (each has a 255 channel, so coverage = max channel / 255).
CONTOUR_COLOUR = (0, 255, 0)
CONSTRUCTION_COLOUR = (255, 0, 255)
MIDLINE_COLOUR = (0, 255, 255)
LANDMARK_COLOUR = (255, 255, 0)

# Geometry as fractions of the interocular (iris-to-iris) distance, so drawings scale with the face.
CONSTRUCTION_EXTENSION = 0.2  # construction lines run this far beyond each landmark
MIDLINE_EXTENSION = 0.1  # the midline runs this far beyond the highest and lowest mesh points
THICKNESS_PER_INTEROCULAR = 1.0 / 40.0  # 2 px lines in the 224 px aligned frame
DOT_RADIUS_PER_INTEROCULAR = 1.0 / 60.0

_SHIFT = 4  # cv2 fixed-point bits: sub-pixel endpoints keep the drawing mirror-equivariant
_CONTOUR_EDGES = np.array(sorted(set().union(*CONTOURS.values())), dtype=np.int64)
_PAIRS = np.array(list(BILATERAL_PAIRS.values()), dtype=np.int64)


def _check_points(points: np.ndarray) -> np.ndarray:
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[0] != N_LANDMARKS or pts.shape[1] < 2:
        raise ValueError(f"points must be ({N_LANDMARKS}, 2 or 3) landmarks, got shape {pts.shape}")
    if not np.isfinite(pts[:, :2]).all():
        raise ValueError("points contain NaN or infinite coordinates")
    return pts[:, :2]


def _check_rgb(rgb: np.ndarray) -> None:
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"rgb must be an (H, W, 3) uint8 image, got {rgb.dtype} {rgb.shape}")


def _interocular(xy: np.ndarray) -> float:
    dist = float(np.linalg.norm(xy[LEFT_IRIS] - xy[RIGHT_IRIS]))
    if dist < 1e-6:
        raise ValueError("degenerate landmarks: both iris centres coincide")
    return dist


def _fixed(p: np.ndarray) -> tuple[int, int]:
    return round(float(p[0]) * (1 << _SHIFT)), round(float(p[1]) * (1 << _SHIFT))


def _line(canvas: np.ndarray, a: np.ndarray, b: np.ndarray, colour: tuple, thickness: int) -> None:
    cv2.line(canvas, _fixed(a), _fixed(b), colour, thickness, cv2.LINE_AA, _SHIFT)


def _midline(xy: np.ndarray, interocular: float) -> tuple[np.ndarray, np.ndarray]:
    """Ends of the orthogonal least-squares line through the midline landmarks, spanning the face.

    An orthogonal (not y-on-x) fit works at any head roll, so the source-frame overlay shares it.
    """
    mid = xy[list(MIDLINE)]
    centre = mid.mean(axis=0)
    direction = np.linalg.svd(mid - centre)[2][0]
    extent = (xy[:N_MESH] - centre) @ direction
    margin = MIDLINE_EXTENSION * interocular
    lo, hi = extent.min() - margin, extent.max() + margin
    return centre + lo * direction, centre + hi * direction


def _render(canvas: np.ndarray, xy: np.ndarray) -> None:
    """Draw contours, then construction lines, then the midline, in place on ``canvas``."""
    interocular = _interocular(xy)
    thickness = max(1, round(THICKNESS_PER_INTEROCULAR * interocular))
    for i, j in _CONTOUR_EDGES:
        _line(canvas, xy[i], xy[j], CONTOUR_COLOUR, thickness)
    for right, left in _PAIRS:
        a, b = xy[right], xy[left]
        span = np.linalg.norm(b - a)
        if span < 1e-6:
            continue  # coincident pair (collapsed face): no direction to draw
        ext = (b - a) / span * CONSTRUCTION_EXTENSION * interocular
        _line(canvas, a - ext, b + ext, CONSTRUCTION_COLOUR, thickness)
    _line(canvas, *_midline(xy, interocular), MIDLINE_COLOUR, thickness)


def _composite(rgb: np.ndarray, layer: np.ndarray, alpha: float) -> np.ndarray:
    """Blend a drawing made on black over ``rgb``, weighting by anti-aliasing coverage."""
    coverage = layer.max(axis=2, keepdims=True).astype(np.float32) / 255.0
    out = rgb * (1.0 - alpha * coverage) + alpha * layer.astype(np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def draw_line_segments(points: np.ndarray, size: int = 224) -> np.ndarray:
    """The line-segment image (size x size RGB uint8, black background) from aligned landmarks."""
    if size < 8:
        raise ValueError(f"size must be at least 8 px, got {size}")
    canvas = np.zeros((size, size, 3), dtype=np.uint8)
    _render(canvas, _check_points(points))
    return canvas


def overlay_line_segments(rgb: np.ndarray, points: np.ndarray, alpha: float = 0.85) -> np.ndarray:
    """The line-segment drawing over a frame (landmarks in that frame's pixels), for display."""
    _check_rgb(rgb)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    layer = np.zeros_like(rgb)
    _render(layer, _check_points(points))
    return _composite(rgb, layer, alpha)


def draw_landmarks(rgb: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Small dots on all 478 landmarks over a frame (landmarks in that frame's pixels)."""
    _check_rgb(rgb)
    xy = _check_points(points)
    radius = max(1, round(DOT_RADIUS_PER_INTEROCULAR * _interocular(xy)))
    layer = np.zeros_like(rgb)
    for p in xy:
        cv2.circle(layer, _fixed(p), radius << _SHIFT, LANDMARK_COLOUR, -1, cv2.LINE_AA, _SHIFT)
    return _composite(rgb, layer, 1.0)
