"""Modality 3: landmark coordinates in the aligned frame (the detector is ``face.landmarks``).

The 478 MediaPipe points, centred on the eye midpoint and divided by the interocular distance
(``face.alignment.normalised_coordinates``); the branch reads each point minus its mirror twin
reflected across the midline.
"""

from __future__ import annotations

import numpy as np

from palsy_core.face.alignment import normalised_coordinates
from palsy_core.face.topology import N_LANDMARKS, mirror_index
from palsy_core.modalities.base import FrameContext, ModalitySpec

_REFLECT = np.array([-1.0, 1.0, 1.0], np.float32)


class LandmarkCoordinates(ModalitySpec):
    key = "landmarks"
    encoder = "landmark"

    def shape(self, size: int) -> tuple[int, ...]:
        return (N_LANDMARKS, 3)

    def compute(self, ctx: FrameContext) -> np.ndarray:
        return normalised_coordinates(ctx.alignment)

    def mirror(self, batch: np.ndarray) -> np.ndarray:
        return (batch[:, mirror_index()] * _REFLECT).astype(np.float32)


SPEC = LandmarkCoordinates()
