"""Face-network mirror asymmetry on real faces: exact under mirroring, zero for a symmetric face,
larger for a one-sided palsy of the same face."""

from __future__ import annotations

import numpy as np
import pytest

from palsy_core.extraction.pipeline import Settings, analyse_frame
from palsy_core.face.alignment import align
from palsy_core.face.synth import synthesize_palsy
from palsy_core.modalities.face_net import (
    DIM,
    N_ABS,
    FaceNet,
    FaceNetUnavailable,
    mirror_asymmetry,
    shared_face_net,
)


@pytest.fixture(scope="module")
def face(face_rgb, detector):
    """The sample photo analysed: its aligned crop and face-network asymmetry."""
    frame = analyse_frame(face_rgb, detector, Settings())
    assert frame.has_face
    return frame


def test_every_face_frame_carries_the_asymmetry(face):
    assert face.face_asym.shape == (DIM,) and face.face_asym.dtype == np.float32
    assert np.isfinite(face.face_asym).all()
    assert face.face_asym[:N_ABS].min() >= 0 and face.face_asym[:N_ABS].mean() > 0.1


def test_a_symmetric_face_has_exactly_zero_asymmetry(face):
    crop = face.rgb
    half = crop.shape[1] // 2
    symmetric = crop.copy()
    symmetric[:, crop.shape[1] - half:] = crop[:, :half][:, ::-1]
    assert np.array_equal(symmetric, symmetric[:, ::-1])
    assert not shared_face_net().asymmetry(symmetric).any()


def test_mirroring_keeps_magnitudes_and_negates_the_signed_part(face):
    mirrored = shared_face_net().asymmetry(np.ascontiguousarray(face.rgb[:, ::-1]))
    np.testing.assert_array_equal(mirrored[:N_ABS], face.face_asym[:N_ABS])
    np.testing.assert_array_equal(mirrored[N_ABS:], -face.face_asym[N_ABS:])
    np.testing.assert_array_equal(mirror_asymmetry(face.face_asym), mirrored)
    assert np.abs(face.face_asym[N_ABS:]).max() > 0


@pytest.mark.parametrize("side", ["left", "right"])
def test_one_sided_palsy_raises_the_asymmetry(face, detector, side):
    points = align(face.points, face.rgb.shape[0]).points
    settings = Settings(clean_marks=False)
    # Severity 0 goes through the same resampling and re-detection as the palsy version.
    level = {}
    for severity in (0.0, 1.0):
        out = synthesize_palsy(face.rgb, points, side, severity)
        frame = analyse_frame(out.rgb, detector, settings)
        assert frame.has_face
        level[severity] = frame.face_asym[:N_ABS].mean()
    assert level[1.0] > 1.03 * level[0.0], level


def test_a_missing_network_file_is_a_clear_error(tmp_path):
    with pytest.raises(FaceNetUnavailable, match="face network not found"):
        FaceNet(tmp_path / "face_landmark.tflite")
