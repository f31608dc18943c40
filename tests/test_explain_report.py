"""Grad-CAM, the per-frame table, the HTML report and the demo samples, on real faces.

The model is a seeded, untrained ``FusionModel`` saved as a real checkpoint: these tests check what
the code does with any model's outputs (maps, tables, reports), which must not depend on training.
"""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import make_test_model
from PIL import Image

from palsy_core.extraction.pipeline import Settings, analyse_media
from palsy_core.inference.demo import VERDICT, healthy_sample, palsy_sample, severity_sweep
from palsy_core.inference.explain import cam_from_inputs, grad_cam, one_frame, overlay_heatmap
from palsy_core.inference.report import (
    DISCLAIMER,
    emotrics_sides,
    frame_table,
    html_report,
    key_frames,
)
from palsy_core.inference.scoring import ScoredMedia, load_model
from palsy_core.model.batches import to_inputs
from palsy_core.registry import EMOTRICS_FEATURES, FRAME_FEATURES
from ui.analysis import emotrics_figure

COLUMN = {f.key: i for i, f in enumerate(FRAME_FEATURES)}
SETTINGS = Settings(sample_fps=5.0, max_frames=12)


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    return load_model(make_test_model(tmp_path_factory.mktemp("model") / "m.pt"))


@pytest.fixture(scope="module")
def video(loaded) -> ScoredMedia:
    return ScoredMedia(loaded, analyse_media(healthy_sample(), "single_face.mp4", SETTINGS))


@pytest.fixture(scope="module")
def photos(loaded, pyfeat_dir, detector) -> list[ScoredMedia]:
    return [ScoredMedia(loaded, analyse_media(pyfeat_dir / n, n, SETTINGS, detector=detector))
            for n in ("single_face.jpg", "0-f15-hao-ph.jpg")]


@pytest.fixture(scope="module")
def part_face(loaded, pyfeat_dir) -> ScoredMedia:
    """A real video whose face leaves the frame part way through."""
    analysis = analyse_media(pyfeat_dir / "face_noface.mov", "face_noface.mov",
                             Settings(sample_fps=2.0, max_frames=14))
    assert analysis.has_face.any() and not analysis.has_face.all()
    return ScoredMedia(loaded, analysis)


# --- Grad-CAM -------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["rgb", "lines"])
def test_grad_cam_is_a_normalised_map_that_depends_on_the_face(loaded, photos, video, key):
    maps = [grad_cam(loaded, s, 0, key) for s in photos] + [grad_cam(loaded, video, 5, key)]
    for heat in maps:
        assert heat.shape == (224, 224) and np.isfinite(heat).all()
        assert heat.min() >= 0.0 and heat.max() <= 1.0
        assert heat.std() > 0.05  # a peak, not a flat map
    # Different faces, and different frames of one video, are explained differently.
    assert np.abs(maps[0] - maps[1]).mean() > 0.02
    assert np.abs(grad_cam(loaded, video, 0, key) - maps[2]).mean() > 0.005


@pytest.mark.parametrize("key", ["rgb", "lines"])
def test_grad_cam_matches_finite_differences(loaded, photos, key):
    """Grad-CAM weights each channel of the last convolutional block by the mean gradient of the
    palsy logit over its positions. That gradient is measured here without autograd: nudge one
    channel's activations everywhere by +/- eps (a forward hook) and watch the logit. The map is
    then |sum_k w_k A_k| over the block's positions, scaled to a peak of 1."""
    import copy

    model = copy.deepcopy(loaded.model).double().eval()
    arrays = one_frame(photos[0].analysis, 0, model.config.image_size)
    enabled = (key,)
    inputs = {k: v.double() for k, v in to_inputs(arrays, loaded.normaliser, enabled).items()}
    layer = model.cam_layer(key)
    acts: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda _m, _i, out: acts.append(out.detach()))
    with torch.no_grad():
        model(inputs, enabled=enabled)
    handle.remove()
    a = acts[0]  # (1, C, h, w)
    c = a.shape[1]
    eps = 1e-4
    nudges = torch.zeros(2 * c, c, 1, 1, dtype=torch.float64)
    nudges[torch.arange(c), torch.arange(c)] = eps
    nudges[c + torch.arange(c), torch.arange(c)] = -eps
    # One upstream pass; the hook hands every nudged copy of the activations downstream.
    handle = layer.register_forward_hook(lambda _m, _i, out: out + nudges)
    with torch.no_grad():
        logits = model(inputs, enabled=enabled).palsy_logit.reshape(-1)
    handle.remove()
    weights = (logits[:c] - logits[c:]) / (2 * eps) / (a.shape[2] * a.shape[3])
    oracle = (weights[None, :, None, None] * a).sum(dim=1).abs()
    oracle = (oracle / oracle.max()).numpy()
    cam = cam_from_inputs(loaded.model, to_inputs(arrays, loaded.normaliser, enabled), key,
                          enabled)
    np.testing.assert_allclose(cam, oracle, atol=2e-3)
    assert oracle.std() > 0.05


def test_grad_cam_never_reads_disabled_modalities(loaded, photos):
    model = loaded.model
    arrays = one_frame(photos[0].analysis, 0, model.config.image_size)
    inputs = {k: v.requires_grad_() for k, v in
              to_inputs(arrays, loaded.normaliser, model.config.modalities).items()}
    enabled = ("rgb", "landmarks")
    base = cam_from_inputs(model, inputs, "rgb", enabled)
    # Garbage in the disabled inputs changes nothing: they are not part of the computation.
    poisoned = {**inputs, "lines": torch.full_like(inputs["lines"], float("nan")),
                "features": torch.full_like(inputs["features"], float("nan"))}
    assert np.array_equal(cam_from_inputs(model, poisoned, "rgb", enabled), base)
    # ...while an enabled input does change the map (the check above is not vacuous).
    shifted = {**inputs, "landmarks": inputs["landmarks"] * 1.5}
    assert not np.allclose(cam_from_inputs(model, shifted, "rgb", enabled), base)
    # No gradient lands on any input or on the shared model's parameters.
    assert all(v.grad is None for v in inputs.values())
    assert all(p.grad is None for p in model.parameters())


def test_grad_cam_refuses_what_it_cannot_explain(loaded, photos, part_face):
    with pytest.raises(ValueError, match="enabled"):
        grad_cam(loaded, photos[0], 0, "lines", enabled=("rgb", "features"))
    with pytest.raises(ValueError, match="image modalities"):
        grad_cam(loaded, photos[0], 0, "landmarks")
    no_face = int(np.flatnonzero(~part_face.analysis.has_face)[0])
    with pytest.raises(ValueError, match="no face"):
        grad_cam(loaded, part_face, no_face, "rgb")


def test_overlay_heatmap_colours_hot_regions_red_and_cold_blue(face_rgb):
    heat = np.zeros((50, 50), np.float32)
    heat[:, :25] = 1.0
    grey = np.full((100, 120, 3), 128, np.uint8)
    out = overlay_heatmap(grey, heat, alpha=0.6).astype(int)
    assert out.shape == grey.shape
    hot, cold = out[:, :50], out[:, 70:]
    assert hot[..., 0].mean() > hot[..., 2].mean() + 60
    assert cold[..., 2].mean() > cold[..., 0].mean() + 60
    assert np.array_equal(overlay_heatmap(face_rgb, np.ones((4, 4)), alpha=0.0), face_rgb)


# --- per-frame table and HTML report ---------------------------------------------------------


def test_frame_table_has_one_row_per_frame_with_scores_and_measures(part_face):
    a = part_face.analysis
    enabled = ("rgb", "features")
    table = frame_table(part_face, enabled)
    assert len(table) == a.n_frames
    expected = ["frame", "timestamp_s", "has_face", "quality_flags", "yaw_deg", "pitch_deg",
                "roll_deg", "p_fused", "p_rgb", "p_lines", "p_landmarks", "p_features", "p_left"]
    assert set(expected) <= set(table.columns)
    assert [f.key for f in EMOTRICS_FEATURES] == list(table.columns[-len(EMOTRICS_FEATURES):])
    np.testing.assert_allclose(table.p_fused, part_face.score(enabled).p_frames)
    np.testing.assert_allclose(table.p_lines, part_face.score(("lines",)).p_frames)
    np.testing.assert_allclose(table.commissure_excursion_left,
                               a.features[:, COLUMN["commissure_excursion_left"]])
    no_face = ~a.has_face
    assert table.p_fused[no_face].isna().all() and table.p_fused[~no_face].notna().all()
    assert (table.quality_flags[no_face] == "no_face").all()
    back = pd.read_csv(io.StringIO(table.to_csv(index=False)))
    assert back.shape == table.shape


def _images(report: str) -> list[Image.Image]:
    return [Image.open(io.BytesIO(base64.b64decode(b)))
            for b in re.findall(r'src="data:image/png;base64,([^"]+)"', report)]


def test_html_report_is_self_contained_with_verdict_and_key_frames(video):
    enabled = video.modalities
    report = html_report(video, enabled, "Sample report")
    score = video.score(enabled)
    assert report.startswith("<!DOCTYPE html>") and "<title>Sample report</title>" in report
    assert DISCLAIMER in report
    assert f"{score.verdict.capitalize()}: P(palsy) {100 * score.p:.1f}%" in report
    assert "Commissure excursion" in report
    frames = key_frames(score, video.analysis.flags)
    assert len(frames) == 3
    images = _images(report)
    # Per key frame: overlay, line image and one Grad-CAM per image branch, all 224 px PNGs.
    assert len(images) == 4 * len(frames)
    assert all(im.size == (224, 224) for im in images)
    assert not re.search(r"https?://", report) and "<script" not in report
    assert all(src.startswith("data:") for src in re.findall(r'src="([^"]*)"', report))
    # The per-frame chart has axes: P(palsy) ticks 0-1, time ticks over the video, the threshold.
    svg = report[report.index("<svg"):report.index("</svg>")]
    assert ">P(palsy)</text>" in svg and ">time (s)</text>" in svg
    assert ">0.00</text>" in svg and ">1.00</text>" in svg
    t = video.analysis.timestamps
    assert f">{t[0]:.1f}</text>" in svg and f">{t[-1]:.1f}</text>" in svg
    assert f"threshold {score.threshold:.2f}" in svg
    points = re.search(r'<polyline points="([^"]+)"', svg).group(1).split()
    assert len(points) == int((~np.isnan(score.p_frames)).sum())


def test_measurements_carry_clinical_names_and_their_definitions(video):
    """Every measure is defined where it is shown (report, chart hover); the lip levels, measured
    from the eye line, are not named like a lip's thickness (a clinician would read 60 mm as
    wrong)."""
    sides = emotrics_sides(video.analysis.features[0])
    assert sides["definition"].str.len().gt(40).all()
    assert not sides["measure"].str.fullmatch(r"(Upper|Lower) lip height").any()
    lip = sides.set_index("measure").loc["Upper lip level below the eye line"]
    assert 30 < lip.right < 90 and "not the lip's thickness" in lip.definition
    report = html_report(video, video.modalities, "Definitions")
    assert report.count("<dt>") == len(sides) and "interpupillary line" in report
    fig = emotrics_figure(video.analysis.features[0])
    assert all("%{customdata}" in bar.hovertemplate for bar in fig.data)
    assert any("not the lip&#x27;s" in c or "not the lip's" in c for c in fig.data[0].customdata)


def test_html_report_follows_the_enabled_modalities(video):
    report = html_report(video, ("landmarks", "features"), "Vectors only")
    assert "Modalities used</td><td>Landmark coordinates, Expression features" in report
    assert "Grad-CAM" not in report  # no image branch enabled, nothing to explain
    assert len(_images(report)) == 2 * 3


def test_key_frames_are_the_extremes_and_the_median(video):
    score = video.score()
    frames = key_frames(score, video.analysis.flags)
    p = score.p_frames
    assert frames[0] == int(np.nanargmax(p)) and frames[-1] == int(np.nanargmin(p))
    assert key_frames(score, video.analysis.flags, k=1) == [int(np.nanargmax(p))]


# --- demo samples ----------------------------------------------------------------------------


def test_palsy_sample_is_the_healthy_video_with_a_left_palsy():
    healthy = analyse_media(healthy_sample(), "healthy.mp4", SETTINGS)
    palsy = analyse_media(palsy_sample(), "palsy.mp4", SETTINGS)
    assert palsy.n_frames == healthy.n_frames and palsy.has_face.all()
    np.testing.assert_allclose(palsy.timestamps, healthy.timestamps, atol=0.05)

    def change(key: str) -> float:
        col = COLUMN[key]
        return float(np.median(palsy.features[:, col]) - np.median(healthy.features[:, col]))

    # The subject's left (image right) mouth corner droops and loses its smile; the brow sags.
    assert change("pd_mouth_corner_tilt") < -3.0
    assert change("smile_angle_left") < -3.0 and abs(change("smile_angle_right")) < 2.0
    assert change("brow_height_left") < -2.0 and abs(change("brow_height_right")) < 1.5


def test_severity_sweep_scores_growing_palsy_on_one_face(loaded, video):
    a = video.analysis
    result = severity_sweep(loaded, a, 5, "left", (0.0, 0.5, 1.0))
    assert all(f.has_face for f in result.frames)
    table = result.table
    assert set(table.variant) == {VERDICT, *video.modalities}
    assert len(table) == 3 * (1 + len(video.modalities)) and table.p.between(0, 1).all()
    # Severity 0 reproduces the original frame; growing severity droops the left mouth corner.
    assert np.abs(result.frames[0].landmarks - a.landmarks[5]).mean() < 0.02
    tilt = [f.features[COLUMN["pd_mouth_corner_tilt"]] for f in result.frames]
    assert tilt[0] > tilt[1] > tilt[2]
    # Each severity was analysed and scored: the verdict's row is the model on that frame.
    fused = table[table.variant == VERDICT].p.to_numpy()
    assert not np.allclose(fused, fused[0])
