"""Expression features on real faces: declarations, invariance, mirroring, plausibility, ROM."""

from __future__ import annotations

import re

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from palsy_core import registry
from palsy_core.face.alignment import align
from palsy_core.face.topology import CONTOURS, LEFT_IRIS, RIGHT_IRIS, mirror_index
from palsy_core.modalities.features import (
    CLIP_FEATURES,
    DLIB_TO_MEDIAPIPE,
    FRAME_FEATURES,
    IRIS_DIAMETER_MM,
    SIGNED_FEATURES,
    clip_features,
    frame_features,
    iris_diameter_px,
    iris_diameters_px,
    mirror_permutation,
)

SIZE = 224
KEYS = [f.key for f in FRAME_FEATURES]
COLUMN = {k: i for i, k in enumerate(KEYS)}
# Per-unit (absolute, relative) tolerance for re-detected faces. Detector noise is a pixel or two of
# the 224 px frame (1-2 mm), more for long distances (a few %); an absolute difference inherits
# the noise of the two sides it compares, so its relative part scales with the larger side.
ROTATION_TOL = {"deg": (3.0, 0.0), "mm": (1.0, 0.05), "ratio": (0.05, 0.05)}
# MediaPipe is not exactly mirror-equivariant, so a flipped photo is noisier than a rotated one.
MIRROR_TOL = {"deg": (6.0, 0.0), "mm": (2.0, 0.05), "ratio": (0.15, 0.05)}


def _features(detector, rgb: np.ndarray) -> np.ndarray:
    det = detector.detect(np.ascontiguousarray(rgb))
    assert det is not None, "no face detected"
    return frame_features(align(det.points, SIZE).points)


def _tolerance(values: np.ndarray, spec: dict[str, tuple[float, float]]) -> np.ndarray:
    tol = np.empty(len(FRAME_FEATURES))
    for i, f in enumerate(FRAME_FEATURES):
        atol, rtol = spec[f.unit]
        base = f.key.removesuffix("_absdiff")
        scale = abs(values[i])
        if base != f.key:
            scale = max(abs(values[COLUMN[f"{base}_right"]]), abs(values[COLUMN[f"{base}_left"]]))
        tol[i] = atol + rtol * scale
    return tol


def _assert_close(actual, expected, spec, what: str) -> None:
    err = np.abs(actual - expected)
    tol = _tolerance(expected, spec)
    bad = [f"{KEYS[i]}: {actual[i]:.3f} vs {expected[i]:.3f} (tol {tol[i]:.2f})"
           for i in np.flatnonzero(err > tol)]
    assert not bad, f"{what}: " + "; ".join(bad)


def _reflect(points: np.ndarray) -> np.ndarray:
    """Landmarks of the mirror-image face: x -> size - x, re-indexed to keep their meaning."""
    out = points.copy()
    out[:, 0] = SIZE - out[:, 0]
    return out[mirror_index()]


@pytest.fixture(scope="module")
def face_points(face_rgb, detector) -> np.ndarray:
    """Aligned landmarks of single_face.jpg."""
    return align(detector.detect(face_rgb).points, SIZE).points


@pytest.fixture(scope="module")
def face_features(face_points) -> np.ndarray:
    return frame_features(face_points)


def test_declarations_match_registry_and_vector(face_features):
    assert registry.FEATURES == FRAME_FEATURES + CLIP_FEATURES
    keys = [f.key for f in registry.FEATURES]
    assert len(keys) == len(set(keys))
    assert all(re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)*", k) for k in keys)
    groups = [f.group for f in FRAME_FEATURES]
    assert groups == ["parra_dominguez"] * 29 + ["emotrics"] * (len(FRAME_FEATURES) - 29)
    assert {f.group for f in CLIP_FEATURES} == {"range_of_motion"}
    # No percentage differences: they amplify detector noise on small measures (see registry).
    assert {f.unit for f in registry.FEATURES} == {"deg", "mm", "ratio"}
    assert not [k for k in keys if k.endswith("pctdiff")]
    for f in registry.FEATURES:
        assert f.name and f.description.endswith(".") and f.description.count(". ") == 0, f.key
    for measure in ("brow_height", "palpebral_fissure_height", "mrd1", "mrd2",
                    "commissure_excursion", "smile_angle", "upper_lip_height", "lower_lip_height",
                    "dental_show"):
        for part in ("right", "left", "absdiff"):
            assert f"{measure}_{part}" in keys
    for measure in ("brow_height", "palpebral_fissure_height", "commissure_excursion",
                    "smile_angle"):
        for part in ("right", "left", "absdiff"):
            assert f"{measure}_rom_{part}" in keys
    assert set(KEYS) >= SIGNED_FEATURES
    assert face_features.dtype == np.float32 and face_features.shape == (len(FRAME_FEATURES),)


def test_all_finite_on_real_faces(face_features, pyfeat_dir, detector):
    from PIL import Image

    assert np.isfinite(face_features).all()
    for name in ("0-f1-su-ph.jpg", "15-f13-anc-ph.jpg", "45-m7-di-ph.jpg", "multi_face.jpg"):
        rgb = np.asarray(Image.open(pyfeat_dir / name).convert("RGB"))
        assert np.isfinite(_features(detector, rgb)).all(), name


def test_plausible_measurements_on_a_real_face(face_points, face_features):
    right, left = iris_diameters_px(face_points)
    assert abs(right - left) / (right + left) < 0.05  # the two irises agree within ~10 %
    mm_per_px = IRIS_DIAMETER_MM / iris_diameter_px(face_points)
    interpupillary = np.linalg.norm(face_points[LEFT_IRIS, :2] - face_points[RIGHT_IRIS, :2])
    assert 54 < interpupillary * mm_per_px < 74  # adult interpupillary distance

    def value(key):
        return face_features[COLUMN[key]]

    for side in ("right", "left"):
        assert 4 < value(f"palpebral_fissure_height_{side}") < 15  # smiling narrows the eyes
        assert 10 < value(f"brow_height_{side}") < 35
        assert 0 < value(f"mrd1_{side}") < value(f"palpebral_fissure_height_{side}")
        assert 0 < value(f"mrd2_{side}") < value(f"palpebral_fissure_height_{side}")
        assert 20 < value(f"commissure_excursion_{side}") < 50
        assert 100 < value(f"smile_angle_{side}") < 150  # a smile raises both mouth corners
        assert value(f"upper_lip_height_{side}") < value(f"lower_lip_height_{side}")
        assert value(f"dental_show_{side}") > 2  # the teeth show in this photo
    # A healthy face: the Parra-Dominguez symmetry ratios stay close to 1.
    ratios = [face_features[i] for i, k in enumerate(KEYS) if k.endswith("_ratio")]
    assert min(ratios) >= 1.0 and np.median(ratios) < 1.1


def test_in_plane_rotation_changes_features_only_a_little(face_rgb, detector, face_features):
    h, w = face_rgb.shape[:2]
    for angle in (15, -15):
        m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
        rotated = cv2.warpAffine(face_rgb, m, (w, h), borderMode=cv2.BORDER_REPLICATE)
        feats = _features(detector, rotated)
        _assert_close(feats, face_features, ROTATION_TOL, f"rotated {angle} degrees")
        rel = np.abs(feats - face_features) / np.maximum(np.abs(face_features), 1e-3)
        assert np.median(rel) < 0.1


def test_mirrored_photo_swaps_sides_and_flips_signs(face_rgb, detector, face_features):
    perm, sign = mirror_permutation()
    expected = sign * face_features[perm]
    mirrored = _features(detector, face_rgb[:, ::-1])
    _assert_close(mirrored, expected, MIRROR_TOL, "mirrored photo")
    rel = np.abs(mirrored - expected) / np.maximum(np.abs(expected), 1e-3)
    assert np.median(rel) < 0.2
    # Where the face is clearly asymmetric, the flip is visible: the mirrored photo matches the
    # permuted features and not the original ones.
    asymmetric = np.abs(face_features - expected) > _tolerance(expected, MIRROR_TOL)
    assert asymmetric.any()
    assert (np.abs(mirrored - expected) < np.abs(mirrored - face_features))[asymmetric].all()


def test_mirror_permutation_is_an_exact_involution(face_points, face_features):
    for features in (FRAME_FEATURES, CLIP_FEATURES):
        perm, sign = mirror_permutation(features)
        np.testing.assert_array_equal(perm[perm], np.arange(len(features)))
        np.testing.assert_array_equal(sign[perm] * sign, np.ones(len(features)))
        np.testing.assert_array_equal(sign[perm], sign)
    perm, sign = mirror_permutation()
    assert (sign == -1).sum() == len(SIGNED_FEATURES)
    assert perm[COLUMN["brow_height_right"]] == COLUMN["brow_height_left"]
    assert perm[COLUMN["brow_height_absdiff"]] == COLUMN["brow_height_absdiff"]
    # Reflected landmarks reproduce the permuted features to float precision.
    reflected = frame_features(_reflect(face_points))
    np.testing.assert_allclose(reflected, sign * face_features[perm], rtol=1e-5, atol=2e-4)
    assert not np.allclose(reflected, face_features, rtol=1e-3, atol=1e-2)  # not a no-op


@settings(max_examples=25, deadline=None)
@given(
    angle=st.floats(-40, 40),
    scale=st.floats(0.25, 4.0),
    shift=st.tuples(st.floats(-300, 300), st.floats(-300, 300)),
)
def test_features_ignore_position_scale_and_roll(face_points, face_features, angle, scale, shift):
    m = cv2.getRotationMatrix2D((SIZE / 2, SIZE / 2), angle, scale)
    m[:, 2] += shift
    moved = face_points.astype(np.float64)
    moved[:, :2] = face_points[:, :2] @ m[:, :2].T + m[:, 2]
    np.testing.assert_allclose(frame_features(moved), face_features, rtol=1e-4, atol=1e-3)


def test_dlib_mapping_respects_the_mirror():
    mirror = mirror_index()
    twins = {17: 26, 18: 25, 19: 24, 20: 23, 21: 22, 36: 45, 37: 44, 38: 43, 39: 42, 40: 47,
             41: 46, 31: 35, 32: 34, 48: 54, 49: 53, 50: 52, 58: 56, 59: 55, 0: 16}
    for right, left in twins.items():
        assert mirror[DLIB_TO_MEDIAPIPE[right]] == DLIB_TO_MEDIAPIPE[left]
    for midline in (8, 30, 33, 51, 57):
        assert mirror[DLIB_TO_MEDIAPIPE[midline]] == DLIB_TO_MEDIAPIPE[midline]


def test_closed_eye_gives_finite_extreme_asymmetry(face_points):
    closed = face_points.copy()
    lids = sorted({i for edge in CONTOURS["eye_right"] for i in edge})
    closed[lids, 1] = closed[RIGHT_IRIS, 1]  # right lids collapse onto the interpupillary line
    feats = frame_features(closed)
    assert np.isfinite(feats).all()
    assert feats[COLUMN["palpebral_fissure_height_right"]] == 0
    assert feats[COLUMN["palpebral_fissure_height_absdiff"]] == pytest.approx(
        feats[COLUMN["palpebral_fissure_height_left"]])
    assert feats[COLUMN["pd_eye_opening_ratio"]] > 5
    brow = COLUMN["brow_height_right"]
    assert feats[brow] == frame_features(face_points)[brow]  # the brows did not move


def test_bad_input_is_rejected_clearly(face_points):
    with pytest.raises(ValueError, match="478"):
        frame_features(face_points[:468])
    with pytest.raises(ValueError, match="per-frame"):
        clip_features(np.zeros((5, 3)))
    collapsed = face_points.copy()
    collapsed[LEFT_IRIS] = collapsed[RIGHT_IRIS]
    with pytest.raises(ValueError, match="iris"):
        frame_features(collapsed)


def _video_frames(path, step: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames, i = [], 0
    try:
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            if i % step == 0:
                frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            i += 1
    finally:
        cap.release()
    return frames


def test_clip_range_of_motion_on_a_real_video(pyfeat_dir, detector):
    frames = _video_frames(pyfeat_dir / "single_face.mp4", step=3)
    assert len(frames) >= 10
    rows = []
    for rgb in frames:
        det = detector.detect(rgb)
        rows.append(frame_features(align(det.points, SIZE).points) if det is not None
                    else np.full(len(FRAME_FEATURES), np.nan, np.float32))
    per_frame = np.stack(rows)
    assert np.isfinite(per_frame).all(axis=1).sum() >= 0.8 * len(frames)
    clip = clip_features(per_frame)
    assert clip.dtype == np.float32 and clip.shape == (len(CLIP_FEATURES),)
    assert np.isfinite(clip).all()
    values = dict(zip([f.key for f in CLIP_FEATURES], clip, strict=True))
    assert all(v >= 0 for v in values.values())
    assert values["smile_angle_rom_right"] > 0  # the face moves in this clip

    # Frames without a face are skipped; a clip that never shows a face gives NaN.
    gaps = np.insert(per_frame, [0, 3, 3], np.nan, axis=0)
    np.testing.assert_array_equal(clip_features(gaps), clip)
    assert np.isnan(clip_features(np.full_like(per_frame, np.nan))).all()
    # A still face has no range of motion.
    still = clip_features(np.repeat(per_frame[:1], 5, axis=0))
    assert np.allclose(still, 0)
    # Mirroring every frame mirrors the clip features (left and right ranges swap).
    perm, sign = mirror_permutation()
    clip_perm, clip_sign = mirror_permutation(CLIP_FEATURES)
    np.testing.assert_allclose(clip_features(sign * per_frame[:, perm]),
                               clip_sign * clip[clip_perm], rtol=1e-6)
