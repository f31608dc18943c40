"""Modality 1: the aligned colour face (its branch reads the crop minus its mirror image)."""

from __future__ import annotations

import numpy as np

from palsy_core.modalities.base import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    FrameContext,
    ImageSpec,
    image_input,
)


class RGBFace(ImageSpec):
    key = "rgb"

    def compute(self, ctx: FrameContext) -> np.ndarray:
        return ctx.face

    def model_input(self, batch: np.ndarray, normaliser) -> np.ndarray:
        return image_input(batch, IMAGENET_MEAN, IMAGENET_STD)


SPEC = RGBFace()
