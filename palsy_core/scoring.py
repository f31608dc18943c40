"""Scoring an analysed photo or video from cached per-frame embeddings.

Each encoder runs once per frame; every modality subset is then a re-weighting of the cached
embeddings (``FusionModel.fuse``), so toggling modalities re-scores a long video in milliseconds
without re-running detection or the image networks. The CLI, evaluation and the dashboard all
score through ``ScoredMedia``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .batches import FrameArrays, Normaliser, resize_images, to_inputs
from .checkpoint import load_checkpoint
from .metrics import file_score
from .model import FusionModel
from .pipeline import MediaAnalysis
from .train import all_subsets, subset_key


@dataclass
class LoadedModel:
    model: FusionModel
    normaliser: Normaliser
    thresholds: dict[str, float]
    meta: dict

    @property
    def modalities(self) -> tuple[str, ...]:
        return self.model.config.modalities

    def threshold(self, subset: Sequence[str]) -> float:
        return float(self.thresholds.get(subset_key(subset), self.meta.get("threshold", 0.5)))


def load_model(path: str | Path) -> LoadedModel:
    model, meta = load_checkpoint(path)
    return LoadedModel(model, Normaliser.from_dict(meta["normaliser"]),
                       dict(meta.get("thresholds", {})), meta)


def variant_name(subset: Sequence[str], modalities: Sequence[str]) -> str:
    """``fused`` for all modalities, the key for one, ``without_<m>`` for all but one."""
    subset = [m for m in modalities if m in subset]
    if len(subset) == len(modalities):
        return "fused"
    if len(subset) == 1:
        return subset[0]
    if len(subset) == len(modalities) - 1:
        return "without_" + next(m for m in modalities if m not in subset)
    return subset_key(subset)


def report_subsets(modalities: Sequence[str]) -> list[tuple[str, ...]]:
    """The paper-style table: the fused model, each modality alone, each leave-one-out subset."""
    n = len(modalities)
    return [s for s in all_subsets(modalities) if len(s) in (1, n - 1, n)]


def frame_arrays(analysis: MediaAnalysis, image_size: int) -> tuple[FrameArrays, np.ndarray]:
    idx = np.flatnonzero(analysis.has_face)
    arrays = FrameArrays(
        rgb=resize_images(analysis.rgb[idx], image_size),
        lines=resize_images(analysis.lines[idx], image_size),
        landmarks=analysis.landmarks[idx], features=analysis.features[idx],
        blendshapes=None if analysis.blendshapes is None else analysis.blendshapes[idx])
    return arrays, idx


@dataclass(frozen=True)
class SubsetScore:
    """The result for one modality subset."""

    enabled: tuple[str, ...]
    name: str  # fused, a modality key, without_<m>, or a joined subset key
    p_frames: np.ndarray  # (T,) P(palsy) per frame, NaN where no face
    p_left_frames: np.ndarray  # (T,) P(affected side = subject's left), NaN where no face
    p: float | None  # file-level P(palsy) (metrics.file_score), None without a face
    p_left: float | None
    threshold: float
    weights: dict[str, float]

    @property
    def palsy(self) -> bool | None:
        return None if self.p is None else self.p >= self.threshold

    @property
    def verdict(self) -> str:
        if self.p is None:
            return "no face found"
        return "palsy suspected" if self.palsy else "no palsy detected"

    @property
    def side(self) -> str | None:
        if not self.palsy or self.p_left is None:
            return None
        return "left" if self.p_left >= 0.5 else "right"


class ScoredMedia:
    """An analysed file plus its cached embeddings, ready to score any modality subset."""

    def __init__(self, loaded: LoadedModel, analysis: MediaAnalysis, batch_size: int = 64):
        self.loaded = loaded
        self.analysis = analysis
        arrays, self.face_idx = frame_arrays(analysis, loaded.model.config.image_size)
        self.modalities = tuple(m for m in loaded.modalities
                                if m != "blendshapes" or arrays.blendshapes is not None)
        model = loaded.model.eval()
        chunks: dict[str, list[torch.Tensor]] = {m: [] for m in self.modalities}
        with torch.no_grad():
            for start in range(0, len(arrays), batch_size):
                part = arrays.take(np.arange(start, min(start + batch_size, len(arrays))))
                emb = model.encode(to_inputs(part, loaded.normaliser, self.modalities),
                                   self.modalities)
                for m in self.modalities:
                    chunks[m].append(emb[m])
        self.embeddings = {m: torch.cat(v) for m, v in chunks.items() if v}
        self._flags = [analysis.flags[t] for t in self.face_idx]

    @property
    def has_face(self) -> bool:
        return len(self.face_idx) > 0

    def score(self, enabled: Sequence[str] | None = None) -> SubsetScore:
        """Score with only the ``enabled`` modalities (default: all the model has)."""
        enabled = tuple(m for m in self.modalities if m in (enabled or self.modalities))
        if not enabled:
            raise ValueError(f"enable at least one of {list(self.modalities)}")
        t = self.analysis.n_frames
        p_frames = np.full(t, np.nan)
        p_left_frames = np.full(t, np.nan)
        weights: dict[str, float] = {}
        p = p_left = None
        if self.has_face:
            with torch.no_grad():
                out = self.loaded.model.fuse({m: self.embeddings[m] for m in enabled}, enabled)
            p_frames[self.face_idx] = torch.sigmoid(out.palsy_logit).numpy()
            p_left_frames[self.face_idx] = torch.sigmoid(out.side_logit).numpy()
            weights = {m: float(w[0]) for m, w in out.weights.items()}
            p = file_score(p_frames[self.face_idx], self._flags)
            p_left = file_score(p_left_frames[self.face_idx], self._flags)
        return SubsetScore(enabled, variant_name(enabled, self.modalities), p_frames,
                           p_left_frames, p, p_left, self.loaded.threshold(enabled), weights)

    def all_subsets(self) -> list[SubsetScore]:
        """Every non-empty modality subset's result on this file."""
        return [self.score(s) for s in all_subsets(self.modalities)]


def summary(scored: ScoredMedia, subsets: Sequence[Sequence[str]]) -> dict:
    """The per-file record used by ``predict`` and ``evaluate`` (JSON-serialisable)."""
    a = scored.analysis
    quality: dict[str, int] = {}
    for fl in a.flags:
        for f in fl:
            quality[f] = quality.get(f, 0) + 1
    full = scored.score()
    out = {"frames_analysed": a.n_frames, "face_frames": len(scored.face_idx),
           "quality": quality, "verdict": full.verdict, "side": full.side,
           "threshold": full.threshold, "p_left": full.p_left}
    for s in subsets:
        res = scored.score(s)
        out[f"p_{res.name}"] = res.p
    return out
