"""Transfer check: how the model does on a source it has never seen.

Cross-validation inside one collection overstates quality, even grouped by subject: a model can
learn a source's photo style. So each source (or group of sources that share one pool, such as
two scrapes of the same web images) is held out in turn, and scored **against held-out people of
the other class** from the remaining sources (a fixed, subject-grouped share of them), with a
model trained on everything else: every person of the held-out source and of the contrast group
is removed from training wherever they appear. Each fold then has both classes scored by one
model, so its AUROC measures discrimination on an unseen source, not how well probabilities from
different models happen to line up (which is what pooling raw probabilities of one-class held-out
sources mostly measures).

Per fold, every file is scored by the fold's model with every modality subset of the report
table, each at that model's own threshold (chosen on its subject-grouped validation split, as
for the shipped model), and by a gradient-boosted tree on the concatenated invariant vectors (the
baseline the networks must beat). A third variant, a late fusion of the modalities' own logits
(:mod:`palsy_core.model.fusion`) fitted for fold *k* on the *other* folds' held-out predictions
(excluding fold *k*'s people), measures whether fitting the fusion where it transfers helps.
Pooled numbers centre each fold's scores on that fold's own threshold.

With ``repeats`` > 1 the whole check is run again with other training seeds (each fold's
network initialisation, batch order and validation split; the folds, data and synthetic samples
stay the same) and every reported number is the mean over the runs, with each run's pooled
numbers kept beside it: on this collection one run's pooled AUROC moved by 0.04 with the seed
alone (0.13 under an earlier threshold rule), so one run cannot tell two variants apart by a few
hundredths.

Synthetic one-sided palsy made from the held-out source's healthy faces, against their
severity-0 controls, is scored too (with the affected side). Synthetic samples never enter the
real-file metrics.

The check also chooses which modalities the shipped model's verdict fuses (``choose_verdict``):
the network is trained with modality dropout, so the fusion of all modalities but one is a true
ablation of the same network, and the one whose pooled AUROC is clearly above the full fusion's
(by ``VERDICT_MIN_GAIN``, with no lower pooled F1) becomes the verdict. That is a choice made on
the check the card reports, so its numbers are optimistic by that one choice (the card says so).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from itertools import product
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from threadpoolctl import threadpool_limits

from palsy_core.evaluation.evaluate import held_out_class, inconclusive_rows
from palsy_core.extraction.pipeline import MediaAnalysis
from palsy_core.inference.scoring import ScoredMedia
from palsy_core.io.manifest import ManifestRow
from palsy_core.metrics import binary_metrics, file_score
from palsy_core.model.fusion import (
    GBT,
    LATE,
    fit_late_fusion,
    report_subsets,
    subset_key,
    variant_name,
)
from palsy_core.model.novelty import invariant_vectors
from palsy_core.training.dataset import SIDE_CODES, SampleSet
from palsy_core.training.train import (
    TrainConfig,
    fit,
    grouped_split,
    source_weights,
    subset_scores,
    threshold_units,
    unit_threshold,
)

LEFT = SIDE_CODES["left"]
CONTRAST_FRACTION = 0.3  # share of the other class's people held out beside a one-class source
EPS = 1e-6
# The verdict leaves a modality out only when that raises the pooled transfer AUROC by at least
# this much without lowering the pooled F1: other training settings tried (more epochs, another
# learning rate or modality-dropout rate) moved the two hardest folds' AUROC by 0.002-0.029
# (model card), so a smaller pooled gain is not worth a verdict other than the full fusion.
VERDICT_MIN_GAIN = 0.02
# Run r of a repeated check trains fold k with seed ``config.seed + 100 + k + REPEAT_SEED_STEP * r``
# (``fold_seed``; run 0 keeps the seeds of a single run).
REPEAT_SEED_STEP = 1000


@dataclass(frozen=True)
class TransferFold:
    """One held-out source (group) with its contrast people and its training rows (masks over
    the manifest rows)."""

    name: str
    sources: tuple[str, ...]
    test: np.ndarray  # the held-out source's files
    contrast: np.ndarray  # held-out people of the other class, from the remaining sources
    train: np.ndarray  # everyone else


@dataclass
class TransferResult:
    files: pd.DataFrame  # one row per (run, fold, scored real file): z_<m>, p_/thr_<variant>
    synthetic: pd.DataFrame  # synthetic samples of held-out healthy faces, per run
    trained_on: dict[str, dict] = field(default_factory=dict)  # fold -> training-set counts
    skipped: dict[str, str] = field(default_factory=dict)  # fold -> why it was not run


def fold_seed(seed: int, fold: int, run: int = 0) -> int:
    """The training seed of fold ``fold`` in run ``run`` of the check (``REPEAT_SEED_STEP``)."""
    return seed + 100 + fold + REPEAT_SEED_STEP * run


def _share(subject: str, fold: str) -> float:
    return int(hashlib.sha256(f"{subject}|{fold}".encode()).hexdigest()[:8], 16) / 2 ** 32


def transfer_folds(rows: Sequence[ManifestRow], groups: Sequence[Sequence[str]] = (),
                   contrast_fraction: float = CONTRAST_FRACTION) -> list[TransferFold]:
    """One fold per source; the sources named together in ``groups`` are held out together."""
    sources = sorted({r.source for r in rows})
    joined = {s: tuple(sorted(g)) for g in groups for s in g if s in sources}
    names: list[tuple[str, ...]] = []
    for s in sources:
        g = joined.get(s, (s,))
        g = tuple(x for x in g if x in sources)
        if g not in names:
            names.append(g)
    src = np.array([r.source for r in rows], dtype=object)
    subj = np.array([r.subject for r in rows], dtype=object)
    y = np.array([r.y for r in rows])
    folds = []
    for g in names:
        name = "+".join(g)
        test = np.isin(src, list(g))
        contrast = np.zeros(len(rows), bool)
        classes = set(y[test].tolist())
        if len(classes) == 1:
            other = ~test & (y != next(iter(classes))) & ~np.isin(subj, subj[test])
            picked = [s for s in np.unique(subj[other]) if _share(s, name) < contrast_fraction]
            contrast = other & np.isin(subj, picked)
        held = np.isin(subj, subj[test | contrast])
        folds.append(TransferFold(name, g, test, contrast & ~test, ~held))
    return folds


def _gbt(data: SampleSet, config: TrainConfig, seed: int
         ) -> tuple[HistGradientBoostingClassifier, float]:
    """The tree baseline, trained like the network (same split, source and class balance), and
    its threshold chosen on the same validation units (``train.threshold_units``)."""
    tr, va = grouped_split(data.subjects, data.y.astype(int), config.val_fraction, seed)
    train, val = data.take(np.flatnonzero(tr)), data.take(np.flatnonzero(va))
    w = train.weight.astype(np.float64) * source_weights(train)
    for label in (0, 1):
        sel = train.y == label
        if sel.any():
            w[sel] *= 0.5 / w[sel].sum()
    clf = HistGradientBoostingClassifier(max_iter=150, learning_rate=0.05, max_leaf_nodes=15,
                                         l2_regularization=1.0, random_state=seed)
    # With more than one OpenMP thread, binning dispatches one joblib thread task per feature,
    # and after torch's thread pools have run in this process those threads stall for minutes.
    # One thread runs the binning in-process and the whole fit in seconds.
    with threadpool_limits(1, user_api="openmp"):
        clf.fit(invariant_vectors(train.arrays), train.y.astype(int), sample_weight=w / w.mean())
        val = threshold_units(val)
        p = clf.predict_proba(invariant_vectors(val.arrays))[:, 1]
    return clf, unit_threshold(val, p)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), EPS, 1 - EPS)
    return np.log(p / (1 - p))


def _variants(modalities: Sequence[str]) -> list[tuple[str, tuple[str, ...]]]:
    return [(variant_name(s, modalities), tuple(s)) for s in report_subsets(modalities)][::-1]


def leave_one_source_out(
    rows: Sequence[ManifestRow],
    analyses: dict[Path, MediaAnalysis],
    real: SampleSet,
    synthetic: SampleSet,
    config: TrainConfig,
    groups: Sequence[Sequence[str]] = (),
    progress: bool = True,
    repeats: int = 1,
) -> TransferResult:
    """Run every fold ``repeats`` times with other training seeds (see the module docstring);
    needs at least two sources."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    folds = transfer_folds(rows, groups)
    files, synth, trained_on, skipped = [], [], {}, {}
    if len(folds) < 2:
        return TransferResult(pd.DataFrame(), pd.DataFrame(),
                              skipped={f.name: "only one source in the manifest" for f in folds})
    keys = config.modalities
    for r, (k, fold) in product(range(repeats), enumerate(folds)):
        train_ids = np.flatnonzero(fold.train)
        train = SampleSet.concat(
            real.take(np.flatnonzero(np.isin(real.file_id, train_ids))),
            synthetic.take(np.flatnonzero(np.isin(synthetic.file_id, train_ids))))
        if len(set(train.y.tolist())) < 2:
            skipped[fold.name] = "the other sources hold one class only, even with synthetic palsy"
            continue
        trained_on[fold.name] = {
            "files": len(np.unique(train.file_id[~train.synthetic])),
            "subjects": len({rows[i].subject for i in train_ids}),
            "real_palsy_files": len(np.unique(train.file_id[~train.synthetic & (train.y == 1)])),
            "synthetic_samples": int(train.synthetic.sum()),
            "held_out_files": int(fold.test.sum()), "contrast_files": int(fold.contrast.sum())}
        if progress:
            run = f" (run {r + 1}/{repeats})" if repeats > 1 else ""
            print(f"transfer {k + 1}/{len(folds)}{run}: {fold.name} held out "
                  f"({int(fold.test.sum())} files, {int(fold.contrast.sum())} contrast files), "
                  f"training on {trained_on[fold.name]['files']} files "
                  f"(+{trained_on[fold.name]['synthetic_samples']} synthetic)", flush=True)
        cfg = replace(config, seed=fold_seed(config.seed, k, r))
        loaded = fit(train, cfg, progress=progress)
        gbt, gbt_threshold = _gbt(train, cfg, cfg.seed)
        for i in np.flatnonzero(fold.test | fold.contrast):
            res = analyses.get(rows[i].path)
            if res is None or not res.has_face.any():
                continue
            scored = ScoredMedia(loaded, res)
            face = np.flatnonzero(res.has_face)
            rows_arrays = real.arrays.take(np.flatnonzero(real.file_id == i))
            with threadpool_limits(1, user_api="openmp"):
                p_frames = gbt.predict_proba(invariant_vectors(rows_arrays))[:, 1]
            p_gbt = file_score(p_frames, [scored.frame_flags[t] for t in face])
            rec = {"repeat": r, "fold": fold.name,
                   "role": "held-out source" if fold.test[i] else "contrast",
                   "path": rows[i].rel, "subject": rows[i].subject, "source": rows[i].source,
                   "label": rows[i].label, "y": rows[i].y, "face_frames": len(face),
                   "p_left": scored.score().p_left, "reason": scored.score().inconclusive,
                   f"p_{GBT}": p_gbt, f"thr_{GBT}": gbt_threshold}
            for subset in report_subsets(keys):
                out = scored.score(subset)
                rec[f"p_{out.name}"], rec[f"thr_{out.name}"] = out.p, out.threshold
            rec.update({f"z_{m}": z for m, z in scored.modality_logits().items()})
            files.append(rec)
        held = synthetic.take(np.flatnonzero(np.isin(synthetic.file_id,
                                                     np.flatnonzero(fold.test))))
        if len(held):
            scores = subset_scores(loaded.model, loaded.normaliser, held.arrays,
                                   verdict_candidates(keys))
            for j in range(len(held)):
                rec = {"repeat": r, "fold": fold.name, "path": rows[held.file_id[j]].rel,
                       "source": rows[held.file_id[j]].source, "y": int(held.y[j]),
                       "side": int(held.side[j])}
                for subset in verdict_candidates(keys):
                    z, p_left = scores[subset_key(subset)]
                    name = variant_name(subset, keys)
                    rec[f"p_{name}"] = float(1.0 / (1.0 + np.exp(-z[j])))
                    rec[f"thr_{name}"] = loaded.threshold(subset)
                    rec[f"p_left_{name}"] = float(p_left[j])
                synth.append(rec)
    files_df, synth_df = pd.DataFrame.from_records(files), pd.DataFrame.from_records(synth)
    result = TransferResult(files_df, synth_df, trained_on, skipped)
    if len(files_df):
        _late_fusion(result, keys)
    return result


def verdict_candidates(modalities: Sequence[str]) -> list[tuple[str, ...]]:
    """The subsets the verdict may fuse: every modality, then every modality but one."""
    keys = tuple(modalities)
    return [keys] + ([tuple(m for m in keys if m != left) for left in keys] if len(keys) > 1
                     else [])


def choose_verdict(summary: dict, modalities: Sequence[str]) -> dict:
    """Which modalities the shipped verdict fuses, chosen on the transfer check's pooled numbers.

    The full fusion, unless leaving one modality out raises the pooled AUROC by at least
    ``VERDICT_MIN_GAIN`` without lowering the pooled F1 (the largest such gain wins). Returns
    ``{"name", "modalities", "rule", "candidates": {name: {"auroc", "f1"}}}``.
    """
    keys = tuple(modalities)
    pooled = summary.get("variants", {}).get("pooled", {})
    rule = (f"the full fusion, unless leaving one modality out raises the pooled transfer AUROC by "
            f">= {VERDICT_MIN_GAIN} without lowering the pooled F1")
    candidates = {variant_name(s, keys): tuple(s) for s in verdict_candidates(keys)}
    seen = {n: {"auroc": pooled[n]["auroc"], "f1": pooled[n]["f1"]} for n in candidates
            if n in pooled and pooled[n].get("auroc") is not None}
    best = "fused"
    if "fused" in seen:
        base = seen["fused"]
        gains = {n: m["auroc"] - base["auroc"] for n, m in seen.items()
                 if n != "fused" and m["f1"] >= base["f1"]
                 and m["auroc"] - base["auroc"] >= VERDICT_MIN_GAIN}
        if gains:
            best = max(gains, key=gains.get)
    return {"name": best, "modalities": list(candidates[best]), "rule": rule,
            "candidates": seen}


def _late_fusion(result: TransferResult, modalities: Sequence[str]) -> None:
    """The late-fusion variant: for each fold, a fusion of the modalities' own logits and its
    threshold fitted on the other folds' rows of the same run, excluding this fold's people."""
    df = result.files
    zcols = {m: df[f"z_{m}"].to_numpy(np.float64) for m in modalities}
    y = df["y"].to_numpy(int)
    df[f"p_{LATE}"], df[f"thr_{LATE}"] = np.nan, np.nan
    for run, fold in df[["repeat", "fold"]].drop_duplicates().itertuples(index=False):
        same = (df["repeat"] == run).to_numpy()
        here = same & (df["fold"] == fold).to_numpy()
        other = (same & ~here
                 & ~df["subject"].isin(set(df.loc[here, "subject"])).to_numpy())
        fusions, thresholds = fit_late_fusion({m: z[other] for m, z in zcols.items()}, y[other],
                                              [tuple(modalities)])
        key = subset_key(modalities)
        df.loc[here, f"p_{LATE}"] = fusions[key].proba({m: z[here] for m, z in zcols.items()})
        df.loc[here, f"thr_{LATE}"] = thresholds[key]


def _centred(df: pd.DataFrame, name: str) -> tuple[np.ndarray, np.ndarray]:
    ok = df[f"p_{name}"].notna().to_numpy()
    part = df[ok]
    return part["y"].to_numpy(int), _logit(part[f"p_{name}"]) - _logit(part[f"thr_{name}"])


def _fold_block(part: pd.DataFrame, name: str) -> dict:
    y, s = _centred(part, name)
    held = (part["role"] == "held-out source").to_numpy()[part[f"p_{name}"].notna().to_numpy()]
    m = binary_metrics(y, s, 0.0)
    m["threshold"] = float(part[f"thr_{name}"].mean())
    hy = y[held]
    m["held_out_correct"] = float(((s[held] >= 0).astype(int) == hy).mean()) if held.any() \
        else None
    m["held_out_class"] = held_out_class(hy) if held.any() else None
    return m


def _mean(parts: list):
    """The mean of several runs' summaries, leaf by leaf (a leaf equal in every run, such as a
    count or a class name, is kept as it is; a metric missing in any run is missing)."""
    first = parts[0]
    if isinstance(first, dict):
        return {k: _mean([p[k] for p in parts]) for k in first}
    if isinstance(first, list):
        return [_mean(list(x)) for x in zip(*parts, strict=True)]
    if all(p == first for p in parts):
        return first
    if any(p is None for p in parts):
        return None
    return float(np.mean(parts))


def summarise(result: TransferResult, modalities: Sequence[str]) -> dict:
    """Metrics for ``transfer.json``: per fold and pooled (scores centred on each fold's
    threshold), for every variant and the baselines, plus the synthetic-palsy check. With more
    than one run (``repeats``) each number is the mean over the runs, and ``repeats`` keeps every
    run's pooled numbers; the verdict is chosen on the means."""
    out: dict = {"trained_on": result.trained_on, "skipped": result.skipped,
                 "protocol": {"contrast_fraction": CONTRAST_FRACTION}}
    df = result.files
    if len(df):
        # Inconclusive files (every face frame turned, blurred, small or unlike the fold model's
        # training faces) get no verdict: left out of every variant's metrics, counted here.
        # Quality and the novelty check do not depend on the training seed: one run counts them.
        unsure = inconclusive_rows(df)
        first = df["repeat"].eq(df["repeat"].min())
        out["inconclusive"] = {
            f: {"held_out": int((unsure & first & part["role"].eq("held-out source")).sum()),
                "contrast": int((unsure & first & part["role"].eq("contrast")).sum())}
            for f, part in df.groupby("fold", sort=False)}
        names = [n for n, _ in _variants(modalities)] + [LATE, GBT]
        runs = [{"pooled": {n: binary_metrics(*_centred(part, n), 0.0) for n in names},
                 "per_fold": {f: {n: _fold_block(fp, n) for n in names}
                              for f, fp in part.groupby("fold", sort=False)}}
                for _, part in df[~unsure].groupby("repeat", sort=True)]
        out["variants"] = _mean(runs)
        if len(runs) > 1:
            out["repeats"] = {"runs": len(runs), "seed_step": REPEAT_SEED_STEP,
                              "pooled": [r["pooled"] for r in runs]}
        out["verdict"] = choose_verdict(out, modalities)
    syn = result.synthetic
    name = out.get("verdict", {}).get("name", "fused")
    if len(syn) and f"p_{name}" in syn:
        blocks = [_synthetic_block(part, name) for _, part in syn.groupby("repeat", sort=True)]
        out["synthetic"] = _mean(blocks)
        if "repeats" in out:
            out["repeats"]["synthetic"] = [b["pooled"] for b in blocks]
    return out


def _synthetic_block(syn: pd.DataFrame, name: str) -> dict:
    """Synthetic palsy against its controls, per fold and pooled, for one variant."""
    left = syn[f"p_left_{name}"]

    def block(part: pd.DataFrame) -> dict:
        y = part["y"].to_numpy(int)
        m = binary_metrics(y, _logit(part[f"p_{name}"]) - _logit(part[f"thr_{name}"]), 0.0)
        palsy = part["y"] == 1
        m["side_accuracy"] = float(((left[part.index][palsy] >= 0.5)
                                    == (part.loc[palsy, "side"] == LEFT)).mean()) \
            if palsy.any() else None
        return m

    return {"variant": name, "pooled": block(syn),
            "per_fold": {fold: block(part) for fold, part in syn.groupby("fold", sort=False)}}


def write_transfer(result: TransferResult, out: Path, modalities: Sequence[str]) -> dict:
    """``out/transfer.json`` plus the scored rows behind it as two CSV files."""
    out.mkdir(parents=True, exist_ok=True)
    summary = summarise(result, modalities)
    (out / "transfer.json").write_text(json.dumps(summary, indent=2, default=float))
    result.files.to_csv(out / "transfer_predictions.csv", index=False)
    result.synthetic.to_csv(out / "transfer_synthetic.csv", index=False)
    return summary


def fold_auroc(df: pd.DataFrame, name: str) -> dict[str, float]:
    """AUROC of one variant in each fold, from the raw rows (independent of the summary)."""
    return {f: float(roc_auc_score(part["y"], part[f"p_{name}"]))
            for f, part in df.groupby("fold", sort=False) if part["y"].nunique() == 2}
