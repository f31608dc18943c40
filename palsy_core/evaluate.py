"""Scoring files with a trained model and writing the evaluation artifacts.

A file's score comes from its frames by ``metrics.file_score`` (mean P(palsy) over good-quality
face frames). Each modality subset is scored from the same cached embeddings. Files in which no
face is found are listed in ``metrics.json`` under ``no_face``, never dropped silently.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .batches import FrameArrays, Normaliser, resize_images
from .checkpoint import load_checkpoint
from .metrics import binary_metrics, file_score
from .model import FusionModel
from .pipeline import MediaAnalysis
from .train import all_subsets, score_subsets, subset_key


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


def score_analysis(loaded: LoadedModel, analysis: MediaAnalysis,
                   subsets: Sequence[Sequence[str]] | None = None) -> dict:
    """File-level and per-frame scores of one analysed photo or video."""
    mods = loaded.modalities
    subsets = [tuple(s) for s in (subsets or report_subsets(mods))]
    arrays, idx = frame_arrays(analysis, loaded.model.config.image_size)
    flag_counts: dict[str, int] = {}
    for fl in analysis.flags:
        for f in fl:
            flag_counts[f] = flag_counts.get(f, 0) + 1
    out = {"frames_analysed": analysis.n_frames, "face_frames": len(idx),
           "quality": flag_counts, "per_frame": {}}
    if len(idx) == 0:
        out.update({"p_fused": None, "verdict": "no face found", "side": None, "p_left": None})
        return out
    flags = [analysis.flags[t] for t in idx]
    scores = score_subsets(loaded.model, loaded.normaliser, arrays, subsets)
    for s in subsets:
        name = variant_name(s, mods)
        p, _ = scores[subset_key(s)]
        out[f"p_{name}"] = file_score(p, flags)
        per_frame = np.full(analysis.n_frames, np.nan)
        per_frame[idx] = p
        out["per_frame"][name] = per_frame
    p_left = file_score(scores[subset_key(mods)][1], flags)
    fused_thr = loaded.threshold(mods)
    palsy = out["p_fused"] >= fused_thr
    out.update({"threshold": fused_thr, "p_left": p_left,
                "verdict": "palsy suspected" if palsy else "no palsy detected",
                "side": ("left" if p_left >= 0.5 else "right") if palsy else None})
    return out


def _metrics_block(df: pd.DataFrame, names: Sequence[str]) -> dict:
    block = {}
    for name in names:
        p, thr = df.get(f"p_{name}"), df.get(f"thr_{name}")
        if p is None:
            continue
        ok = p.notna()
        y = df.loc[ok, "y"].to_numpy()
        threshold = thr[ok].to_numpy() if thr is not None else None
        pv = p[ok].to_numpy()
        if threshold is not None:
            # Per-fold thresholds: compare each file with its own fold's threshold.
            pred_shift = pv - threshold + 0.5
            m = binary_metrics(y, pred_shift, 0.5)
            m["auroc"] = binary_metrics(y, pv, 0.5)["auroc"]
            m["threshold"] = float(np.mean(threshold))
        else:
            m = binary_metrics(y, pv, 0.5)
        block[name] = m
    return block


def metrics_from_predictions(df: pd.DataFrame, names: Sequence[str]) -> dict:
    """Overall and per-source metrics for every scored variant in a predictions table."""
    has = df["face_frames"] > 0
    scored = df[has]
    result = {"n_files": len(df), "no_face": df.loc[~has, "path"].tolist(),
              "overall": _metrics_block(scored, names), "per_source": {}}
    for source, part in scored.groupby("source", sort=True):
        result["per_source"][source or "(none)"] = _metrics_block(part, names)
    return result


def write_artifacts(df: pd.DataFrame, names: Sequence[str], out: Path,
                    extra: dict | None = None) -> dict:
    """``out/metrics.json`` and ``out/predictions.csv``."""
    out.mkdir(parents=True, exist_ok=True)
    metrics = {**metrics_from_predictions(df, names), **(extra or {})}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float))
    df.to_csv(out / "predictions.csv", index=False)
    return metrics
