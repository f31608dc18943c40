"""Line-segment modality on a real face: layout, mirror-equivariance, asymmetry, overlays."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from palsy_core.face.alignment import EYE_Y, align
from palsy_core.face.topology import (
    CONTOURS,
    LEFT_IRIS,
    LEFT_MOUTH_CORNER,
    N_MESH,
    RIGHT_IRIS,
    RIGHT_MOUTH_CORNER,
    mirror_index,
)
from palsy_core.modalities.line_segments import (
    draw_landmarks,
    draw_line_segments,
    overlay_line_segments,
)

SIZE = 224


def _construction(img: np.ndarray) -> np.ndarray:
    """Mask of construction-line (magenta) pixels."""
    r, g, b = (img[..., c].astype(int) for c in range(3))
    return (r > 128) & (b > 128) & (g < 64)


def _contour(img: np.ndarray) -> np.ndarray:
    """Mask of contour (green) pixels."""
    r, g, b = (img[..., c].astype(int) for c in range(3))
    return (g > 128) & (r < 64) & (b < 64)


def _chamfer(a: np.ndarray, b: np.ndarray) -> float:
    """Mean distance (px) from the lit pixels of ``a`` to the nearest lit pixel of ``b``."""
    lit_a, lit_b = a.max(axis=2) > 127, b.max(axis=2) > 127
    dist = cv2.distanceTransform((~lit_b).astype(np.uint8), cv2.DIST_L2, 5)
    return float(dist[lit_a].mean())


def _reflect(points: np.ndarray) -> np.ndarray:
    """Aligned landmarks of the mirrored face, in np.fliplr's pixel indexing."""
    out = points.copy()
    out[:, 0] = SIZE - 1 - out[:, 0]
    return out[mirror_index()]


def _mouth_tilt_deg(img: np.ndarray, points: np.ndarray) -> float:
    """Angle of the drawn construction line through the mouth corners (y down, degrees)."""
    corners_y = points[[RIGHT_MOUTH_CORNER, LEFT_MOUTH_CORNER], 1]
    band = np.zeros(img.shape[:2], dtype=bool)
    band[int(corners_y.min()) - 6 : int(corners_y.max()) + 7] = True
    ys, xs = np.nonzero(_construction(img) & band)
    return float(np.degrees(np.arctan(np.polyfit(xs, ys, 1)[0])))


def _landmark_tilt_deg(points: np.ndarray) -> float:
    d = points[LEFT_MOUTH_CORNER, :2] - points[RIGHT_MOUTH_CORNER, :2]
    return float(np.degrees(np.arctan2(d[1], d[0])))


@pytest.fixture(scope="module")
def detection(detector, face_rgb):
    found = detector.detect(face_rgb)
    assert found is not None
    return found


@pytest.fixture(scope="module")
def aligned(detection) -> np.ndarray:
    return align(detection.points, size=SIZE).points


def test_layout_on_real_face(aligned):
    img = draw_line_segments(aligned, SIZE)
    assert img.shape == (SIZE, SIZE, 3) and img.dtype == np.uint8
    assert (img.max(axis=2) == 0).mean() > 0.80

    # The iris line lies on the eye row of the aligned frame, between the two iris centres.
    row = round(EYE_Y * SIZE)
    x0, x1 = sorted(aligned[[RIGHT_IRIS, LEFT_IRIS], 0])
    span = _construction(img)[row - 1 : row + 1, int(x0) + 2 : int(x1) - 1].any(axis=0)
    assert span.mean() > 0.85

    # Lip contours and the mouth-corner line are drawn where the mouth is.
    lips = sorted({i for edge in CONTOURS["lips"] for i in edge})
    (lx, ly), (hx, hy) = aligned[lips, :2].min(0).astype(int), aligned[lips, :2].max(0).astype(int)
    assert _contour(img)[ly : hy + 1, lx : hx + 1].sum() > 2 * (hx - lx)
    for corner in (RIGHT_MOUTH_CORNER, LEFT_MOUTH_CORNER):
        x, y = np.rint(aligned[corner, :2]).astype(int)
        assert img[y - 1 : y + 2, x - 1 : x + 2].max() > 200

    # The construction line follows the mouth corners' own tilt.
    assert _mouth_tilt_deg(img, aligned) == pytest.approx(_landmark_tilt_deg(aligned), abs=1.0)

    # Away from the face (top corners of the frame) nothing is drawn.
    assert img[:20, :20].max() == 0 and img[:20, -20:].max() == 0


def test_size_scales_drawing(aligned):
    small = draw_line_segments(aligned, SIZE)
    large = draw_line_segments(aligned * 2, 2 * SIZE)
    assert large.shape == (2 * SIZE, 2 * SIZE, 3)
    # Thicker lines at double size: downsampled, the large drawing matches the small one.
    down = cv2.resize(large, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    assert _chamfer(down, small) < 1.0 and _chamfer(small, down) < 1.0
    assert (large.max(axis=2) > 127).sum() > 2.5 * (small.max(axis=2) > 127).sum()


def test_mirror_equivariant_on_reflected_points(aligned):
    img = draw_line_segments(aligned, SIZE)
    mirrored = draw_line_segments(_reflect(aligned), SIZE)
    diff = np.abs(mirrored.astype(int) - np.fliplr(img).astype(int))
    assert diff.mean() < 1.0
    assert (diff > 64).mean() < 0.002


def test_mirrored_photo_gives_flipped_drawing(detector, face_rgb, aligned):
    found = detector.detect(np.ascontiguousarray(face_rgb[:, ::-1]))
    assert found is not None
    mirrored = draw_line_segments(align(found.points, size=SIZE).points, SIZE)
    flipped = np.fliplr(draw_line_segments(aligned, SIZE))
    assert _chamfer(mirrored, flipped) < 1.5 and _chamfer(flipped, mirrored) < 1.5
    # Control: the same drawing displaced by 6 px is clearly further away.
    shifted = np.roll(flipped, 6, axis=0)
    assert _chamfer(mirrored, shifted) > 2 * _chamfer(mirrored, flipped)


def test_drooping_mouth_corner_tilts_construction_line(aligned):
    corner = aligned[LEFT_MOUTH_CORNER, :2]
    width = np.linalg.norm(corner - aligned[RIGHT_MOUTH_CORNER, :2])
    lips = np.array(sorted({i for edge in CONTOURS["lips"] for i in edge}))
    near = lips[np.linalg.norm(aligned[lips, :2] - corner, axis=1) < 0.3 * width]
    assert LEFT_MOUTH_CORNER in near and len(near) >= 5
    droop = aligned.copy()
    droop[near, 1] += 8.0

    img, asym = draw_line_segments(aligned, SIZE), draw_line_segments(droop, SIZE)
    tilt, tilt_droop = _mouth_tilt_deg(img, aligned), _mouth_tilt_deg(asym, droop)
    assert tilt_droop == pytest.approx(_landmark_tilt_deg(droop), abs=1.0)
    assert tilt_droop - tilt > 4.0  # the subject's left is on the image right: it tilts down there

    def asymmetry(x: np.ndarray) -> float:
        return float(np.abs(x.astype(int) - np.fliplr(x).astype(int)).mean())

    def line_asymmetry(x: np.ndarray) -> float:
        return float((_construction(x) != np.fliplr(_construction(x))).mean())

    assert asymmetry(asym) > 1.05 * asymmetry(img)
    assert line_asymmetry(asym) > 1.2 * line_asymmetry(img)


def test_overlay_draws_near_face_only(face_rgb, detection):
    before = face_rgb.copy()
    out = overlay_line_segments(face_rgb, detection.points)
    assert out.shape == face_rgb.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(face_rgb, before)

    changed = np.abs(out.astype(int) - face_rgb.astype(int)).max(axis=2) > 0
    ys, xs = np.nonzero(changed)
    pts = detection.points[:N_MESH, :2]
    irises = detection.points[[LEFT_IRIS, RIGHT_IRIS], :2]
    margin = 0.35 * np.linalg.norm(irises[0] - irises[1])
    assert xs.min() >= pts[:, 0].min() - margin and xs.max() <= pts[:, 0].max() + margin
    assert ys.min() >= pts[:, 1].min() - margin and ys.max() <= pts[:, 1].max() + margin
    assert changed.sum() > 0.01 * changed.size
    for corner in (RIGHT_MOUTH_CORNER, LEFT_MOUTH_CORNER):
        x, y = np.rint(detection.points[corner, :2]).astype(int)
        assert changed[y, x]


def test_overlay_alpha_zero_is_identity(face_rgb, detection):
    np.testing.assert_array_equal(overlay_line_segments(face_rgb, detection.points, 0.0), face_rgb)


def test_landmark_dots(face_rgb, detection):
    before = face_rgb.copy()
    out = draw_landmarks(face_rgb, detection.points)
    np.testing.assert_array_equal(face_rgb, before)
    assert out.shape == face_rgb.shape and out.dtype == np.uint8
    changed = np.abs(out.astype(int) - face_rgb.astype(int)).max(axis=2) > 0
    xy = np.rint(detection.points[:, :2]).astype(int)
    assert changed[xy[:, 1], xy[:, 0]].mean() > 0.95
    # Dots are small: every changed pixel lies within a few pixels of some landmark.
    near = np.zeros_like(changed, dtype=np.uint8)
    near[xy[:, 1], xy[:, 0]] = 1
    near = cv2.dilate(near, np.ones((11, 11), np.uint8)).astype(bool)
    assert not (changed & ~near).any()


@pytest.mark.parametrize(
    ("points", "message"),
    [
        (np.zeros((468, 3)), r"\(478, 2 or 3\)"),
        (np.full((478, 3), np.nan), "NaN"),
        (np.zeros((478, 3)), "iris centres coincide"),
    ],
)
def test_rejects_bad_landmarks(points, message):
    with pytest.raises(ValueError, match=message):
        draw_line_segments(points)


def test_rejects_bad_frame(detection):
    with pytest.raises(ValueError, match="uint8"):
        overlay_line_segments(np.zeros((10, 10, 3), dtype=np.float32), detection.points)
