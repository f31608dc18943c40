"""Modality subsets and late fusion.

``subset_key``/``all_subsets`` name and enumerate modality subsets everywhere (thresholds, the
ablation table, the transfer check). :class:`LateFusion` is a variant the transfer check compares
with the network's own fusion: a logistic regression over each modality's own palsy logit, fitted
on other folds' held-out predictions. On the check it transferred worse than the network's
fusion (model card), so the shipped verdict does not use it.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression

from .metrics import best_threshold

LOGIT_CLIP = 12.0  # per-modality logits are clipped to this before fusion
C = 1.0  # inverse L2 strength of the fusion regression


def subset_key(modalities: Sequence[str]) -> str:
    """Canonical name of a modality subset, e.g. ``landmarks+lines``."""
    return "+".join(sorted(modalities))


def all_subsets(modalities: Sequence[str]) -> list[tuple[str, ...]]:
    """Every non-empty subset, smallest first, each in ``modalities`` order."""
    return [c for r in range(1, len(modalities) + 1)
            for c in itertools.combinations(modalities, r)]


@dataclass(frozen=True)
class LateFusion:
    """One modality subset's fusion: P(palsy) = sigmoid(intercept + sum coef[m] * logit[m])."""

    modalities: tuple[str, ...]
    coef: tuple[float, ...]
    intercept: float

    def logit(self, logits: Mapping[str, np.ndarray]) -> np.ndarray:
        z = self.intercept + sum(c * np.clip(np.asarray(logits[m], np.float64), -LOGIT_CLIP,
                                             LOGIT_CLIP)
                                 for m, c in zip(self.modalities, self.coef, strict=True))
        return np.asarray(z, np.float64)

    def proba(self, logits: Mapping[str, np.ndarray]) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.logit(logits)))

    def weights(self) -> dict[str, float]:
        """Each modality's share of the fused logit (|coef| normalised to sum to 1)."""
        total = sum(abs(c) for c in self.coef) or 1.0
        return {m: abs(c) / total for m, c in zip(self.modalities, self.coef, strict=True)}


def fit_late_fusion(logits: Mapping[str, np.ndarray], y: np.ndarray,
                    subsets: Sequence[Sequence[str]], weight: np.ndarray | None = None,
                    ) -> tuple[dict[str, LateFusion], dict[str, float]]:
    """Fusions and decision thresholds (max balanced accuracy) for every subset.

    ``logits``: modality -> (N,) file-level palsy logits of that modality alone; ``y`` (N,) 0/1.
    With one class only, every fusion is the plain mean of the logits at threshold 0.5.
    """
    y = np.asarray(y, int)
    fusions: dict[str, LateFusion] = {}
    thresholds: dict[str, float] = {}
    for subset in subsets:
        mods = tuple(subset)
        x = np.column_stack([np.clip(logits[m], -LOGIT_CLIP, LOGIT_CLIP) for m in mods])
        if len(set(y.tolist())) < 2:
            fusion = LateFusion(mods, tuple([1.0 / len(mods)] * len(mods)), 0.0)
        else:
            clf = LogisticRegression(C=C, class_weight="balanced", max_iter=2000)
            clf.fit(x, y, sample_weight=weight)
            fusion = LateFusion(mods, tuple(float(c) for c in clf.coef_[0]),
                                float(clf.intercept_[0]))
        key = subset_key(mods)
        fusions[key] = fusion
        thresholds[key] = best_threshold(y, fusion.proba(dict(zip(mods, x.T, strict=True))))
    return fusions, thresholds
