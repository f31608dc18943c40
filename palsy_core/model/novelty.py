""""Unlike any face the model was trained on": a novelty check on the mirror-invariant views.

A verdict on a face far from every training face is a guess. Each frame's invariant vector (the
expression features, the face-network and blendshape asymmetries and the landmarks' in-plane
mirror asymmetry) is scaled per dimension by the training frames' median and interquartile range,
and compared with the training frames' main directions of variation (their first
``N_COMPONENTS`` principal components). What lies *off* those directions (the residual after
projecting onto them) measures how unlike the training faces a frame is. The residual, not the
distance along the main directions, is used on purpose: strong palsy lies far out *along* them
(more asymmetry of the kinds seen in training) and must still get a verdict; a face whose
asymmetry pattern matches nothing in training (unusual photo style, occlusion, a drawing, a
detector failure) lies off them.

A frame whose residual exceeds the ``QUANTILE`` percentile of the training frames' own residuals
is flagged ``unfamiliar``; like a turned or blurred face, it does not decide a file's verdict when
better frames exist, and a file whose every face frame is flagged is "inconclusive".
On the leave-one-source-out check of the previous model (fitted per fold on its training frames)
this flagged 2.6 % of held-out files, and the fused verdict was wrong on 47 % of them against 26 %
of the rest.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from palsy_core.model.batches import FrameArrays, mirror_arrays
from palsy_core.model.network import landmark_asymmetry

UNFAMILIAR = "unfamiliar"  # the quality flag (metrics.FLAG_NAMES holds its wording)
N_COMPONENTS = 10
QUANTILE = 99.5
# Fewer real training frames than this and the check is not fitted (a handful of faces spans
# almost every direction of the first components, so every new face would look unfamiliar).
MIN_FRAMES = 200
CLIP = 10.0  # scaled values are clipped, so one wild dimension cannot decide alone


VIEWS = ("features", "face_asym", "blendshapes", "landmarks")  # what the check reads


def views(values: Mapping[str, np.ndarray], rows: np.ndarray | None = None) -> FrameArrays:
    """Only the modalities the check reads (no images to resize or flip), optionally ``rows``."""
    return FrameArrays({k: values[k] if rows is None else values[k][rows] for k in VIEWS})


def invariant_vectors(arrays: FrameArrays) -> np.ndarray:
    """(N, D) per-frame concatenation of the mirror-invariant views: expression features,
    face-network and blendshape asymmetry, and the landmarks' in-plane mirror asymmetry."""
    lm = landmark_asymmetry(torch.from_numpy(np.nan_to_num(arrays.landmarks)))[..., :2]
    return np.nan_to_num(np.hstack([arrays.features, arrays.face_asym, arrays.blendshapes,
                                    lm.flatten(1).numpy()])).astype(np.float32)


@dataclass(frozen=True)
class Novelty:
    """The fitted check: per-dimension centre and scale, principal directions, residual limit."""

    centre: np.ndarray  # (D,)
    scale: np.ndarray  # (D,)
    mean: np.ndarray  # (D,) mean of the scaled training vectors
    components: np.ndarray  # (K, D) orthonormal rows
    limit: float  # the QUANTILE percentile of the training frames' residuals

    @classmethod
    def fit(cls, arrays: FrameArrays, n_components: int = N_COMPONENTS,
            quantile: float = QUANTILE) -> Novelty:
        """Fit on training frames (real faces, not synthetic warps) and their mirror images,
        so that a face and its mirror image are equally familiar."""
        own = views(arrays.values)
        x = invariant_vectors(FrameArrays.concat([own, mirror_arrays(own)])).astype(np.float64)
        if len(arrays) < max(MIN_FRAMES, n_components + 1):
            raise ValueError(f"the novelty check needs at least {MIN_FRAMES} training frames, "
                             f"got {len(arrays)}")
        centre = np.median(x, axis=0)
        scale = np.subtract(*np.percentile(x, [75, 25], axis=0))
        scale[scale < 1e-6] = 1.0
        z = np.clip((x - centre) / scale, -CLIP, CLIP)
        mean = z.mean(axis=0)
        components = np.linalg.svd(z - mean, full_matrices=False)[2][:n_components]
        fitted = cls(centre, scale, mean, components, 1.0)
        limit = float(np.percentile(fitted._residual(z), quantile))
        return cls(centre, scale, mean, components, max(limit, 1e-12))

    def _residual(self, z: np.ndarray) -> np.ndarray:
        d = z - self.mean
        return ((d - d @ self.components.T @ self.components) ** 2).sum(axis=1)

    def ratio(self, arrays: FrameArrays) -> np.ndarray:
        """(N,) each frame's residual over the limit: above 1 means unfamiliar."""
        x = invariant_vectors(arrays).astype(np.float64)
        if x.shape[1] != len(self.centre):
            raise ValueError(f"novelty check fitted on {len(self.centre)}-dimensional vectors, "
                             f"got {x.shape[1]}")
        return self._residual(np.clip((x - self.centre) / self.scale, -CLIP, CLIP)) / self.limit

    def unfamiliar(self, arrays: FrameArrays) -> np.ndarray:
        """(N,) True where a frame is unlike the training frames."""
        return self.ratio(arrays) > 1.0

    def to_dict(self) -> dict[str, Any]:
        return {"centre": self.centre.tolist(), "scale": self.scale.tolist(),
                "mean": self.mean.tolist(), "components": self.components.tolist(),
                "limit": self.limit}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Novelty:
        return cls(*(np.asarray(data[k], dtype=np.float64)
                     for k in ("centre", "scale", "mean", "components")), float(data["limit"]))
