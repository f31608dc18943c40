"""Turning stored per-frame modalities into model input tensors, with mirror augmentation.

Training, evaluation, prediction and the dashboard all build model inputs here, so the
normalisation and the flip are identical everywhere. Mirroring a face is exact for every
modality: images are flipped about the aligned midline, landmarks are reflected and re-indexed,
features are permuted and sign-flipped (``features.mirror_permutation``) and the side label swaps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from . import features as feats
from .topology import mirror_index

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


@dataclass
class FrameArrays:
    """Stacked per-frame modalities (numpy), one row per frame with a face."""

    rgb: np.ndarray  # (N, S, S, 3) uint8
    lines: np.ndarray  # (N, S, S, 3) uint8
    landmarks: np.ndarray  # (N, 478, 3) float32
    features: np.ndarray  # (N, F) float32
    blendshapes: np.ndarray | None = None  # (N, 52) float32

    def __len__(self) -> int:
        return len(self.features)

    def take(self, idx: np.ndarray) -> FrameArrays:
        return FrameArrays(self.rgb[idx], self.lines[idx], self.landmarks[idx],
                           self.features[idx],
                           None if self.blendshapes is None else self.blendshapes[idx])

    @staticmethod
    def concat(parts: Sequence[FrameArrays]) -> FrameArrays:
        blend = None
        if parts and all(p.blendshapes is not None for p in parts):
            blend = np.concatenate([p.blendshapes for p in parts])
        return FrameArrays(*(np.concatenate([getattr(p, k) for p in parts])
                             for k in ("rgb", "lines", "landmarks", "features")), blend)


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
    """Area-resample (N, H, W, 3) uint8 images to ``size`` (a no-op when already that size)."""
    if images.shape[1] == size:
        return images
    out = np.empty((len(images), size, size, 3), dtype=np.uint8)
    for i, im in enumerate(images):
        out[i] = cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA)
    return out


@dataclass
class Normaliser:
    """Feature standardisation fitted on training data only (stored in the checkpoint)."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, features: np.ndarray) -> Normaliser:
        mean = np.nanmean(features, axis=0)
        std = np.nanstd(features, axis=0)
        return cls(np.nan_to_num(mean).astype(np.float32),
                   np.where(np.isfinite(std) & (std > 1e-6), std, 1.0).astype(np.float32))

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> Normaliser:
        return cls(np.asarray(d["mean"], np.float32), np.asarray(d["std"], np.float32))


def mirror_arrays(arrays: FrameArrays) -> FrameArrays:
    """The same frames as seen in a mirror (exact for every modality)."""
    perm, sign = feats.mirror_permutation()
    lm = arrays.landmarks[:, mirror_index()] * np.array([-1.0, 1.0, 1.0], np.float32)
    return FrameArrays(
        rgb=np.ascontiguousarray(arrays.rgb[:, :, ::-1]),
        lines=np.ascontiguousarray(arrays.lines[:, :, ::-1]),
        landmarks=lm.astype(np.float32),
        features=(arrays.features[:, perm] * sign).astype(np.float32),
        blendshapes=arrays.blendshapes,
    )


def to_inputs(
    arrays: FrameArrays,
    normaliser: Normaliser,
    modalities: Sequence[str],
    device: torch.device | str = "cpu",
) -> dict[str, torch.Tensor]:
    """Model inputs for the requested modalities only (others are not even converted)."""
    out: dict[str, torch.Tensor] = {}
    if "rgb" in modalities:
        x = (arrays.rgb.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
        out["rgb"] = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
    if "lines" in modalities:
        x = arrays.lines.astype(np.float32) / 255.0
        out["lines"] = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
    if "landmarks" in modalities:
        out["landmarks"] = torch.from_numpy(np.nan_to_num(arrays.landmarks).astype(np.float32))
    if "features" in modalities:
        x = (arrays.features - normaliser.mean) / normaliser.std
        out["features"] = torch.from_numpy(np.nan_to_num(np.clip(x, -8, 8)).astype(np.float32))
    if "blendshapes" in modalities and arrays.blendshapes is not None:
        out["blendshapes"] = torch.from_numpy(np.nan_to_num(arrays.blendshapes).astype(np.float32))
    return {k: v.to(device) for k, v in out.items()}
