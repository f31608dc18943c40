"""Neutralise annotation marks drawn onto face photos.

Many public palsy photos carry a face box and landmark dots drawn in saturated green by their
original authors. A model can learn "green dots" instead of palsy, so such pixels are masked and
inpainted before detection.

Drawn marks are a bright, saturated, pure green (OpenCV hue about 55-60, saturation and value
above about 180 even after JPEG coding). Natural greens (clothes, foliage, painted walls) are
darker or yellower, so only pixels of the drawing colour seed the mask; the mask then takes in
the paler, JPEG-smeared pixels right next to them. Clean photos, green backgrounds included, pass
through unchanged.
"""

from __future__ import annotations

import cv2
import numpy as np

# OpenCV hue runs 0-180; pure green is 60. (hue, saturation, value) bounds:
_CORE = ((45, 110, 140), (75, 255, 255))  # the drawing colour itself
_HALO = ((35, 60, 60), (90, 255, 255))  # greenish pixels a JPEG smears around it
_HALO_PX = 3  # how far from a drawn pixel its halo reaches
_GROW_PX = 2  # a last margin over the faintest halo pixels
_KERNEL = np.ones((3, 3), np.uint8)


def _in_range(hsv: np.ndarray, bounds: tuple[tuple[int, ...], tuple[int, ...]]) -> np.ndarray:
    lo, hi = (np.array(b, dtype=np.uint8) for b in bounds)
    return cv2.inRange(hsv, lo, hi)


def green_mark_mask(rgb: np.ndarray) -> np.ndarray:
    """uint8 mask (255 = drawn mark) of drawing-green pixels and their JPEG halos."""
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    core = _in_range(hsv, _CORE)
    if not core.any():
        return core
    near = cv2.dilate(core, _KERNEL, iterations=_HALO_PX)
    mask = core | (_in_range(hsv, _HALO) & near)
    return cv2.dilate(mask, _KERNEL, iterations=_GROW_PX)


def neutralise_green_marks(rgb: np.ndarray) -> np.ndarray:
    """The photo with drawn green marks inpainted from their surroundings (a copy if any found)."""
    mask = green_mark_mask(rgb)
    if not mask.any():
        return rgb
    return cv2.inpaint(rgb, mask, 3, cv2.INPAINT_TELEA)
