"""Modality 1: the aligned colour face (its branch reads the crop minus its mirror image)."""

from __future__ import annotations

import numpy as np

from palsy_core.modalities.base import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    FrameContext,
    ModalitySpec,
    flip_images,
    image_input,
)


class RGBFace(ModalitySpec):
    key = "rgb"
    encoder = "image"
    image = True

    def shape(self, size: int) -> tuple[int, ...]:
        return (size, size, 3)

    def compute(self, ctx: FrameContext) -> np.ndarray:
        return ctx.face

    def mirror(self, batch: np.ndarray) -> np.ndarray:
        return flip_images(batch)

    def model_input(self, batch: np.ndarray, normaliser) -> np.ndarray:
        return image_input(batch, IMAGENET_MEAN, IMAGENET_STD)


SPEC = RGBFace()
