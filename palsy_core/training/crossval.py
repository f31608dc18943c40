"""Subject-grouped cross-validation of the fused model, its ablations and the baselines.

For every fold the fused model is trained on the training subjects only (real frames plus
synthetic palsy made from *their* healthy faces) and scores the held-out subjects' real files with
every modality subset. The paper's unimodal baselines (one network per modality) and a logistic
regression on the expression features are trained on exactly the same data. Synthetic faces never
enter a test fold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import LeaveOneGroupOut, StratifiedGroupKFold

from palsy_core.extraction.pipeline import MediaAnalysis
from palsy_core.inference.scoring import ScoredMedia
from palsy_core.io.manifest import ManifestRow
from palsy_core.metrics import file_score
from palsy_core.model.batches import Normaliser
from palsy_core.model.fusion import LR_COLUMN, report_subsets, variant_name
from palsy_core.training.dataset import SampleSet
from palsy_core.training.train import TrainConfig, fit, grouped_split, unit_threshold


def folds(rows: Sequence[ManifestRow], spec: str, seed: int = 0) -> list[np.ndarray]:
    """Test-fold masks over ``rows``: ``lopo`` (one subject out) or ``groupkfold:K``.

    K-fold is stratified by label with whole subjects per fold.
    """
    groups = np.array([r.subject for r in rows])
    y = np.array([r.y for r in rows])
    if spec == "lopo":
        splitter = LeaveOneGroupOut()
        splits = splitter.split(np.zeros(len(rows)), y, groups)
    elif spec.startswith("groupkfold:"):
        k = int(spec.split(":", 1)[1])
        n_groups = len(set(groups))
        if not 2 <= k <= n_groups:
            raise ValueError(f"groupkfold needs 2 <= K <= {n_groups} subjects, got {k}")
        splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
        splits = splitter.split(np.zeros(len(rows)), y, groups)
    else:
        raise ValueError(f"unknown --cv {spec!r}: use lopo or groupkfold:K")
    masks = []
    for _, test in splits:
        m = np.zeros(len(rows), bool)
        m[test] = True
        masks.append(m)
    return masks


def _logreg(train: SampleSet, seed: int) -> tuple[LogisticRegression, Normaliser, float]:
    tr, va = grouped_split(train.subjects, train.y.astype(int), 0.2, seed)
    norm = Normaliser.fit(train.arrays.features[tr])

    def x(s: SampleSet, m: np.ndarray) -> np.ndarray:
        return norm.transform(s.arrays.features[m])

    clf = LogisticRegression(C=0.1, class_weight="balanced", max_iter=2000, random_state=seed)
    clf.fit(x(train, tr), train.y[tr], sample_weight=train.weight[tr])
    real_va = va & ~train.synthetic
    p = clf.predict_proba(x(train, real_va))[:, 1]
    return clf, norm, unit_threshold(train.take(np.flatnonzero(real_va)), p)


def variant_names(modalities: Sequence[str], baselines: bool, unimodal: bool = False
                  ) -> list[str]:
    """Column names (after ``p_``) that ``cross_validate`` fills, in table order."""
    names = [variant_name(s, modalities) for s in report_subsets(modalities)][::-1]
    if unimodal and len(modalities) > 1:
        names += [f"unimodal_{m}" for m in modalities]
    if baselines:
        names += [LR_COLUMN]
    return names


def cross_validate(
    rows: Sequence[ManifestRow],
    analyses: dict[Path, MediaAnalysis],
    real: SampleSet,
    synthetic: SampleSet,
    config: TrainConfig,
    spec: str = "groupkfold:5",
    baselines: bool = True,
    progress: bool = True,
    unimodal: bool = False,
) -> pd.DataFrame:
    """Out-of-fold file-level predictions: one row per file with a face, one ``p_*`` column and
    one ``thr_*`` column (threshold chosen on that fold's training data) per scored variant."""
    records: list[dict] = []
    keys = config.modalities
    for fold, test_mask in enumerate(folds(rows, spec, config.seed)):
        test_ids = np.flatnonzero(test_mask)
        in_train = ~np.isin(real.file_id, test_ids)
        syn_train = ~np.isin(synthetic.file_id, test_ids)
        train = SampleSet.concat(real.take(np.flatnonzero(in_train)),
                                 synthetic.take(np.flatnonzero(syn_train)))
        cfg = replace(config, seed=config.seed + fold)
        if progress:
            print(f"fold {fold + 1}: {int((~test_mask).sum())} train files "
                  f"(+{int(syn_train.sum())} synthetic), {len(test_ids)} test files")
        trained = fit(train, cfg, progress=progress)
        subsets = report_subsets(keys)
        unimodal_nets = {}
        if unimodal and len(keys) > 1:
            for m in keys:
                unimodal_nets[m] = fit(train, replace(cfg, modalities=(m,)), progress=progress)
        clf, lr_norm, lr_thr = _logreg(train, cfg.seed) if baselines else (None, None, None)

        for i in test_ids:
            row = rows[i]
            res = analyses.get(row.path)
            if res is None or not res.has_face.any():
                records.append({"path": row.rel, "subject": row.subject, "source": row.source,
                                "label": row.label, "y": row.y, "fold": fold,
                                "frames": 0 if res is None else res.n_frames, "face_frames": 0})
                continue
            face = np.flatnonzero(res.has_face)
            scored = ScoredMedia(trained, res)
            flags = [scored.frame_flags[t] for t in face]  # the model's own flags included
            rec = {"path": row.rel, "subject": row.subject, "source": row.source,
                   "label": row.label, "y": row.y, "fold": fold, "kind": res.kind,
                   "frames": res.n_frames, "face_frames": len(face),
                   "reason": scored.score().inconclusive}
            for subset in subsets:
                out = scored.score(subset)
                rec[f"p_{out.name}"] = out.p
                rec[f"thr_{out.name}"] = out.threshold
            rec["p_left"] = scored.score().p_left
            for m, tm in unimodal_nets.items():
                out = ScoredMedia(tm, res).score()
                rec[f"p_unimodal_{m}"] = out.p
                rec[f"thr_unimodal_{m}"] = out.threshold
            if clf is not None:
                arrays = real.arrays.take(np.flatnonzero(real.file_id == i))
                x = lr_norm.transform(arrays.features)
                rec[f"p_{LR_COLUMN}"] = file_score(clf.predict_proba(x)[:, 1], flags)
                rec[f"thr_{LR_COLUMN}"] = lr_thr
            records.append(rec)
    return pd.DataFrame.from_records(records)
