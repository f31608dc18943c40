"""Transfer checks: how the fused model does on a source it has never seen.

Cross-validation inside one collection overstates quality, even grouped by subject: a model can
learn a source's photo style (the data README measured a frozen face CNN at AUROC 0.94-0.99 in
grouped CV and 0.66-0.78 on other sources). So each source is held out in turn: the fused model is
trained on the other sources (real files plus synthetic palsy made from *their* healthy faces, with
every subject of the held-out source removed) and then scores

1. the held-out source's real files, at the threshold chosen on its own training data, and
2. synthetic one-sided palsy made from the held-out source's healthy faces, against their
   severity-0 controls: can it find palsy on people and photo styles it has never seen, and on
   which side?

A source holding only palsy files is held out too; that model has seen palsy only as synthetic
warps of healthy faces. Synthetic samples are scored here but never enter the real-file metrics.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .batches import to_inputs
from .crossval import as_loaded
from .dataset import SIDE_CODES, SampleSet
from .evaluate import metrics_from_predictions
from .manifest import ManifestRow
from .pipeline import MediaAnalysis
from .scoring import ScoredMedia, encode_batches, report_subsets, variant_label
from .train import TrainConfig, Trained, fit

LEFT = SIDE_CODES["left"]


@dataclass
class TransferResult:
    files: pd.DataFrame  # held-out real files with a face: path, source, y, p_/thr_<variant>
    synthetic: pd.DataFrame  # synthetic samples of held-out healthy faces: source, y, side, p
    trained_on: dict[str, dict] = field(default_factory=dict)  # source -> training-set counts
    skipped: dict[str, str] = field(default_factory=dict)  # source -> why it was not held out


def _synthetic_scores(trained: Trained, data: SampleSet, batch_size: int = 128
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample P(palsy) and P(affected side = left) with every modality on."""
    model, keys = trained.model.eval(), trained.model.config.modalities
    batches = (to_inputs(data.arrays.take(np.arange(i, min(i + batch_size, len(data)))),
                         trained.normaliser, keys) for i in range(0, len(data), batch_size))
    with torch.inference_mode():
        out = model.fuse(encode_batches(model, batches, keys), keys)
    return torch.sigmoid(out.palsy_logit).numpy(), torch.sigmoid(out.side_logit).numpy()


def leave_one_source_out(
    rows: Sequence[ManifestRow],
    analyses: dict[Path, MediaAnalysis],
    real: SampleSet,
    synthetic: SampleSet,
    config: TrainConfig,
    progress: bool = True,
) -> TransferResult:
    """Hold out each source in turn (see the module docstring); needs at least two sources."""
    sources = sorted({r.source for r in rows})
    subjects = np.array([r.subject for r in rows], dtype=object)
    files, synth, trained_on, skipped = [], [], {}, {}
    if len(sources) < 2:
        return TransferResult(pd.DataFrame(), pd.DataFrame(),
                              skipped={s: "only one source in the manifest" for s in sources})
    for k, source in enumerate(sources):
        test_ids = np.flatnonzero([r.source == source for r in rows])
        # Whole people out: a subject with files in the held-out source trains on none of them.
        train_ids = np.flatnonzero(~np.isin(subjects, subjects[test_ids]))
        train = SampleSet.concat(real.take(np.flatnonzero(np.isin(real.file_id, train_ids))),
                                 synthetic.take(np.flatnonzero(np.isin(synthetic.file_id,
                                                                       train_ids))))
        if len(set(train.y.tolist())) < 2:
            skipped[source] = ("the other sources hold one class only, even with synthetic "
                               "palsy: nothing to train on")
            continue
        trained_on[source] = {"files": len(np.unique(train.file_id[~train.synthetic])),
                              "subjects": len(set(subjects[train_ids])),
                              "real_palsy_files": len(np.unique(
                                  train.file_id[~train.synthetic & (train.y == 1)])),
                              "synthetic_samples": int(train.synthetic.sum())}
        if progress:
            print(f"transfer {k + 1}/{len(sources)}: {source} held out "
                  f"({len(test_ids)} files), training on {trained_on[source]['files']} files "
                  f"(+{trained_on[source]['synthetic_samples']} synthetic)")
        trained = fit(train, replace(config, seed=config.seed + 100 + k), progress=progress)
        loaded = as_loaded(trained)
        threshold = loaded.threshold(config.modalities)
        for i in test_ids:
            res = analyses.get(rows[i].path)
            if res is None or not res.has_face.any():
                continue
            scored = ScoredMedia(loaded, res)
            rec = {"path": rows[i].rel, "subject": rows[i].subject, "source": source,
                   "label": rows[i].label, "y": rows[i].y,
                   "face_frames": int(res.has_face.sum()), "p_left": scored.score().p_left}
            for subset in report_subsets(config.modalities):
                out = scored.score(subset)
                rec[f"p_{out.name}"], rec[f"thr_{out.name}"] = out.p, out.threshold
            files.append(rec)
        held = synthetic.take(np.flatnonzero(np.isin(synthetic.file_id, test_ids)))
        if len(held):
            p, p_left = _synthetic_scores(trained, held)
            for j in range(len(held)):
                synth.append({"path": rows[held.file_id[j]].rel, "source": source,
                              "y": int(held.y[j]), "side": int(held.side[j]), "face_frames": 1,
                              "p_fused": float(p[j]), "thr_fused": threshold,
                              "p_left": float(p_left[j])})
    return TransferResult(pd.DataFrame.from_records(files), pd.DataFrame.from_records(synth),
                          trained_on, skipped)


def summarise(result: TransferResult) -> dict:
    """Metrics for ``transfer.json``: real held-out files and synthetic palsy, per source."""
    out: dict = {"trained_on": result.trained_on, "skipped": result.skipped}
    if len(result.files):
        # Fused first, as in the CV table (columns were written in report_subsets order).
        names = [c[2:] for c in result.files.columns if c.startswith("p_") and c != "p_left"][::-1]
        real = metrics_from_predictions(result.files, names)
        out["real"] = {"pooled": real["overall"]["fused"],
                       "per_source": {s: b["fused"] for s, b in real["per_source"].items()}}
        out["variants"] = {"pooled": real["overall"], "per_source": real["per_source"]}
    if len(result.synthetic):
        syn = metrics_from_predictions(result.synthetic, ["fused"])
        palsy = result.synthetic[result.synthetic["y"] == 1]
        side_ok = (palsy["p_left"] >= 0.5) == (palsy["side"] == LEFT)
        sides = side_ok.groupby(palsy["source"]).mean()
        per_source = {s: {**b["fused"], "side_accuracy": float(sides.get(s, np.nan))}
                      for s, b in syn["per_source"].items()}
        out["synthetic"] = {"pooled": {**syn["overall"]["fused"],
                                       "side_accuracy": float(side_ok.mean())},
                            "per_source": per_source}
    return out


def write_transfer(result: TransferResult, out: Path) -> dict:
    """``out/transfer.json`` plus the scored rows behind it as two CSV files."""
    out.mkdir(parents=True, exist_ok=True)
    summary = summarise(result)
    (out / "transfer.json").write_text(json.dumps(summary, indent=2, default=float))
    result.files.to_csv(out / "transfer_predictions.csv", index=False)
    result.synthetic.to_csv(out / "transfer_synthetic.csv", index=False)
    return summary


def _pct(v: float | None) -> float | None:
    return None if v is None or not np.isfinite(v) else round(100 * float(v), 1)


def transfer_tables(summary: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Display tables (percent) for the card and the dashboard: the fused model on held-out
    sources' real files, on synthetic palsy made from their healthy faces, and every modality
    subset on the held-out real files."""
    real = []
    for source, m in summary.get("real", {}).get("per_source", {}).items():
        t = summary["trained_on"][source]
        real.append({"held-out source": source, "trained on files": t["files"],
                     "trained on subjects": t["subjects"],
                     "real palsy files in training": t["real_palsy_files"],
                     "held-out files": m["n"], "held-out palsy files": m["n_palsy"],
                     "accuracy %": _pct(m["accuracy"])})
    synthetic = []
    for source, m in summary.get("synthetic", {}).get("per_source", {}).items():
        tn, fp = m["confusion"][0]
        synthetic.append({"held-out source": source, "synthetic palsy": m["n_palsy"],
                          "controls": m["n"] - m["n_palsy"], "palsy found %": _pct(m["recall"]),
                          "controls passed %": _pct(tn / (tn + fp) if tn + fp else None),
                          "AUROC %": _pct(m["auroc"]),
                          "affected side correct %": _pct(m["side_accuracy"])})
    variants = []
    by_source = summary.get("variants", {}).get("per_source", {})
    for name, m in summary.get("variants", {}).get("pooled", {}).items():
        variants.append({"model": variant_label(name), "pooled AUROC %": _pct(m["auroc"]),
                         "pooled accuracy %": _pct(m["accuracy"]),
                         **{f"{s} accuracy %": _pct(b[name]["accuracy"])
                            for s, b in by_source.items()}})
    return pd.DataFrame(real), pd.DataFrame(synthetic), pd.DataFrame(variants)
