"""The core pipeline on real faces: landmarks, alignment, per-frame modalities, cache, CLI."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np

from palsy_core.extraction.extract import extract_paths
from palsy_core.extraction.pipeline import MediaAnalysis, Settings, analyse_media
from palsy_core.face.alignment import align
from palsy_core.modalities import features as feats


def test_478_landmarks_on_real_faces(pyfeat_dir, detector):
    from PIL import Image

    for name in ("single_face.jpg", "0-f1-su-ph.jpg", "multi_face.jpg"):
        rgb = np.asarray(Image.open(pyfeat_dir / name).convert("RGB"))
        det = detector.detect(rgb)
        assert det is not None, name
        assert det.points.shape == (478, 3)
        w = rgb.shape[1]
        assert (det.points[:, 0] > -0.05 * w).all() and (det.points[:, 0] < 1.05 * w).all()
        # The subject's right eye appears on the image left in an unmirrored photo.
        assert det.points[33, 0] < det.points[263, 0]
        assert det.points[468, 0] < det.points[473, 0]
    group = np.asarray(Image.open(pyfeat_dir / "multi_face.jpg").convert("RGB"))
    assert detector.detect(group).n_faces == 5  # five people in the photo; the largest is used


def test_tight_crop_is_found_by_padding(face_rgb, detector):
    pts = detector.detect(face_rgb).points
    x0, y0 = pts[:, :2].min(0).astype(int)
    x1, y1 = pts[:, :2].max(0).astype(int)
    crop = np.ascontiguousarray(face_rgb[y0:y1, x0:x1])
    det = detector.detect(crop)
    assert det is not None
    # Same face: the iris centres land where they were, shifted by the crop offset.
    assert np.abs(det.points[468, :2] - (pts[468, :2] - [x0, y0])).max() < 6


def test_alignment_removes_roll_and_mirror_flips_pose(face_rgb, detector):
    import cv2

    h, w = face_rgb.shape[:2]
    base = align(detector.detect(face_rgb).points)
    m = cv2.getRotationMatrix2D((w / 2, h / 2), 15, 1.0)
    rotated = cv2.warpAffine(face_rgb, m, (w, h), borderMode=cv2.BORDER_REPLICATE)
    rot = align(detector.detect(rotated).points)
    assert abs(abs(rot.pose.roll - base.pose.roll) - 15) < 3
    # Aligned landmarks agree to within a few pixels of a 224 px frame.
    assert np.median(np.linalg.norm(rot.points[:, :2] - base.points[:, :2], axis=1)) < 3
    mirrored = align(detector.detect(np.ascontiguousarray(face_rgb[:, ::-1])).points)
    assert np.sign(mirrored.pose.yaw) == -np.sign(base.pose.yaw)
    assert abs(mirrored.pose.yaw + base.pose.yaw) < 3
    assert abs(mirrored.pose.roll + base.pose.roll) < 3


def test_photo_yields_all_modalities(pyfeat_dir):
    res = analyse_media(pyfeat_dir / "single_face.jpg", "single_face.jpg", Settings())
    assert res.kind == "photo" and res.n_frames == 1 and res.has_face.all()
    assert res.rgb.shape == (1, 224, 224, 3) and res.rgb.dtype == np.uint8
    assert res.lines.shape == (1, 224, 224, 3) and res.lines[0].any()
    assert res.landmarks.shape == (1, 478, 3)
    # Normalised coordinates: iris centres at (-0.5, 0) and (+0.5, 0).
    np.testing.assert_allclose(res.landmarks[0, 468, :2], [-0.5, 0.0], atol=1e-3)
    np.testing.assert_allclose(res.landmarks[0, 473, :2], [0.5, 0.0], atol=1e-3)
    assert res.features.shape == (1, len(feats.FRAME_FEATURES))
    assert np.isfinite(res.features).all()
    assert res.flags == [()]


def test_video_yields_per_frame_modalities_with_timestamps(pyfeat_dir):
    res = analyse_media(pyfeat_dir / "single_face.mp4", "single_face.mp4",
                        Settings(sample_fps=5, max_frames=12))
    assert res.kind == "video" and 3 <= res.n_frames <= 12
    assert (np.diff(res.timestamps) > 0.15).all() and (np.diff(res.timestamps) < 0.3).all()
    assert res.has_face.mean() > 0.8
    assert res.rgb.shape[0] == res.n_frames == len(res.flags)
    assert np.isfinite(res.clip_features).all()


def test_no_face_video_gives_flags_not_exceptions(pyfeat_dir):
    res = analyse_media(pyfeat_dir / "no_face.mp4", "no_face.mp4",
                        Settings(sample_fps=2, max_frames=6))
    assert res.n_frames > 0
    assert all(f == ("no_face",) for f in res.flags)
    assert not res.has_face.any()
    assert np.isnan(res.features).all()


def test_cache_is_hit_on_second_run(tmp_path, pyfeat_dir):
    photo = tmp_path / "face.jpg"
    shutil.copy(pyfeat_dir / "single_face.jpg", photo)
    settings = Settings(sample_fps=2, max_frames=4)
    first = extract_paths([photo, pyfeat_dir / "single_face.mp4"], settings, tmp_path / "c",
                          progress=False)
    assert first.cache_hits == 0 and not first.errors
    # Same bytes under another name still hit; changed settings miss.
    renamed = tmp_path / "renamed.jpg"
    photo.rename(renamed)
    second = extract_paths([renamed, pyfeat_dir / "single_face.mp4"], settings, tmp_path / "c",
                           progress=False)
    assert second.cache_hits == 2
    np.testing.assert_array_equal(second.results[renamed].features,
                                  first.results[photo].features)
    assert second.results[renamed].name == str(renamed)
    third = extract_paths([renamed], Settings(sample_fps=2, max_frames=4, size=160),
                          tmp_path / "c", progress=False)
    assert third.cache_hits == 0 and third.results[renamed].rgb.shape[1] == 160


def test_bad_file_in_batch_is_reported_and_rest_continue(tmp_path, pyfeat_dir):
    bad = tmp_path / "broken.mp4"
    bad.write_text("this is not a video")
    good = pyfeat_dir / "single_face.jpg"
    report = extract_paths([bad, good], Settings(), tmp_path / "c", progress=False)
    assert good in report.results and bad in report.errors
    assert "broken.mp4" in report.errors[bad]


def test_analysis_round_trips_through_npz(tmp_path, pyfeat_dir):
    res = analyse_media(pyfeat_dir / "single_face.jpg", "single_face.jpg")
    res.save(tmp_path / "a.npz")
    back = MediaAnalysis.load(tmp_path / "a.npz")
    np.testing.assert_array_equal(back.features, res.features)
    assert back.flags == res.flags and back.kind == "photo"


def test_cli_extract_and_help(tmp_path, pyfeat_dir):
    shutil.copy(pyfeat_dir / "single_face.jpg", tmp_path / "a.jpg")
    (tmp_path / "m.csv").write_text("path,label,subject\na.jpg,healthy,s1\n")
    out = subprocess.run([sys.executable, "-m", "palsy_core", "--help"], capture_output=True,
                         text=True, check=True).stdout
    assert "extract" in out and "research tool" in out.lower()
    run = subprocess.run([sys.executable, "-m", "palsy_core", "extract", "--manifest",
                          str(tmp_path / "m.csv"), "--out", str(tmp_path / "x"),
                          "--sample-fps", "0", "--max-frames", "5"],
                         capture_output=True, text=True, check=True)
    assert "extracted 1/1" in run.stdout
    index = (tmp_path / "x" / "index.csv").read_text().splitlines()
    assert index[1].startswith("a.jpg,healthy,s1") and ",1,1," in index[1]
    bad = subprocess.run([sys.executable, "-m", "palsy_core", "extract", "--manifest",
                          str(tmp_path / "missing.csv"), "--out", str(tmp_path / "y")],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "cannot read manifest" in bad.stderr
