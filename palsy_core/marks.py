"""Neutralise annotation marks drawn onto face photos.

Many public palsy photos carry a face box and landmark dots drawn in saturated green by their
original authors. A model can learn "green dots" instead of palsy, so such pixels are masked and
inpainted before detection. Skin, hair and eyes are never that saturated a green, so clean photos
pass through unchanged.
"""

from __future__ import annotations

import cv2
import numpy as np

# OpenCV hue runs 0-180; pure green is 60.
_HUE_RANGE = (40, 85)
_MIN_SATURATION = 110
_MIN_VALUE = 90


def green_mark_mask(rgb: np.ndarray) -> np.ndarray:
    """uint8 mask (255 = drawn mark) of saturated green pixels, grown over JPEG halos."""
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    lo = np.array([_HUE_RANGE[0], _MIN_SATURATION, _MIN_VALUE], dtype=np.uint8)
    hi = np.array([_HUE_RANGE[1], 255, 255], dtype=np.uint8)
    mask = cv2.inRange(hsv, lo, hi)
    return cv2.dilate(mask, np.ones((3, 3), np.uint8), iterations=2)


def neutralise_green_marks(rgb: np.ndarray) -> np.ndarray:
    """The photo with drawn green marks inpainted from their surroundings (a copy if any found)."""
    mask = green_mark_mask(rgb)
    if not mask.any():
        return rgb
    return cv2.inpaint(rgb, mask, 3, cv2.INPAINT_TELEA)
