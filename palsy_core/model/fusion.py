"""Modality subsets (the one place they are named) and late fusion.

A subset has one canonical key (``subset_key``: thresholds in checkpoints), one column name
(``variant_name``: ``fused``, ``rgb``, ``without_lines``; the CV and transfer tables) and one
label for people (``variant_label``); ``all_subsets`` and ``report_subsets`` enumerate them.

:class:`LateFusion` is a variant the transfer check compares with the network's own fusion: a
logistic regression over each modality's own palsy logit, fitted on other folds' held-out
predictions. On the check it transferred worse than the network's fusion (model card), so the
shipped verdict does not use it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression

from palsy_core.metrics import best_threshold
from palsy_core.registry import MODALITIES

LOGIT_CLIP = 12.0  # per-modality logits are clipped to this before fusion
C = 1.0  # inverse L2 strength of the fusion regression


def subset_key(modalities: Sequence[str]) -> str:
    """Canonical name of a modality subset, e.g. ``landmarks+lines``."""
    return "+".join(sorted(modalities))


def all_subsets(modalities: Sequence[str]) -> list[tuple[str, ...]]:
    """Every non-empty subset, smallest first, each in ``modalities`` order."""
    return [c for r in range(1, len(modalities) + 1)
            for c in itertools.combinations(modalities, r)]


# Baseline and variant columns of the CV and transfer tables (after ``p_``), beside subsets.
GBT = "gbt_invariant"  # gradient-boosted tree on the invariant vectors (transfer check)
LATE = "late_fusion"  # late fusion fitted on the other folds' predictions (transfer check)
LR_COLUMN = "logreg_features"  # logistic regression on the expression features (CV)


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


def verdict_first(names: Iterable[str], verdict: str) -> list[str]:
    """``names`` in their order, the verdict's variant moved to the front (tables lead with it)."""
    return sorted(names, key=lambda n: n != verdict)


def variant_label(name: str, verdict: str | None = None) -> str:
    """A readable name for a predictions variant (``fused``, ``rgb``, ``without_lines``...);
    the variant named ``verdict`` (the one the shipped model decides with) is marked."""
    if verdict is not None and name == verdict:
        return variant_label(name) + " (the verdict)"
    names = {m.key: m.name for m in MODALITIES}
    prefix, _, rest = name.partition("_")
    if name == "fused":
        return "Fused (all modalities)"
    if name in names:
        return f"{names[name]} only"
    if prefix == "without" and rest in names:
        return f"Fused without {names[rest]}"
    if prefix == "unimodal" and rest in names:
        return f"Unimodal network: {names[rest]}"
    if name == GBT:
        return "Baseline: gradient-boosted tree on the invariant vectors"
    if name == LATE:
        return "Late fusion of the modalities' logits, fitted on the other folds"
    if name == LR_COLUMN:
        return "Logistic regression on expression features"
    return name


def report_subsets(modalities: Sequence[str]) -> list[tuple[str, ...]]:
    """The paper-style table: the fused model, each modality alone, each leave-one-out subset."""
    n = len(modalities)
    return [s for s in all_subsets(modalities) if len(s) in (1, n - 1, n)]


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
