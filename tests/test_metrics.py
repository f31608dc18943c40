"""The rules behind every verdict and every reported number, each against an independent oracle:
hand-computed file scores, scikit-learn for every metric, brute force for the threshold."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from palsy_core.metrics import (
    FLAG_NAMES,
    INCONCLUSIVE,
    UNRELIABLE_FLAGS,
    best_threshold,
    binary_metrics,
    decision,
    file_score,
    inconclusive_reason,
)

NAN = float("nan")


# --- file_score: the mean over good face frames -------------------------------------------------
def test_file_score_leaves_out_flagged_frames_when_good_ones_exist():
    p = [0.9, 0.1, 0.2, NAN, 0.8]
    flags = [("large_yaw",), (), ("multiple_faces",), ("no_face",), ("blur", "small_face")]
    # Good frames: 0.1 (no flag) and 0.2 (a second face is not an unreliable flag). The turned
    # (0.9) and blurred (0.8) frames would raise the mean to 0.5 if they were counted.
    assert file_score(p, flags) == pytest.approx((0.1 + 0.2) / 2)


def test_file_score_uses_every_face_frame_when_all_are_flagged():
    p = [0.9, NAN, 0.3]
    flags = [("large_yaw",), ("no_face",), ("blur",)]
    assert file_score(p, flags) == pytest.approx(0.6)


def test_file_score_without_a_face_is_nan():
    assert math.isnan(file_score([NAN, NAN], [("no_face",), ("no_face",)]))
    assert math.isnan(file_score([], []))


def test_file_score_of_one_photo_is_its_frame_score():
    assert file_score([0.42], [()]) == pytest.approx(0.42)


def test_every_unreliable_flag_has_a_name_users_read():
    assert set(FLAG_NAMES) >= UNRELIABLE_FLAGS
    for flag in UNRELIABLE_FLAGS:  # each one alone excludes its frame
        assert file_score([0.9, 0.1], [(flag,), ()]) == pytest.approx(0.1)


# --- inconclusive and the decision rule --------------------------------------------------------
def test_inconclusive_only_when_no_face_frame_is_reliable():
    assert inconclusive_reason([]) is None
    assert inconclusive_reason([("large_yaw",), ()]) is None
    assert inconclusive_reason([("multiple_faces",)]) is None
    reason = inconclusive_reason([("large_yaw",), ("blur", "large_yaw")])
    assert reason == ("every face frame is unreliable: blurred face, head turned too far "
                      "sideways")


def test_decision_gives_the_side_only_with_a_palsy_verdict():
    assert decision(0.7, 0.8, 0.6, "no face") == (True, "palsy suspected", "left")
    assert decision(0.7, 0.2, 0.6, "no face") == (True, "palsy suspected", "right")
    assert decision(0.6, 0.2, 0.6, "no face") == (True, "palsy suspected", "right")  # >= threshold
    assert decision(0.5, 0.9, 0.6, "no face") == (False, "no palsy detected", None)
    assert decision(None, None, 0.6, "no face") == (None, "no face", None)
    assert decision(0.9, 0.9, 0.6, "no face", "turned") == (None, INCONCLUSIVE, None)
    assert decision(0.7, None, 0.6, "no face") == (True, "palsy suspected", None)


# --- binary_metrics against scikit-learn --------------------------------------------------------
def _check_against_sklearn(y: np.ndarray, p: np.ndarray, threshold: float) -> None:
    m = binary_metrics(y, p, threshold)
    pred = (p >= threshold).astype(int)
    assert m["precision"] == pytest.approx(precision_score(y, pred, zero_division=0.0))
    assert m["recall"] == pytest.approx(recall_score(y, pred, zero_division=0.0))
    assert m["f1"] == pytest.approx(f1_score(y, pred, zero_division=0.0))
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert m["confusion"] == confusion_matrix(y, pred, labels=[0, 1]).tolist()
    assert m["n"] == len(y) and m["n_palsy"] == int(y.sum())
    if len(set(y.tolist())) == 2:
        assert m["auroc"] == pytest.approx(roc_auc_score(y, p))
    else:
        assert m["auroc"] is None


@settings(max_examples=200, deadline=None)
@given(
    labels=st.lists(st.integers(0, 1), min_size=1, max_size=40),
    seed=st.integers(0, 2**31 - 1),
    threshold=st.floats(0.0, 1.0),
    ties=st.booleans(),
)
def test_binary_metrics_match_sklearn(labels, seed, threshold, ties):
    y = np.array(labels)
    rng = np.random.default_rng(seed)
    p = rng.random(len(y))
    if ties:  # scores on a coarse grid: ties, and scores exactly at the threshold
        p = np.round(p * 4) / 4
        threshold = round(threshold * 4) / 4
    _check_against_sklearn(y, p, threshold)


def test_binary_metrics_on_hand_made_cases():
    y = np.array([1, 1, 1, 0, 0, 0, 0])
    p = np.array([0.9, 0.6, 0.2, 0.7, 0.1, 0.3, 0.6])
    m = binary_metrics(y, p, 0.6)
    # predicted palsy: 0.9, 0.6 (palsy), 0.7, 0.6 (healthy) -> tp 2, fp 2, fn 1, tn 2
    assert m["confusion"] == [[2, 2], [1, 2]]
    assert m["precision"] == pytest.approx(0.5)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(4 / 7)
    assert m["accuracy"] == pytest.approx(4 / 7)
    _check_against_sklearn(y, p, 0.6)
    nothing = binary_metrics(np.zeros(3), np.array([0.1, 0.2, 0.3]), 0.5)  # a healthy-only source
    assert nothing["accuracy"] == 1.0 and nothing["auroc"] is None and nothing["f1"] == 0.0


# --- best_threshold: the maximum balanced accuracy, by brute force ------------------------------
@settings(max_examples=150, deadline=None)
@given(
    n_pos=st.integers(1, 25), n_neg=st.integers(1, 25), seed=st.integers(0, 2**31 - 1),
    coarse=st.booleans(),
)
def test_best_threshold_reaches_the_best_balanced_accuracy(n_pos, n_neg, seed, coarse):
    rng = np.random.default_rng(seed)
    y = np.array([1] * n_pos + [0] * n_neg)
    p = np.clip(rng.normal(0.6, 0.2, n_pos + n_neg) - 0.2 * (y == 0), 0, 1)
    if coarse:
        p = np.round(p * 5) / 5
    t = best_threshold(y, p)
    assert 0.0 <= t <= 1.0
    # Every distinct decision a threshold can make: predict palsy for scores >= c.
    best = max(balanced_accuracy_score(y, (p >= c).astype(int))
               for c in np.concatenate([np.unique(p), [np.inf]]))
    assert balanced_accuracy_score(y, (p >= t).astype(int)) == pytest.approx(best)


def test_best_threshold_separates_separable_scores_and_defaults_without_two_classes():
    y = np.array([0, 0, 0, 1, 1])
    p = np.array([0.10, 0.20, 0.30, 0.70, 0.80])
    t = best_threshold(y, p)
    assert 0.30 < t < 0.70
    assert t == pytest.approx(0.5)  # the midpoint of the widest gap (0.3 .. 0.7)
    assert best_threshold(np.ones(4), np.array([0.1, 0.5, 0.7, 0.9])) == 0.5
    assert best_threshold(np.zeros(2), np.array([0.1, 0.9])) == 0.5
