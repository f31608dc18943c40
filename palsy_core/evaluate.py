"""Evaluation artifacts: ``metrics.json`` (overall and per source) and ``predictions.csv``.

Files in which no face is found are listed in ``metrics.json`` under ``no_face``, never dropped
silently.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from .extract import file_digest
from .manifest import ManifestError, ManifestRow, read_manifest
from .metrics import binary_metrics
from .pipeline import MediaAnalysis
from .scoring import LoadedModel, ScoredMedia, report_subsets, summary, variant_name


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
    """Overall and per-source metrics for every scored variant in a predictions table.

    Files whose verdict is inconclusive (a ``reason`` is given) are left out of the metrics and
    listed under ``inconclusive``.
    """
    has = df["face_frames"] > 0
    unsure = (df["reason"].fillna("").astype(str) != "") if "reason" in df else has & False
    scored = df[has & ~unsure]
    result = {"n_files": len(df), "no_face": df.loc[~has, "path"].tolist(),
              "inconclusive": df.loc[has & unsure, "path"].tolist(),
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


def evaluate_rows(
    rows: Sequence[ManifestRow],
    analyses: dict[Path, MediaAnalysis],
    errors: dict[Path, str],
    loaded: LoadedModel,
) -> tuple[pd.DataFrame, list[str]]:
    """Score extracted manifest rows: a predictions table and the variant names it holds.

    Rows that failed to load keep their error; rows without a face have no scores. Thresholds are
    the model's own (chosen on its training data).
    """
    subsets = report_subsets(loaded.modalities)
    names = [variant_name(s, loaded.modalities) for s in subsets][::-1]
    records = []
    for r in rows:
        rec = {"path": r.rel, "subject": r.subject, "source": r.source, "label": r.label,
               "y": r.y}
        res = analyses.get(r.path)
        if res is None:
            rec.update({"face_frames": 0, "error": errors.get(r.path, "")})
            records.append(rec)
            continue
        sc = summary(ScoredMedia(loaded, res), subsets)
        rec.update({"frames": sc["frames_analysed"], "face_frames": sc["face_frames"],
                    "verdict": sc["verdict"], "reason": sc["reason"] or "",
                    "side": sc["side"] or "", "p_left": sc["p_left"]})
        for s in subsets:
            name = variant_name(s, loaded.modalities)
            rec[f"p_{name}"] = sc.get(f"p_{name}")
            rec[f"thr_{name}"] = loaded.threshold(s)
        records.append(rec)
    return pd.DataFrame.from_records(records), names



@lru_cache(maxsize=4)
def _manifest_digests(manifest: str, _mtime: float) -> frozenset[str]:
    rows = read_manifest(manifest, check_files=False)
    return frozenset(file_digest(r.path) for r in rows if r.path.is_file())


def training_digests(meta: dict) -> frozenset[str]:
    """SHA-256 digests of the files a model was trained on: stored in its meta
    (``train_digests``) or, for a model saved without them, read from its training manifest when
    that manifest is on this computer; empty when neither is available."""
    if meta.get("train_digests"):
        return frozenset(meta["train_digests"])
    manifest = Path(str(meta.get("manifest") or ""))
    if not manifest.name or not manifest.is_file():
        return frozenset()
    try:
        return _manifest_digests(str(manifest.resolve()), manifest.stat().st_mtime)
    except (ManifestError, OSError):
        return frozenset()


def seen_in_training(meta: dict, paths: Iterable[Path]) -> list[Path]:
    """The files among ``paths`` (by content) that the model was trained on: metrics on them
    measure memory, not screening."""
    known = training_digests(meta)
    if not known:
        return []
    return [p for p in paths if Path(p).is_file() and file_digest(Path(p)) in known]
