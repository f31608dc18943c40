"""End to end: train -> evaluate -> predict on real faces and their synthetic palsy versions."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from palsy_core.io.manifest import ManifestRow
from palsy_core.metrics import MIN_THRESHOLD_FILES
from palsy_core.model.batches import FrameArrays
from palsy_core.model.fusion import variant_label, variant_name
from palsy_core.training.crossval import folds
from palsy_core.training.dataset import MOVEMENT_SHARE, SIDE_CODES, SampleSet
from palsy_core.training.train import grouped_split, threshold_units
from palsy_core.training.transfer import VERDICT_MIN_GAIN


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "palsy_core", *args], capture_output=True,
                          text=True, timeout=900)


def test_grouped_splits_never_share_a_subject():
    rows = [ManifestRow(line=i, path=None, rel=f"f{i}.jpg", label=("healthy", "palsy")[i % 2],
                        subject=f"s{i // 3}") for i in range(60)]
    subjects = np.array([r.subject for r in rows])
    for spec in ("groupkfold:5", "lopo"):
        masks = folds(rows, spec)
        assert np.all(np.sum(masks, axis=0) == 1)  # every file is tested exactly once
        for test in masks:
            assert not set(subjects[test]) & set(subjects[~test])
    y = np.array([r.y for r in rows])
    train, val = grouped_split(subjects, y, 0.2, seed=0)
    assert not set(subjects[train]) & set(subjects[val])
    assert set(y[val]) == {0, 1}
    with pytest.raises(ValueError, match="groupkfold"):
        folds(rows, "groupkfold:1000")


def _validation_set(real_palsy_files: int, real_healthy_files: int, frames: int = 2) -> SampleSet:
    """Real files (``frames`` frames each) of both classes plus synthetic samples of both."""
    y, fid, syn = [], [], []
    for label, n in ((1, real_palsy_files), (0, real_healthy_files)):
        for _ in range(n):
            y += [label] * frames
            fid += [len(set(fid))] * frames
            syn += [False] * frames
    for label in (1, 1, 0):  # two warps and a control of one healthy file
        y.append(label)
        fid.append(len(set(fid)))
        syn.append(True)
    n = len(y)
    return SampleSet(FrameArrays({"features": np.zeros((n, 1), np.float32)}),
                     np.array(y, np.float32), np.full(n, -1, np.int8), np.ones(n, np.float32),
                     np.array(fid), np.array(syn), [])


def test_thresholds_use_synthetic_samples_only_when_real_files_of_a_class_are_few():
    enough = _validation_set(MIN_THRESHOLD_FILES, 3 * MIN_THRESHOLD_FILES)
    chosen = threshold_units(enough)
    assert not chosen.synthetic.any() and len(chosen) == (~enough.synthetic).sum()
    # Files, not frames, are counted: many frames of few palsy files are still few files.
    for few in (_validation_set(MIN_THRESHOLD_FILES - 1, 100, frames=10),
                _validation_set(100, 5), _validation_set(0, 100)):
        chosen = threshold_units(few)
        assert len(chosen) == len(few) and chosen.synthetic.sum() == 3


def test_train_evaluate_predict(tmp_path, palsy_manifest, pyfeat_dir):
    model = tmp_path / "m.pt"
    cache = str(tmp_path / "cache")
    run = _cli("train", "--manifest", str(palsy_manifest), "--out", str(model),
               "--cv", "groupkfold:3", "--epochs", "3", "--image-size", "48", "--depth",
               "resnet10", "--synth-variants", "1", "--unimodal", "--cache", cache)
    assert run.returncode == 0, run.stderr[-3000:]
    assert model.is_file() and model.stat().st_size < 50e6
    cv_dir = tmp_path / "m_cv"
    cv = json.loads((cv_dir / "metrics.json").read_text())
    for name in ("fused", "rgb", "lines", "landmarks", "features", "without_rgb",
                 "unimodal_lines", "logreg_features"):
        assert name in cv["overall"], name
        assert set(cv["overall"][name]) >= {"precision", "recall", "f1", "accuracy", "auroc",
                                            "confusion"}
    assert set(cv["per_source"]) == {"pyfeat", "synthetic"}
    preds = pd.read_csv(cv_dir / "predictions.csv")
    assert len(preds) == 12 and preds["p_fused"].between(0, 1).all()
    # Out-of-fold: each subject's files were all in the same test fold.
    assert preds.groupby("subject")["fold"].nunique().eq(1).all()

    out = tmp_path / "eval"
    run = _cli("evaluate", "--manifest", str(palsy_manifest), "--model", str(model),
               "--out", str(out), "--cache", cache)
    assert run.returncode == 0, run.stderr[-3000:]
    ev = pd.read_csv(out / "predictions.csv")
    assert {"path", "subject", "source", "label", "p_fused", "p_rgb", "p_lines", "p_landmarks",
            "p_features", "side"} <= set(ev.columns)
    metrics = json.loads((out / "metrics.json").read_text())
    # Files whose every face frame is unreliable are inconclusive: listed, left out of metrics.
    unsure = ev.loc[ev["reason"].fillna("") != "", "path"].tolist()
    assert sorted(metrics["inconclusive"]) == sorted(unsure)
    assert (ev.loc[ev["path"].isin(unsure), "verdict"] == "inconclusive").all()
    assert metrics["no_face"] == [] and metrics["overall"]["fused"]["n"] == 12 - len(unsure)
    # These are the model's own training files: recorded and said on stderr.
    assert sorted(metrics["seen_in_training"]) == sorted(ev["path"])
    assert "12 of these 12 files were in the model's training data" in run.stderr

    # evaluate and predict report what scoring the file directly gives (same model, same frames).
    from palsy_core.extraction.pipeline import Settings, analyse_media
    from palsy_core.inference.scoring import ScoredMedia, load_model

    loaded = load_model(model)
    # The synthetic-palsy settings are recorded in the model (the card states them).
    assert loaded.meta["synthetic"] == {"variants": 1, "styled": 0.0,
                                        "movement": MOVEMENT_SHARE}
    root = palsy_manifest.parent
    for rel in ("healthy_0.png", "palsy_1.png"):
        direct = ScoredMedia(loaded, analyse_media(root / rel, rel, Settings()))
        row = ev.set_index("path").loc[rel]
        assert row["p_fused"] == pytest.approx(direct.score().p, abs=1e-6), rel
        assert row["p_features"] == pytest.approx(direct.score(("features",)).p, abs=1e-6), rel

    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video")
    run = _cli("predict", str(pyfeat_dir / "single_face.jpg"), str(bad),
               str(pyfeat_dir / "no_face.mp4"), "--model", str(model), "--json",
               "--max-frames", "4")
    lines = [json.loads(x) for x in run.stdout.splitlines()]
    assert [x["path"] for x in lines] == [str(pyfeat_dir / "single_face.jpg"), str(bad),
                                          str(pyfeat_dir / "no_face.mp4")]
    face, broken, empty = lines
    assert {"p_fused", "p_rgb", "p_lines", "p_landmarks", "p_features", "p_blendshapes",
            "verdict", "reason", "side", "frames_analysed", "quality"} <= set(face)
    assert 0 <= face["p_fused"] <= 1 and face["frames_analysed"] == 1
    photo = pyfeat_dir / "single_face.jpg"
    direct = ScoredMedia(loaded, analyse_media(photo, photo.name, Settings(max_frames=4)))
    assert face["p_fused"] == pytest.approx(direct.score().p, abs=1e-6)
    assert face["verdict"] == direct.score().verdict
    assert "notes.mp4" in broken["error"]
    assert empty["verdict"] == "no face found" and empty["quality"]["no_face"] == 4
    assert run.returncode == 1  # one file failed; the others were still scored


def test_synthetic_samples_in_movement_keep_their_labels_and_sides(healthy_faces):
    """With ``movement=1`` every warp and every control is also drawn in a voluntary movement
    (real faces, re-detected): the same samples, labels and sides as without, other landmarks.
    How each side moves is tested on the warp itself (tests/test_synth.py)."""
    from palsy_core.training.dataset import synthetic_samples

    rows, analyses = healthy_faces
    still = synthetic_samples(rows, analyses, 64, variants=2, movement=0.0, progress=False)
    moving = synthetic_samples(rows, analyses, 64, variants=2, movement=1.0, progress=False)
    np.testing.assert_array_equal(moving.y, still.y)
    np.testing.assert_array_equal(moving.side, still.side)
    np.testing.assert_array_equal(moving.file_id, still.file_id)
    a, b = still.arrays.values["landmarks"], moving.arrays.values["landmarks"]
    assert all(not np.allclose(x, z) for x, z in zip(a, b, strict=True))
    with pytest.raises(ValueError, match="movement must be a share"):
        synthetic_samples(rows, analyses, 64, movement=1.5, progress=False)


def test_structured_model_learns_synthetic_palsy(tmp_path, palsy_manifest):
    """The landmark+feature branches find synthetic palsy on faces they never saw: judged on
    subject-grouped out-of-fold predictions (each person's healthy and palsy photo are tested
    by a model trained on other people only), not on the training files."""
    model = tmp_path / "v.pt"
    cache = str(tmp_path / "cache")
    run = _cli("train", "--manifest", str(palsy_manifest), "--out", str(model),
               "--cv", "groupkfold:3", "--modalities", "landmarks", "features", "--epochs", "40",
               "--patience", "40", "--synth-variants", "4", "--no-baselines", "--cache", cache)
    assert run.returncode == 0, run.stderr[-3000:]
    preds = pd.read_csv(tmp_path / "v_cv" / "predictions.csv")
    assert len(preds) == 12 and preds.groupby("subject")["fold"].nunique().eq(1).all()
    # Six people, a few minutes of CPU: the base rate differs between people, so the check is
    # paired: each unseen person's palsy photo scores above their own healthy photo.
    pairs = preds.pivot(index="subject", columns="label", values="p_fused")
    gain = pairs["palsy"] - pairs["healthy"]
    assert (gain > 0).sum() >= 5 and gain.mean() > 0.03, pairs
    assert roc_auc_score(preds["label"] == "palsy", preds["p_fused"]) > 0.6


def test_leave_one_source_out_never_trains_on_the_held_out_people(tmp_path, transfer_run):
    """Each source is held out in turn against held-out people of the other class; none of
    them (in any source) reach that fold's model, and every fold scores both classes."""
    from palsy_core.evaluation.model_card import transfer_section
    from palsy_core.training.transfer import fold_auroc, transfer_folds, write_transfer

    rows, result = transfer_run
    assert sorted(result.trained_on) == ["healthy-a", "healthy-b", "palsy-set"]
    assert result.skipped == {}
    files = result.files
    # Every real file is scored once as part of its own held-out source.
    held = files[files["role"] == "held-out source"]
    assert sorted(held["path"]) == sorted(r.rel for r in rows)
    assert (held["fold"] == held["source"]).all()
    # Contrast files are of the other class and never from the held-out source.
    for fold, part in files.groupby("fold"):
        src_y = set(part.loc[part["role"] == "held-out source", "y"])
        con = part[part["role"] == "contrast"]
        assert len(src_y) == 1 and not (set(con["y"]) & src_y)
        assert (con["source"] != fold).all()
    # Training never holds a scored person: recompute the folds independently.
    for fold in transfer_folds(rows):
        scored = {rows[i].subject for i in np.flatnonzero(fold.test | fold.contrast)}
        trained = {rows[i].subject for i in np.flatnonzero(fold.train)}
        assert not scored & trained
        assert result.trained_on[fold.name]["files"] == int(fold.train.sum())
    # Holding out the palsy set leaves palsy to synthetic warps only.
    assert result.trained_on["palsy-set"]["real_palsy_files"] == 0
    # Late fusion and thresholds exist for every row; fold AUROC recomputed from the rows.
    assert files["p_fused"].between(0, 1).all() and files["thr_fused"].between(0, 1).all()
    summary = write_transfer(result, tmp_path / "cv", ("landmarks", "features"))
    # Inconclusive files (all frames unreliable or unfamiliar) are counted, then left out of
    # every metric below.
    everything = files
    unsure = files["reason"].fillna("").astype(str) != ""
    for fold, part in files[unsure].groupby("fold"):
        counts = summary["inconclusive"][fold]
        assert counts["held_out"] + counts["contrast"] == len(part)
    assert sum(sum(c.values()) for c in summary["inconclusive"].values()) == unsure.sum()
    files = files[~unsure]
    per_fold = summary["variants"]["per_fold"]
    for fold, auc in fold_auroc(files, "fused").items():
        assert per_fold[fold]["fused"]["auroc"] == pytest.approx(auc)
    # The verdict is the candidate the rule picks from the pooled numbers; the tables are its.
    pooled = summary["variants"]["pooled"]
    v = summary["verdict"]["name"]
    gain = pooled[v]["auroc"] - pooled["fused"]["auroc"]
    assert v == "fused" or (gain >= VERDICT_MIN_GAIN and pooled[v]["f1"] >= pooled["fused"]["f1"])
    assert variant_name(summary["verdict"]["modalities"], ("landmarks", "features")) == v
    # Pooled F1 from scores centred on each fold's own threshold, recomputed with sklearn.
    p_fused = files[f"p_{v}"].clip(1e-9, 1 - 1e-9)  # only the sign of the centred score counts
    thr = files[f"thr_{v}"]
    centred = np.log(p_fused / (1 - p_fused)) - np.log(thr / (1 - thr))
    assert summary["variants"]["pooled"][v]["f1"] == pytest.approx(
        f1_score(files["y"], (centred >= 0).astype(int)))
    # The displayed tables, recomputed from the scored rows with sklearn and pandas alone.
    from palsy_core.evaluation.evaluate import transfer_tables

    real, synthetic, variants = transfer_tables(summary)
    real = real.set_index("held-out source")
    for fold, part in files.groupby("fold"):
        called = (part[f"p_{v}"] >= part[f"thr_{v}"]).astype(int)
        held = part["role"] == "held-out source"
        row = real.loc[fold]
        assert row["AUROC %"] == pytest.approx(100 * roc_auc_score(part["y"], part[f"p_{v}"]),
                                               abs=0.051, nan_ok=True)
        assert row["held-out files right %"] == pytest.approx(
            100 * (called[held] == part.loc[held, "y"]).mean(), abs=0.051)
        assert row["F1 %"] == pytest.approx(100 * f1_score(part["y"], called), abs=0.051)
        every = everything[everything["fold"] == fold]
        n_held = (every["role"] == "held-out source").sum()
        assert row["held-out files"] == n_held and row["contrast files"] == len(every) - n_held
        assert row["class"] == ("palsy" if part.loc[held, "y"].iloc[0] == 1 else "healthy")
    fused = variants.set_index("model").loc[variant_label(v, v)]
    assert fused["pooled F1 %"] == pytest.approx(
        100 * f1_score(files["y"], (centred >= 0).astype(int)), abs=0.051)
    # Synthetic palsy is scored only on the held-out healthy sources' faces; the affected side
    # is right when P(left) >= 0.5 exactly for left-sided warps.
    syn = result.synthetic
    assert set(syn["source"]) == {"healthy-a", "healthy-b"}
    warps = syn[syn["y"] == 1]
    assert set(warps["side"]) == {SIDE_CODES["left"], SIDE_CODES["right"]}
    left = warps["side"] == SIDE_CODES["left"]
    side_right = ((warps[f"p_left_{v}"] >= 0.5) == left).mean()
    assert summary["synthetic"]["pooled"]["side_accuracy"] == pytest.approx(side_right)
    synthetic = synthetic.set_index("held-out source")
    for fold, part in warps.groupby("fold"):
        assert synthetic.loc[fold, "affected side correct %"] == pytest.approx(
            100 * ((part[f"p_left_{v}"] >= 0.5) == (part["side"] == SIDE_CODES["left"])).mean(),
            abs=0.051)
        assert synthetic.loc[fold, "synthetic palsy"] == len(part)
    assert json.loads((tmp_path / "cv" / "transfer.json").read_text()) == json.loads(
        json.dumps(summary, default=float))
    card = "\n".join(transfer_section(summary))
    assert "| palsy-set |" in card and "Targets on the transfer check" in card


def test_the_check_per_contrast_source_matches_the_scored_rows(transfer_run):
    """Each held-out source against each contrast source on its own: AUROC and the share of
    that source's files on the right side, recomputed from the scored rows with sklearn."""
    from palsy_core.evaluation.evaluate import contrast_table, inconclusive_rows
    from palsy_core.evaluation.model_card import transfer_section
    from palsy_core.training.transfer import summarise

    files = transfer_run[1].files
    summary = summarise(transfer_run[1], ("landmarks", "features"))
    v = summary["verdict"]["name"]
    pairs = contrast_table(files, v)
    ok = files[~inconclusive_rows(files)]
    expected = {(f, s) for f, s in zip(ok.loc[ok["role"] == "contrast", "fold"],
                                       ok.loc[ok["role"] == "contrast", "source"], strict=True)}
    assert set(zip(pairs["held-out source"], pairs["contrast source"], strict=True)) == expected
    # Each healthy fold is scored against the palsy source (a fold with no conclusive contrast
    # file, as this small set's palsy fold, has no row).
    assert set(pairs["held-out source"]) == {"healthy-a", "healthy-b"}
    assert set(pairs["contrast source"]) == {"palsy-set"}
    for row in pairs.itertuples(index=False):
        part = ok[ok["fold"] == row[0]]
        held = part[part["role"] == "held-out source"]
        other = part[(part["role"] == "contrast") & (part["source"] == row[2])]
        assert row[1] == ("palsy" if held["y"].iloc[0] == 1 else "healthy")
        assert row[3] == len(other)
        both = pd.concat([held, other])
        auc = roc_auc_score(both["y"], both[f"p_{v}"]) if len(other) > 1 else np.nan
        assert row[4] == pytest.approx(100 * auc, abs=0.051, nan_ok=True)
        right = (other[f"p_{v}"] >= other[f"thr_{v}"]).astype(int) == other["y"]
        assert row[5] == pytest.approx(100 * right.mean(), abs=0.051)
    card = "\n".join(transfer_section(summary, files))
    assert "each held-out source against each source of its contrast group" in card
    assert "| healthy-a | healthy | palsy-set |" in card
    # Without the scored rows (an older check) the card simply leaves the table out.
    assert "each source of its contrast group" not in "\n".join(transfer_section(summary))


def test_a_repeated_transfer_check_reports_the_mean_of_its_runs(tmp_path, transfer_run):
    """Run twice with other seeds, the check reports each number as the mean of the runs, keeps
    each run's pooled numbers, counts inconclusive files once and chooses on the means."""
    from palsy_core.evaluation.evaluate import transfer_tables
    from palsy_core.evaluation.model_card import transfer_section
    from palsy_core.training.transfer import (
        TransferResult,
        fold_seed,
        leave_one_source_out,
        summarise,
    )

    mods = ("landmarks", "features")
    rows, one = transfer_run
    # A second run of the same folds whose network ranks differently: every P(palsy) of the
    # real rows is moved on the logit scale by a per-file amount (the thresholds stay).
    rng = np.random.default_rng(0)
    again = one.files.copy()
    again["repeat"] = 1
    for col in [c for c in again if c.startswith("p_")]:
        p = again[col].clip(1e-6, 1 - 1e-6)
        again[col] = 1 / (1 + np.exp(-(np.log(p / (1 - p)) + rng.normal(0, 1.5, len(p)))))
    syn = one.synthetic.copy()
    syn["repeat"] = 1
    syn[[c for c in syn if c.startswith("p_") and not c.startswith("p_left")]] **= 2
    second = TransferResult(again, syn, one.trained_on, one.skipped)
    both = TransferResult(pd.concat([one.files, again], ignore_index=True),
                          pd.concat([one.synthetic, syn], ignore_index=True),
                          one.trained_on, one.skipped)
    s1, s2, mean = (summarise(r, mods) for r in (one, second, both))
    assert "repeats" not in s1 and mean["repeats"]["runs"] == 2
    assert mean["repeats"]["pooled"] == [s1["variants"]["pooled"],
                                         summarise(second, mods)["variants"]["pooled"]]
    for name, m in mean["variants"]["pooled"].items():
        assert m["auroc"] == pytest.approx(np.mean([s["variants"]["pooled"][name]["auroc"]
                                                    for s in (s1, s2)]))
        assert m["n"] == s1["variants"]["pooled"][name]["n"]  # same files in every run
    for fold, block in mean["variants"]["per_fold"].items():
        assert block["fused"]["f1"] == pytest.approx(np.mean(
            [s["variants"]["per_fold"][fold]["fused"]["f1"] for s in (s1, s2)]))
        assert block["fused"]["held_out_class"] == s1["variants"]["per_fold"][fold]["fused"][
            "held_out_class"]
    assert mean["inconclusive"] == s1["inconclusive"]
    v = mean["verdict"]["name"]
    assert mean["synthetic"]["variant"] == v
    syn_runs = mean["repeats"]["synthetic"]
    assert len(syn_runs) == 2 and mean["synthetic"]["pooled"]["auroc"] == pytest.approx(
        np.mean([r["auroc"] for r in syn_runs]))
    if s1["verdict"]["name"] == v:
        assert syn_runs[0] == s1["synthetic"]["pooled"]
    # The card and the dashboard table say so, with every run's pooled numbers.
    table = transfer_tables(mean)[2].set_index("model")
    runs = table.loc[variant_label("fused", v), "pooled AUROC / F1 % per run"]
    assert runs.count("/") == 2 and runs.startswith(
        f"{round(100 * s1['variants']['pooled']['fused']['auroc'], 1)} /")
    assert "run 2 times" in "\n".join(transfer_section(mean))
    # Per contrast source too, each number is the mean of the runs.
    from palsy_core.evaluation.evaluate import contrast_table

    pairs = [contrast_table(r.files, v).set_index(["held-out source", "contrast source"])
             for r in (one, second, both)]
    for col in ("AUROC %", "contrast files right %"):
        assert np.allclose(pairs[2][col], (pairs[0][col] + pairs[1][col]) / 2, atol=0.051,
                           equal_nan=True)
    assert pairs[2]["contrast files"].equals(pairs[0]["contrast files"])
    # Run r trains fold k with its own seed; run 0 keeps a single run's seeds.
    seeds = {fold_seed(0, k, r) for k in range(8) for r in range(3)}
    assert len(seeds) == 24 and fold_seed(7, 2) == fold_seed(7, 2, 0) == 109
    with pytest.raises(ValueError, match="at least 1"):
        leave_one_source_out(rows, {}, None, None, None, repeats=0)


def test_the_check_run_twice_repeats_the_first_run_and_varies_the_second(transfer_inputs,
                                                                          transfer_run):
    """``repeats=2`` on real faces: run 0 is the single run exactly (same seeds), run 1 trains
    other networks on the same files, and each run's late fusion is fitted within that run."""
    from palsy_core.training.transfer import leave_one_source_out

    rows, analyses, real, synthetic, config = transfer_inputs
    twice = leave_one_source_out(rows, analyses, real, synthetic, config, progress=False,
                                 repeats=2)
    once = transfer_run[1].files
    files = twice.files
    assert sorted(files["repeat"].unique()) == [0, 1]
    first = files[files["repeat"] == 0].reset_index(drop=True)
    pd.testing.assert_frame_equal(first, once.reset_index(drop=True))
    second = files[files["repeat"] == 1].reset_index(drop=True)
    assert (second[["fold", "path", "role"]] == first[["fold", "path", "role"]]).all().all()
    assert not np.allclose(second["p_fused"], first["p_fused"])
    assert second["p_late_fusion"].between(0, 1).all()
    assert sorted(twice.synthetic["repeat"].unique()) == [0, 1]
    assert twice.trained_on == transfer_run[1].trained_on


def test_the_verdict_leaves_a_modality_out_only_for_a_clear_transfer_gain():
    from palsy_core.training.transfer import choose_verdict

    mods = ("rgb", "features", "blendshapes")

    def chosen(**pooled):
        summary = {"variants": {"pooled": {n: {"auroc": a, "f1": f}
                                           for n, (a, f) in pooled.items()}}}
        return choose_verdict(summary, mods)

    base = {"fused": (0.83, 0.77), "without_rgb": (0.80, 0.75),
            "without_features": (0.73, 0.71)}
    clear = chosen(**base, without_blendshapes=(0.88, 0.80))
    assert clear["name"] == "without_blendshapes" and clear["modalities"] == ["rgb", "features"]
    assert set(clear["candidates"]) == {"fused", "without_rgb", "without_features",
                                        "without_blendshapes"}
    # A gain below the margin, or a higher AUROC bought with a lower F1, keeps every modality.
    small = 0.83 + VERDICT_MIN_GAIN / 2
    assert chosen(**base, without_blendshapes=(small, 0.80))["name"] == "fused"
    assert chosen(**base, without_blendshapes=(0.88, 0.76))["name"] == "fused"
    # The largest clear gain wins; without a transfer check the verdict fuses everything.
    two = chosen(**{**base, "without_rgb": (0.86, 0.78)}, without_blendshapes=(0.88, 0.80))
    assert two["name"] == "without_blendshapes"
    nothing = choose_verdict({}, mods)
    assert nothing["name"] == "fused" and nothing["modalities"] == list(mods)
