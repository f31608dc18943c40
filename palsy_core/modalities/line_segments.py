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

from palsy_core.face.topology import (
    BILATERAL_PAIRS,
    CONTOURS,
    LEFT_IRIS,
    MIDLINE,
    N_MESH,
    RIGHT_IRIS,
    landmark_xy,
)
from palsy_core.modalities.base import FrameContext, ImageSpec, image_input

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

Box = tuple[slice, slice]  # rows and columns of a canvas


def _check_rgb(rgb: np.ndarray) -> None:
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"rgb must be an (H, W, 3) uint8 image, got {rgb.dtype} {rgb.shape}")


def _interocular(xy: np.ndarray) -> float:
    dist = float(np.linalg.norm(xy[LEFT_IRIS] - xy[RIGHT_IRIS]))
    if dist < 1e-6:
        raise ValueError("degenerate landmarks: both iris centres coincide")
    return dist


def _fixed(points: np.ndarray) -> np.ndarray:
    """cv2 fixed-point coordinates (round half to even, like Python's ``round``)."""
    return np.rint(np.asarray(points, dtype=np.float64) * (1 << _SHIFT)).astype(np.int32)


def _segments(canvas: np.ndarray, segments: np.ndarray, colour: tuple, thickness: int) -> None:
    """Draw (K, 2, 2) segments in order; one ``polylines`` call draws each 2-point polyline
    exactly as ``cv2.line`` would (same end caps), without a Python call per segment."""
    if len(segments):
        cv2.polylines(canvas, _fixed(segments), False, colour, thickness, cv2.LINE_AA, _SHIFT)


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


def _construction(xy: np.ndarray, interocular: float) -> np.ndarray:
    """(K, 2, 2) bilateral construction lines, each extended beyond both landmarks."""
    lines = []
    for right, left in _PAIRS:
        a, b = xy[right], xy[left]
        span = np.linalg.norm(b - a)
        if span < 1e-6:
            continue  # coincident pair (collapsed face): no direction to draw
        ext = (b - a) / span * CONSTRUCTION_EXTENSION * interocular
        lines.append((a - ext, b + ext))
    return np.array(lines, dtype=np.float64).reshape(-1, 2, 2)


def _render(canvas: np.ndarray, xy: np.ndarray) -> Box:
    """Draw contours, then construction lines, then the midline, in place on ``canvas``.

    Returns the rows and columns of ``canvas`` that can hold drawn pixels (every segment end
    plus the line width and a pixel of anti-aliasing), so compositing can skip the rest.
    """
    interocular = _interocular(xy)
    thickness = max(1, round(THICKNESS_PER_INTEROCULAR * interocular))
    groups = ((xy[_CONTOUR_EDGES], CONTOUR_COLOUR),
              (_construction(xy, interocular), CONSTRUCTION_COLOUR),
              (np.array([_midline(xy, interocular)]), MIDLINE_COLOUR))
    for segments, colour in groups:
        _segments(canvas, segments, colour, thickness)
    ends = np.concatenate([segments.reshape(-1, 2) for segments, _ in groups])
    return _box(canvas, ends, thickness)


def _box(canvas: np.ndarray, points: np.ndarray, reach: float) -> Box:
    """Canvas slices covering ``points`` grown by ``reach`` pixels plus an anti-aliasing margin."""
    lo = np.floor(points.min(axis=0) - reach - 2).astype(int)
    hi = np.ceil(points.max(axis=0) + reach + 3).astype(int)
    h, w = canvas.shape[:2]
    return (slice(min(max(lo[1], 0), h), min(max(hi[1], 0), h)),
            slice(min(max(lo[0], 0), w), min(max(hi[0], 0), w)))


def _composite(rgb: np.ndarray, layer: np.ndarray, alpha: float, box: Box) -> np.ndarray:
    """Blend a drawing made on black over ``rgb``, weighting by anti-aliasing coverage.

    Only ``box`` is blended: elsewhere the layer is black, where the blend returns ``rgb``.
    """
    out = rgb.copy()
    part, ink = rgb[box], layer[box]
    coverage = ink.max(axis=2, keepdims=True).astype(np.float32) / 255.0
    blend = part * (1.0 - alpha * coverage) + alpha * ink.astype(np.float32)
    out[box] = np.clip(np.rint(blend), 0, 255).astype(np.uint8)
    return out


def draw_line_segments(points: np.ndarray, size: int = 224) -> np.ndarray:
    """The line-segment image (size x size RGB uint8, black background) from aligned landmarks."""
    if size < 8:
        raise ValueError(f"size must be at least 8 px, got {size}")
    canvas = np.zeros((size, size, 3), dtype=np.uint8)
    _render(canvas, landmark_xy(points))
    return canvas


def overlay_line_segments(rgb: np.ndarray, points: np.ndarray, alpha: float = 0.85) -> np.ndarray:
    """The line-segment drawing over a frame (landmarks in that frame's pixels), for display."""
    _check_rgb(rgb)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    layer = np.zeros_like(rgb)
    box = _render(layer, landmark_xy(points))
    return _composite(rgb, layer, alpha, box)


def draw_landmarks(rgb: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Small dots on all 478 landmarks over a frame (landmarks in that frame's pixels)."""
    _check_rgb(rgb)
    xy = landmark_xy(points)
    radius = max(1, round(DOT_RADIUS_PER_INTEROCULAR * _interocular(xy)))
    layer = np.zeros_like(rgb)
    for x, y in _fixed(xy).tolist():
        cv2.circle(layer, (x, y), radius << _SHIFT, LANDMARK_COLOUR, -1, cv2.LINE_AA, _SHIFT)
    return _composite(rgb, layer, 1.0, _box(layer, xy, radius))


class LineSegments(ImageSpec):
    """Modality 2: the line-segment image (its branch reads the image minus its mirror)."""

    key = "lines"

    def compute(self, ctx: FrameContext) -> np.ndarray:
        return draw_line_segments(ctx.alignment.points, ctx.alignment.size)

    def model_input(self, batch: np.ndarray, normaliser) -> np.ndarray:
        return image_input(batch)


SPEC = LineSegments()
