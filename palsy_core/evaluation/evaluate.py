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

from palsy_core.extraction.extract import ExtractJob, file_digest
from palsy_core.extraction.pipeline import MediaAnalysis, Settings
from palsy_core.inference.scoring import LoadedModel, ScoredMedia, load_model, summary
from palsy_core.io.manifest import ManifestError, ManifestRow, read_manifest
from palsy_core.io.media import MediaError
from palsy_core.metrics import binary_metrics
from palsy_core.model.fusion import report_subsets, variant_label, variant_name


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


def inconclusive_rows(df: pd.DataFrame) -> pd.Series:
    """True for the predictions rows whose verdict is inconclusive (a ``reason`` is given)."""
    if "reason" not in df:
        return pd.Series(False, index=df.index)
    return df["reason"].fillna("").astype(str) != ""


def metrics_from_predictions(df: pd.DataFrame, names: Sequence[str]) -> dict:
    """Overall and per-source metrics for every scored variant in a predictions table.

    Files whose verdict is inconclusive (a ``reason`` is given) are left out of the metrics and
    listed under ``inconclusive``.
    """
    has = df["face_frames"] > 0
    unsure = inconclusive_rows(df)
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


def evaluate_record(row: ManifestRow, analysis: MediaAnalysis | None, error: str,
                    loaded: LoadedModel) -> dict:
    """One manifest row's predictions record: every reported subset's P(palsy) and threshold, the
    verdict, the reason it is inconclusive, the side; a row that failed to load keeps its error."""
    rec = {"path": row.rel, "subject": row.subject, "source": row.source, "label": row.label,
           "y": row.y}
    if analysis is None:
        rec.update({"face_frames": 0, "error": error})
        return rec
    subsets = report_subsets(loaded.modalities)
    sc = summary(ScoredMedia(loaded, analysis), subsets)
    rec.update({"frames": sc["frames_analysed"], "face_frames": sc["face_frames"],
                "verdict": sc["verdict"], "reason": sc["reason"] or "",
                "side": sc["side"] or "", "p_left": sc["p_left"]})
    for s in subsets:
        name = variant_name(s, loaded.modalities)
        rec[f"p_{name}"] = sc.get(f"p_{name}")
        rec[f"thr_{name}"] = loaded.threshold(s)
    return rec


def variant_names(loaded: LoadedModel) -> list[str]:
    """The predictions table's variant names, fused first."""
    return [variant_name(s, loaded.modalities) for s in report_subsets(loaded.modalities)][::-1]


class EvaluateJob:
    """Per-row evaluation for the batch engines: extract (through the cache) and score one
    manifest row; only its predictions record comes back. ``model`` is a loaded model (sent to
    each worker as it is) or a checkpoint path (each worker loads it once)."""

    def __init__(self, model: LoadedModel | str | Path, settings: Settings,
                 cache_dir: Path | None = None) -> None:
        self.model = model
        self.extract = ExtractJob(settings, cache_dir)

    def __repr__(self) -> str:
        return "EvaluateJob()"

    def setup(self) -> None:
        self.extract.setup()
        if not isinstance(self.model, LoadedModel):
            self.model = load_model(self.model)

    def __call__(self, row: ManifestRow) -> dict:
        try:
            analysis, _ = self.extract.analysis(row.path)
        except (MediaError, OSError) as exc:
            return evaluate_record(row, None, str(exc), self.model)
        return evaluate_record(row, analysis, "", self.model)

    def close(self) -> None:
        self.extract.close()


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


def seen_in_training(meta: dict, rows: Iterable[ManifestRow]) -> list[str]:
    """The manifest paths (``rel``) of the rows whose file the model was trained on, by
    content: metrics on them measure memory, not screening."""
    known = training_digests(meta)
    if not known:
        return []
    return [r.rel for r in rows if r.path.is_file() and file_digest(r.path) in known]


# --- the transfer check's tables (training writes transfer.json; these only read it) ------


def _pct(v: float | None) -> float | None:
    return None if v is None or not np.isfinite(v) else round(100 * float(v), 1)


def held_out_class(y: Sequence[int] | np.ndarray | pd.Series) -> str:
    """The class of a transfer fold's held-out files (0/1 labels): "palsy", "healthy" or, for a
    source of both classes, "both"."""
    share = float(np.mean(y))
    return "palsy" if share == 1 else "healthy" if share == 0 else "both"


def transfer_verdict(summary: dict | None) -> str:
    """The variant the model trained with this check decides with (``fused`` for a check run
    before the choice was made)."""
    return ((summary or {}).get("verdict") or {}).get("name") or "fused"


def transfer_tables(summary: dict) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Display tables (percent) for the card and the dashboard: the verdict per held-out
    source, synthetic palsy of the held-out sources' healthy faces, and every variant (each
    modality alone, each leave-one-out subset, the network's own fusion and the GBT baseline)
    pooled and per fold. A check run with several training seeds shows the means, and every
    run's pooled AUROC / F1 in one more column."""
    variants = summary.get("variants", {})
    per_fold = variants.get("per_fold", {})
    real = []
    unsure = summary.get("inconclusive", {})
    verdict = transfer_verdict(summary)
    for fold, block in per_fold.items():
        m, t = block[verdict], summary["trained_on"][fold]
        u = unsure.get(fold, {})
        real.append({"held-out source": fold, "class": m["held_out_class"],
                     "AUROC %": _pct(m["auroc"]),
                     "held-out files right %": _pct(m["held_out_correct"]),
                     "F1 %": _pct(m["f1"]), "held-out files": t["held_out_files"],
                     "contrast files": t["contrast_files"],
                     "inconclusive (held-out / contrast)":
                         f"{u.get('held_out', 0)} / {u.get('contrast', 0)}",
                     "trained on files": t["files"],
                     "trained on subjects": t["subjects"],
                     "real palsy files in training": t["real_palsy_files"]})
    synthetic = []
    for fold, m in summary.get("synthetic", {}).get("per_fold", {}).items():
        tn, fp = m["confusion"][0]
        synthetic.append({"held-out source": fold, "synthetic palsy": m["n_palsy"],
                          "controls": m["n"] - m["n_palsy"], "palsy found %": _pct(m["recall"]),
                          "controls passed %": _pct(tn / (tn + fp) if tn + fp else None),
                          "AUROC %": _pct(m["auroc"]),
                          "affected side correct %": _pct(m["side_accuracy"])})
    rows = []
    runs = summary.get("repeats", {}).get("pooled", [])
    for name, m in variants.get("pooled", {}).items():
        each = {"pooled AUROC / F1 % per run": ", ".join(
            f"{_pct(r[name]['auroc'])} / {_pct(r[name]['f1'])}" for r in runs)} if runs else {}
        rows.append({"model": variant_label(name, verdict), "pooled AUROC %": _pct(m["auroc"]),
                     "pooled F1 %": _pct(m["f1"]), **each,
                     "lowest fold AUROC %": _pct(min((b[name]["auroc"] or 0.0)
                                                     for b in per_fold.values())),
                     **{f"{f} AUROC %": _pct(b[name]["auroc"]) for f, b in per_fold.items()}})
    return pd.DataFrame(real), pd.DataFrame(synthetic), pd.DataFrame(rows)


def contrast_table(predictions: pd.DataFrame, name: str) -> pd.DataFrame:
    """Each held-out source against each source of its contrast group separately (percent).

    A fold's AUROC mixes the contrast sources: the web palsy pool against healthy web photos is
    not the same task as against small news photos. Here every (held-out source, contrast
    source) pair of the transfer check's scored rows (``transfer_predictions.csv``) gets its own
    AUROC and the share of that contrast source's files on the right side of the fold model's
    threshold, for the variant ``name``. Inconclusive files are left out; with several runs of
    the check each number is the mean over the runs. A contrast source with one file or none
    left has no AUROC.
    """
    p, thr = f"p_{name}", f"thr_{name}"
    if not {"fold", "role", "source", "y", p, thr} <= set(predictions.columns):
        return pd.DataFrame()
    df = predictions[~inconclusive_rows(predictions) & predictions[p].notna()]
    df = df.assign(_right=(df[p] >= df[thr]).astype(int) == df["y"],
                   _run=df.get("repeat", 0))
    rows = []
    for fold, part in df.groupby("fold", sort=False):
        held = part[part["role"] == "held-out source"]
        contrast = part[part["role"] == "contrast"]
        if held.empty:
            continue
        for source, other in contrast.groupby("source", sort=True):
            aurocs = []
            for run, h in held.groupby("_run"):
                o = other[other["_run"] == run]
                both = pd.concat([h, o])
                if len(o) > 1 and both["y"].nunique() == 2:
                    aurocs.append(binary_metrics(both["y"].to_numpy(int),
                                                 both[p].to_numpy(float), 0.5)["auroc"])
            n = int(other.groupby("_run").size().iloc[0])
            rows.append({"held-out source": fold, "held-out class": held_out_class(held["y"]),
                         "contrast source": source, "contrast files": n,
                         "AUROC %": _pct(float(np.mean(aurocs))) if aurocs else None,
                         "contrast files right %": _pct(float(other["_right"].mean()))})
    return pd.DataFrame(rows)
