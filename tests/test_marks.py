"""Drawn annotation marks (green face boxes and landmark dots, as on many public palsy photos)
are removed before detection, so a model cannot learn "green dots" instead of palsy."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from palsy_core.extraction.pipeline import Settings, analyse_frame
from palsy_core.face.marks import green_mark_mask, neutralise_green_marks
from palsy_core.modalities.features import DLIB_TO_MEDIAPIPE

GREEN = (0, 255, 0)
CLEAN_PHOTOS = ("single_face.jpg", "0-f1-su-ph.jpg", "0-f15-hao-ph.jpg", "15-f13-anc-ph.jpg",
                "45-m7-di-ph.jpg", "multi_face.jpg", "BWPictureHuman.jpg")


@pytest.fixture(scope="module")
def clean_points(face_rgb, detector) -> np.ndarray:
    return detector.detect(face_rgb).points


@pytest.fixture(scope="module")
def drawn(face_rgb, clean_points) -> tuple[np.ndarray, np.ndarray]:
    """The photo with a green face box and the 68 dlib-style landmark dots drawn on it, as the
    authors of the web palsy photos did, and the mask of what was drawn."""
    out = np.ascontiguousarray(face_rgb.copy())
    layer = np.zeros(face_rgb.shape[:2], np.uint8)
    xy = clean_points[:, :2]
    lo, hi = xy.min(axis=0).astype(int) - 10, xy.max(axis=0).astype(int) + 10
    for canvas, colour in ((out, GREEN), (layer, 255)):
        cv2.rectangle(canvas, tuple(int(v) for v in lo), tuple(int(v) for v in hi), colour, 2)
        for idx in DLIB_TO_MEDIAPIPE.values():
            cv2.circle(canvas, tuple(round(float(v)) for v in xy[idx]), 2, colour, -1)
    # The web photos are JPEGs: the drawing gets compression halos.
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(out, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB), layer > 0


def test_clean_photos_pass_through_unchanged(pyfeat_dir):
    for name in CLEAN_PHOTOS:
        rgb = np.asarray(Image.open(pyfeat_dir / name).convert("RGB"))
        assert not green_mark_mask(rgb).any(), name
        assert neutralise_green_marks(rgb) is rgb, name


def test_mask_covers_the_drawing_and_little_else(drawn):
    rgb, painted = drawn
    mask = green_mark_mask(rgb) > 0
    assert mask[painted].mean() > 0.98  # every drawn pixel, JPEG halos included
    assert mask.sum() < 4 * painted.sum()  # grown over halos, not over the face


def test_removal_restores_the_clean_face(face_rgb, drawn, clean_points, detector):
    rgb, painted = drawn
    cleaned = neutralise_green_marks(rgb)
    assert not (green_mark_mask(cleaned) > 0)[painted].any()  # no green left
    # Inpainted pixels are close to the photo under the drawing.
    err = np.abs(cleaned.astype(int) - face_rgb.astype(int))[painted].mean()
    drawn_err = np.abs(rgb.astype(int) - face_rgb.astype(int))[painted].mean()
    assert err < 0.25 * drawn_err
    # Landmarks found on the cleaned photo match those of the clean photo.
    found = detector.detect(cleaned).points
    iod = np.linalg.norm(clean_points[468, :2] - clean_points[473, :2])
    shift = np.linalg.norm(found[:, :2] - clean_points[:, :2], axis=1)
    assert np.median(shift) < 0.02 * iod and shift.max() < 0.1 * iod


def test_pipeline_removes_marks_before_the_modalities(face_rgb, drawn, detector):
    rgb, _ = drawn
    clean = analyse_frame(face_rgb, detector, Settings())
    cleaned = analyse_frame(rgb, detector, Settings())
    raw = analyse_frame(rgb, detector, Settings(clean_marks=False))
    assert clean.has_face and cleaned.has_face and raw.has_face

    def green_share(face: np.ndarray) -> float:
        return float(np.mean(green_mark_mask(face) > 0))

    assert green_share(raw.rgb) > 0.02  # without removal the aligned face carries the dots
    assert green_share(cleaned.rgb) == 0.0
    # The face is found where it is in the clean photo (the drawing does not move the alignment).
    iod = np.linalg.norm(clean.points[468, :2] - clean.points[473, :2])
    shift = np.linalg.norm(cleaned.points[:, :2] - clean.points[:, :2], axis=1)
    assert np.median(shift) < 0.02 * iod


def test_natural_greens_are_not_marks():
    """Green clothes, foliage and walls are darker or yellower than the drawing colour."""
    for rgb_colour in ((30, 82, 18), (60, 120, 40), (120, 160, 40), (40, 90, 70)):
        patch = np.zeros((60, 60, 3), np.uint8)
        patch[:] = rgb_colour
        assert not green_mark_mask(patch).any(), rgb_colour
    drawn = np.zeros((60, 60, 3), np.uint8)
    drawn[:] = (0, 230, 30)
    assert green_mark_mask(drawn).all()
