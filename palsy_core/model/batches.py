"""Turning stored per-frame modalities into model input tensors, with mirror augmentation.

Training, evaluation, prediction and the dashboard all build model inputs here, so the
normalisation and the flip are identical everywhere. Mirroring a face is exact for every
modality: images are flipped about the aligned midline, landmarks are reflected and re-indexed,
features are permuted and sign-flipped (``features.mirror_permutation``), the face-network and
blendshape asymmetries keep their magnitudes and negate their signed parts, and the side label
swaps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch

from palsy_core.face.topology import mirror_index
from palsy_core.modalities import features as feats
from palsy_core.modalities.blendshapes import mirror_vector
from palsy_core.modalities.face_net import mirror_asymmetry

if TYPE_CHECKING:
    from palsy_core.extraction.pipeline import FrameResult, MediaAnalysis

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


@dataclass
class FrameArrays:
    """Stacked per-frame modalities (numpy), one row per frame with a face."""

    rgb: np.ndarray  # (N, S, S, 3) uint8
    lines: np.ndarray  # (N, S, S, 3) uint8
    landmarks: np.ndarray  # (N, 478, 3) float32
    features: np.ndarray  # (N, F) float32
    face_asym: np.ndarray  # (N, face_net.DIM) float32
    blendshapes: np.ndarray  # (N, blendshapes.DIM) float32

    FIELDS = ("rgb", "lines", "landmarks", "features", "face_asym", "blendshapes")

    def __len__(self) -> int:
        return len(self.features)

    def take(self, idx: np.ndarray) -> FrameArrays:
        return FrameArrays(*(getattr(self, k)[idx] for k in self.FIELDS))

    @staticmethod
    def concat(parts: Sequence[FrameArrays]) -> FrameArrays:
        return FrameArrays(*(np.concatenate([getattr(p, k) for p in parts])
                             for k in FrameArrays.FIELDS))


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
    return FrameArrays(
        rgb=resize_images(analysis.rgb, image_size, rows),
        lines=resize_images(analysis.lines, image_size, rows),
        landmarks=analysis.landmarks[rows], features=analysis.features[rows],
        face_asym=analysis.face_asym[rows], blendshapes=analysis.blendshapes[rows])


def frame_arrays(frame: FrameResult, image_size: int) -> FrameArrays:
    """Model-ready arrays of one analysed frame with a face (the live camera's path)."""
    return FrameArrays(
        rgb=resize_images(frame.rgb[None], image_size),
        lines=resize_images(frame.lines[None], image_size),
        landmarks=frame.landmarks[None], features=frame.features[None],
        face_asym=frame.face_asym[None], blendshapes=frame.blendshapes[None])


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
    perm, sign = feats.mirror_permutation()
    lm = arrays.landmarks[:, mirror_index()] * np.array([-1.0, 1.0, 1.0], np.float32)
    return FrameArrays(
        rgb=np.ascontiguousarray(arrays.rgb[:, :, ::-1]),
        lines=np.ascontiguousarray(arrays.lines[:, :, ::-1]),
        landmarks=lm.astype(np.float32),
        features=(arrays.features[:, perm] * sign).astype(np.float32),
        face_asym=mirror_asymmetry(arrays.face_asym),
        blendshapes=mirror_vector(arrays.blendshapes),
    )


def _image_tensor(images: np.ndarray, mean: np.ndarray | None = None,
                  std: np.ndarray | None = None) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float32: ``x / 255``, then ``(x - mean) / std``.

    Made channels-first in the conversion to float and computed in place: the same arithmetic
    as on the float image, without its temporaries and the copy that reorders it.
    """
    x = images.transpose(0, 3, 1, 2).astype(np.float32, order="C")
    x /= 255.0
    if mean is not None:
        x -= mean[:, None, None]
        x /= std[:, None, None]
    return torch.from_numpy(x)


def to_inputs(
    arrays: FrameArrays,
    normaliser: Normaliser,
    modalities: Sequence[str],
    device: torch.device | str = "cpu",
) -> dict[str, torch.Tensor]:
    """Model inputs for the requested modalities only (others are not even converted)."""
    out: dict[str, torch.Tensor] = {}
    if "rgb" in modalities:
        out["rgb"] = _image_tensor(arrays.rgb, IMAGENET_MEAN, IMAGENET_STD)
    if "lines" in modalities:
        out["lines"] = _image_tensor(arrays.lines)
    if "landmarks" in modalities:
        out["landmarks"] = torch.from_numpy(np.nan_to_num(arrays.landmarks).astype(np.float32))
    if "features" in modalities:
        out["features"] = torch.from_numpy(normaliser.transform(arrays.features))
    if "face_asym" in modalities:
        out["face_asym"] = torch.from_numpy(np.nan_to_num(arrays.face_asym).astype(np.float32))
    if "blendshapes" in modalities:
        out["blendshapes"] = torch.from_numpy(np.nan_to_num(arrays.blendshapes).astype(np.float32))
    return {k: v.to(device) for k, v in out.items()}
