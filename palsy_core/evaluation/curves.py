"""ROC and precision-recall curves from a predictions table (``predictions.csv``), per variant.

A variant is a ``p_<name>`` column (``fused``, a modality, ``without_<m>``, a baseline). Files
without a score (no face found) are left out, as in ``evaluate.metrics_from_predictions``. The
operating point uses each file's own ``thr_<name>`` (cross-validation picks one threshold per
fold), so it lies on the confusion matrix the metrics report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_curve


@dataclass(frozen=True)
class Curves:
    """One variant's curves; ROC points run from (0, 0) to (1, 1), PR points by rising recall."""

    name: str
    n: int
    n_palsy: int
    fpr: np.ndarray
    tpr: np.ndarray
    recall: np.ndarray
    precision: np.ndarray
    auroc: float
    average_precision: float
    point_fpr: float  # the operating point at the model's thresholds
    point_tpr: float
    point_precision: float


def variant_curves(df: pd.DataFrame, name: str) -> Curves | None:
    """Curves for ``p_<name>``; None when the column is absent or a class has no scored file."""
    p = df.get(f"p_{name}")
    if p is None:
        return None
    ok = p.notna().to_numpy()
    y = df["y"].to_numpy(dtype=int)[ok]
    score = p.to_numpy(dtype=float)[ok]
    if len(set(y.tolist())) < 2:
        return None
    thr = df.get(f"thr_{name}")
    threshold = thr.to_numpy(dtype=float)[ok] if thr is not None else np.full(len(y), 0.5)
    pred = score >= threshold
    tp = int((pred & (y == 1)).sum())
    fp = int((pred & (y == 0)).sum())
    fpr, tpr, _ = roc_curve(y, score, drop_intermediate=False)
    precision, recall, _ = precision_recall_curve(y, score)
    return Curves(
        name=name, n=len(y), n_palsy=int(y.sum()), fpr=fpr, tpr=tpr,
        recall=recall[::-1], precision=precision[::-1], auroc=float(auc(fpr, tpr)),
        average_precision=float(average_precision_score(y, score)),
        point_fpr=fp / int((y == 0).sum()), point_tpr=tp / int(y.sum()),
        point_precision=tp / (tp + fp) if tp + fp else 0.0,
    )


def curves_for(df: pd.DataFrame, names: Sequence[str]) -> dict[str, Curves]:
    """Curves for every named variant that can have them, in the given order."""
    out = {}
    for name in names:
        c = variant_curves(df, name)
        if c is not None:
            out[name] = c
    return out
