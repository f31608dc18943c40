"""Turning stored per-frame modalities into model input tensors, with mirror augmentation.

Training, evaluation, prediction and the dashboard all build model inputs here, so the
normalisation and the flip are identical everywhere. Each modality's own file says how its values
look in a mirror (exactly: images flip about the aligned midline, landmarks are reflected and
re-indexed, features permuted and sign-flipped, asymmetry vectors negate their signed parts) and
how they become the network's input; the side label swaps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch

from palsy_core.modalities import specs
from palsy_core.modalities.base import ModalityValues

if TYPE_CHECKING:
    from palsy_core.extraction.pipeline import FrameResult, MediaAnalysis

@dataclass
class FrameArrays(ModalityValues):
    """Stacked per-frame modalities (numpy), one row per frame with a face: modality key ->
    (N, ...) array (images (N, S, S, 3) uint8, vectors float32); ``arrays.features`` reads one."""

    values: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(next(iter(self.values.values()))) if self.values else 0

    def take(self, idx: np.ndarray) -> FrameArrays:
        return FrameArrays({k: v[idx] for k, v in self.values.items()})

    @staticmethod
    def concat(parts: Sequence[FrameArrays]) -> FrameArrays:
        return FrameArrays({k: np.concatenate([p.values[k] for p in parts])
                            for k in parts[0].values})


def resize_images(images: np.ndarray, size: int, rows: np.ndarray | None = None) -> np.ndarray:
    """Area-resample (N, H, W, 3) uint8 images, or only ``rows`` of them, to ``size``.

    Without ``rows`` an input already that size is returned as is; selected rows are resampled
    one by one, so a subset of a long video is never first copied at full size.
    """
    if rows is None:
        if images.shape[1] == size:
            return images
        rows = np.arange(len(images))
    if images.shape[1] == size:
        return images[rows]
    out = np.empty((len(rows), size, size, 3), dtype=np.uint8)
    for i, row in enumerate(rows):
        out[i] = cv2.resize(images[row], (size, size), interpolation=cv2.INTER_AREA)
    return out


def analysis_arrays(analysis: MediaAnalysis, image_size: int, rows: np.ndarray) -> FrameArrays:
    """Model-ready arrays of the given frames of an analysed file (images resized)."""
    return FrameArrays({k: resize_images(v, image_size, rows) if specs()[k].image else v[rows]
                        for k, v in analysis.values.items()})


def frame_arrays(frame: FrameResult, image_size: int) -> FrameArrays:
    """Model-ready arrays of one analysed frame with a face (the live camera's path)."""
    return FrameArrays({k: resize_images(v[None], image_size) if specs()[k].image else v[None]
                        for k, v in frame.values.items()})


@dataclass
class Normaliser:
    """Feature standardisation fitted on training data only (stored in the checkpoint)."""

    mean: np.ndarray
    std: np.ndarray
    CLIP = 8.0

    @classmethod
    def fit(cls, features: np.ndarray) -> Normaliser:
        mean = np.nanmean(features, axis=0)
        std = np.nanstd(features, axis=0)
        return cls(np.nan_to_num(mean).astype(np.float32),
                   np.where(np.isfinite(std) & (std > 1e-6), std, 1.0).astype(np.float32))

    def transform(self, features: np.ndarray) -> np.ndarray:
        """Standardised features, clipped to +-``CLIP`` standard deviations, NaN as 0."""
        x = (features - self.mean) / self.std
        return np.nan_to_num(np.clip(x, -self.CLIP, self.CLIP)).astype(np.float32)

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> Normaliser:
        return cls(np.asarray(d["mean"], np.float32), np.asarray(d["std"], np.float32))


def mirror_arrays(arrays: FrameArrays) -> FrameArrays:
    """The same frames as seen in a mirror (exact for every modality)."""
    return FrameArrays({k: specs()[k].mirror(v) for k, v in arrays.values.items()})


def to_inputs(
    arrays: FrameArrays,
    normaliser: Normaliser,
    modalities: Sequence[str],
    device: torch.device | str = "cpu",
) -> dict[str, torch.Tensor]:
    """Model inputs for the requested modalities only (others are not even converted)."""
    return {k: torch.from_numpy(specs()[k].model_input(arrays.values[k], normaliser)).to(device)
            for k in specs() if k in modalities}
