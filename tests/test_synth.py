"""Synthetic one-sided palsy on real faces, checked with the real landmark detector.

Each palsied image is re-detected and aligned; per side we measure the mouth-corner height below
the eye line, the brow height above the iris and the palpebral fissure height (aligned pixels,
interocular distance = INTEROCULAR * size).
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from palsy_core.face.alignment import EYE_Y, INTEROCULAR, align
from palsy_core.face.synth import MOVEMENTS, SynthResult, random_movement, synthesize_palsy
from palsy_core.face.topology import (
    LEFT_BROW_PEAK,
    LEFT_EYE_LOWER,
    LEFT_EYE_UPPER,
    LEFT_IRIS,
    LEFT_MOUTH_CORNER,
    LOWER_LIP_BOTTOM,
    N_MESH,
    RIGHT_BROW_PEAK,
    RIGHT_EYE_LOWER,
    RIGHT_EYE_UPPER,
    RIGHT_IRIS,
    RIGHT_MOUTH_CORNER,
    UPPER_LIP_TOP,
    mirror_points,
)
from palsy_core.settings import SIDES

SIZE = 224
IOD = INTEROCULAR * SIZE  # aligned pixels
SEVERITIES = (0.0, 0.5, 1.0)
FACES = ("single_face", "wolfgang")
# (mouth corner, brow peak, upper lid, lower lid, iris centre) per side.
MARKS = {
    "right": (RIGHT_MOUTH_CORNER, RIGHT_BROW_PEAK, RIGHT_EYE_UPPER, RIGHT_EYE_LOWER, RIGHT_IRIS),
    "left": (LEFT_MOUTH_CORNER, LEFT_BROW_PEAK, LEFT_EYE_UPPER, LEFT_EYE_LOWER, LEFT_IRIS),
}
# Palsy direction of each measure: corner lower, brow lower (less height), fissure wider.
PALSY = np.array([1.0, -1.0, 1.0])
MEASURES = ("corner drop", "brow height", "fissure height")


def other(side: str) -> str:
    return "right" if side == "left" else "left"


def measure(points: np.ndarray) -> dict[str, np.ndarray]:
    """Per side: (corner below eye line, brow above iris, fissure height) in aligned pixels."""
    p = align(points, size=SIZE).points
    out = {}
    for side, (corner, brow, upper, lower, iris) in MARKS.items():
        out[side] = np.array([
            p[corner, 1] - EYE_Y * SIZE, p[iris, 1] - p[brow, 1], p[lower, 1] - p[upper, 1]
        ])
    return out


def mouth_half_width(points: np.ndarray, side: str) -> float:
    """Aligned distance of a mouth corner from the lips' midline."""
    p = align(points, size=SIZE).points
    midline = (p[UPPER_LIP_TOP, 0] + p[LOWER_LIP_BOTTOM, 0]) / 2.0
    return float(abs(p[MARKS[side][0], 0] - midline))


def interocular(points: np.ndarray) -> float:
    return float(np.linalg.norm(points[LEFT_IRIS, :2] - points[RIGHT_IRIS, :2]))


class Trials:
    """Palsied versions of real faces and their re-detected landmarks, computed once each."""

    def __init__(self, images: dict[str, np.ndarray], detector) -> None:
        self.images = images
        self.detector = detector
        self._cache: dict[tuple, tuple[SynthResult, np.ndarray]] = {}

    def detect(self, image: np.ndarray, what: str) -> np.ndarray:
        detection = self.detector.detect(image)
        assert detection is not None, f"no face found in {what}"
        return detection.points

    def original(self, face: str) -> np.ndarray:
        """Landmarks of the healthy face."""
        if (face,) not in self._cache:
            points = self.detect(self.images[face], face)
            self._cache[(face,)] = (SynthResult(self.images[face], points), points)
        return self._cache[(face,)][1]

    def run(self, face: str, side: str, severity: float) -> tuple[SynthResult, np.ndarray]:
        """The palsied face and its re-detected landmarks."""
        if severity == 0:
            self.original(face)
            return self._cache[(face,)]
        key = (face, side, severity)
        if key not in self._cache:
            result = synthesize_palsy(self.images[face], self.original(face), side, severity)
            self._cache[key] = (result, self.detect(result.rgb, f"{face} ({side}, {severity})"))
        return self._cache[key]

    def asymmetry(self, face: str, side: str, severity: float) -> np.ndarray:
        """Affected-minus-other measures, signed so that palsy makes them grow."""
        m = measure(self.run(face, side, severity)[1])
        return PALSY * (m[side] - m[other(side)])


@pytest.fixture(scope="module")
def trials(face_rgb: np.ndarray, pyfeat_dir: Path, detector) -> Trials:
    with av.open(str(pyfeat_dir / "WolfgangLanger_Pexels.mp4")) as container:
        frame = next(container.decode(video=0)).to_ndarray(format="rgb24")
    return Trials({"single_face": face_rgb, "wolfgang": frame}, detector)


@pytest.fixture(scope="module")
def face_points(trials: Trials) -> np.ndarray:
    return trials.original("single_face")


def test_severity_zero_returns_the_input(face_rgb, face_points):
    result = synthesize_palsy(face_rgb, face_points, "left", 0.0)
    np.testing.assert_array_equal(result.rgb, face_rgb)
    np.testing.assert_array_equal(result.points, face_points)
    assert result.rgb is not face_rgb and result.points is not face_points


@pytest.mark.parametrize("columns", [2, 3])
def test_output_keeps_image_and_landmark_layout(face_rgb, face_points, columns):
    result = synthesize_palsy(face_rgb, face_points[:, :columns], "right", 0.7)
    assert result.rgb.shape == face_rgb.shape and result.rgb.dtype == np.uint8
    assert result.points.shape == (478, columns) and result.points.dtype == np.float32
    assert not np.array_equal(result.rgb, face_rgb)
    if columns == 3:
        np.testing.assert_array_equal(result.points[:, 2], face_points[:, 2])


@pytest.mark.parametrize("side", SIDES)
def test_only_the_chosen_half_of_the_image_changes(face_rgb, face_points, side):
    result = synthesize_palsy(face_rgb, face_points, side, 1.0)
    diff = np.abs(result.rgb.astype(np.int16) - face_rgb.astype(np.int16)).max(axis=2)
    # Lateral position towards the chosen side, in interocular distances from the lips' midline.
    iod = interocular(face_points)
    axis = (face_points[LEFT_IRIS, :2] - face_points[RIGHT_IRIS, :2]) / iod
    axis = axis if side == "left" else -axis
    midline = face_points[[UPPER_LIP_TOP, LOWER_LIP_BOTTOM], :2].mean(axis=0)
    ys, xs = np.mgrid[: face_rgb.shape[0], : face_rgb.shape[1]]
    lateral = ((xs - midline[0]) * axis[0] + (ys - midline[1]) * axis[1]) / iod
    assert diff[lateral < -0.15].mean() < 0.05 and diff[lateral < -0.15].max() <= 10
    assert diff[lateral > 0.15].mean() > 1.0


def test_mirrored_face_with_the_other_side_gives_the_mirrored_result(face_rgb, face_points):
    """The side convention is consistent: a left palsy is a right palsy of the mirror image."""
    width = face_rgb.shape[1]
    left = synthesize_palsy(face_rgb, face_points, "left", 0.8)
    mirrored = np.ascontiguousarray(face_rgb[:, ::-1])
    right = synthesize_palsy(mirrored, mirror_points(face_points, width), "right", 0.8)
    np.testing.assert_allclose(mirror_points(left.points, width), right.points, atol=0.05)
    diff = np.abs(left.rgb[:, ::-1].astype(np.int16) - right.rgb.astype(np.int16))
    assert diff.mean() < 0.1


@pytest.mark.parametrize("face", FACES)
@pytest.mark.parametrize("side", SIDES)
def test_asymmetry_grows_with_severity_on_the_chosen_side(trials, face, side):
    steps = [trials.asymmetry(face, side, s) for s in SEVERITIES]
    for name, k in zip(MEASURES, range(3), strict=True):
        values = [step[k] for step in steps]
        assert np.all(np.diff(values) > 0.007 * IOD), f"{name} on {face} ({side}): {values}"
        assert values[-1] - values[0] > 0.03 * IOD, f"{name} on {face} ({side}): {values}"


@pytest.mark.parametrize("face", FACES)
def test_sign_of_the_asymmetry_follows_the_side(trials, face):
    """Left-minus-right measures move one way for a left palsy and the other way for a right one."""
    base = measure(trials.original(face))
    changes = {}
    for side in SIDES:
        m = measure(trials.run(face, side, 1.0)[1])
        changes[side] = (m["left"] - m["right"]) - (base["left"] - base["right"])
    assert np.all(np.sign(changes["left"]) == PALSY), changes
    assert np.all(np.sign(changes["right"]) == -PALSY), changes


@pytest.mark.parametrize("face", FACES)
@pytest.mark.parametrize("side", SIDES)
def test_unaffected_side_barely_changes(trials, face, side):
    base = measure(trials.original(face))
    palsied = measure(trials.run(face, side, 1.0)[1])
    affected = np.abs(palsied[side] - base[side])
    unaffected = np.abs(palsied[other(side)] - base[other(side)])
    assert np.all(unaffected < 0.5 * affected), (affected, unaffected)
    assert np.all(unaffected < 0.045 * IOD), unaffected


@pytest.mark.parametrize("face", FACES)
@pytest.mark.parametrize("side", SIDES)
def test_synthesized_landmarks_match_redetection(trials, face, side):
    original = trials.original(face)
    result, detected = trials.run(face, side, 1.0)
    iod = interocular(original)
    error = np.linalg.norm(result.points[:, :2] - detected[:, :2], axis=1)
    assert error.mean() < 0.04 * iod, error.mean()
    # Where the palsy moved landmarks, the predicted positions explain the new image better than
    # the old ones.
    moved = np.linalg.norm(result.points[:, :2] - original[:, :2], axis=1) > 0.02 * iod
    stale = np.linalg.norm(original[moved, :2] - detected[moved, :2], axis=1)
    assert moved.sum() > 50
    assert error[moved].mean() < 0.85 * stale.mean(), (error[moved].mean(), stale.mean())


@pytest.mark.parametrize("side", SIDES)
def test_smiling_corner_is_pulled_back_towards_the_midline(trials, side):
    """single_face smiles; the palsied side loses most of its smile excursion."""
    before = mouth_half_width(trials.original("single_face"), side)
    after = mouth_half_width(trials.run("single_face", side, 1.0)[1], side)
    assert before - after > 0.05 * IOD, (before, after)


def test_rng_varies_the_effect_mix_a_little(face_rgb, face_points):
    plain = synthesize_palsy(face_rgb, face_points, "left", 0.8)
    again = synthesize_palsy(face_rgb, face_points, "left", 0.8)
    np.testing.assert_array_equal(plain.rgb, again.rgb)
    a = synthesize_palsy(face_rgb, face_points, "left", 0.8, np.random.default_rng(1))
    b = synthesize_palsy(face_rgb, face_points, "left", 0.8, np.random.default_rng(1))
    c = synthesize_palsy(face_rgb, face_points, "left", 0.8, np.random.default_rng(2))
    np.testing.assert_array_equal(a.rgb, b.rgb)
    effect = np.linalg.norm(plain.points - face_points, axis=1).max()
    for varied in (a, c):
        spread = np.linalg.norm(varied.points - plain.points, axis=1).max()
        assert 0.01 * effect < spread < 0.35 * effect
    assert not np.array_equal(a.points, c.points)


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        ({"side": "centre"}, ValueError, "side must be one of"),
        ({"side": "Left"}, ValueError, "side must be one of"),
        ({"severity": -0.1}, ValueError, r"severity must be in \[0, 1\]"),
        ({"severity": 1.5}, ValueError, r"severity must be in \[0, 1\]"),
        ({"severity": float("nan")}, ValueError, r"severity must be in \[0, 1\]"),
        ({"severity": "0.5"}, TypeError, "severity must be a number"),
        ({"rng": np.random.RandomState(0)}, TypeError, "rng must be a numpy.random.Generator"),
        ({"rgb": "gray"}, ValueError, "expected an RGB uint8 image"),
        ({"rgb": "float"}, ValueError, "expected an RGB uint8 image"),
        ({"points": "short"}, ValueError, r"expected \(478, 2\) or \(478, 3\) landmarks"),
        ({"points": "nan"}, ValueError, "NaN or infinite"),
        ({"points": "collapsed"}, ValueError, "face too small"),
    ],
)
def test_invalid_arguments_are_rejected(face_rgb, face_points, change, error, match):
    args = {"rgb": face_rgb, "points": face_points, "side": "left", "severity": 0.5, "rng": None}
    args.update(change)
    variants = {
        "gray": face_rgb[..., 0],
        "float": face_rgb.astype(np.float32),
        "short": face_points[:468],
        "nan": np.where(np.arange(478)[:, None] == 5, np.nan, face_points),
        "collapsed": np.repeat(face_points[RIGHT_IRIS][None], 478, axis=0),
    }
    for key in ("rgb", "points"):
        if isinstance(args[key], str):
            args[key] = variants[args[key]]
    with pytest.raises(error, match=match):
        synthesize_palsy(**args)


def side_motion(before: np.ndarray, after: np.ndarray) -> dict[str, float]:
    """Mean landmark displacement on each half of the face, in interocular distances (the
    subject's sides; the warp holds the face outline and nose, so no re-alignment is needed)."""
    move = np.linalg.norm(after[:N_MESH, :2] - before[:N_MESH, :2], axis=1)
    midline = (before[LEFT_IRIS, 0] + before[RIGHT_IRIS, 0]) / 2.0
    iod = interocular(before)
    # The subject's left is the image's right.
    left = before[:N_MESH, 0] > midline + 0.05 * iod
    right = before[:N_MESH, 0] < midline - 0.05 * iod
    return {"left": float(move[left].mean() / iod), "right": float(move[right].mean() / iod)}


def test_movement_controls_move_both_sides_alike(face_rgb, face_points):
    """A control in movement (no palsy side) moves both halves of a real face about equally,
    and different draws move the face differently."""
    seen = set()
    for seed in range(6):
        rng = np.random.default_rng(seed)
        out = random_movement(SynthResult(face_rgb, face_points), None, 0.0, rng)
        motion = side_motion(face_points, out.points)
        assert max(motion.values()) > 0.002, motion
        # single_face is turned a little: equal efforts move its halves 0.75-0.95 alike.
        assert 0.6 < motion["right"] / motion["left"] < 1.6, motion
        seen.add(round(motion["left"], 5))
    assert len(seen) > 2


@pytest.mark.parametrize("side", SIDES)
def test_movement_palsy_side_moves_less_with_severity(trials, face_rgb, face_points, side):
    """The palsy side moves with ``1 - severity`` of the other's effort: still at severity 1,
    less than the other at 0.5; and the detector sees it on the re-drawn face."""
    for seed in range(4):
        full = random_movement(SynthResult(face_rgb, face_points), side, 1.0,
                               np.random.default_rng(seed))
        half = random_movement(SynthResult(face_rgb, face_points), side, 0.5,
                               np.random.default_rng(seed))
        m_full = side_motion(face_points, full.points)
        m_half = side_motion(face_points, half.points)
        ratio_full = m_full[side] / m_full[other(side)]
        ratio_half = m_half[side] / m_half[other(side)]
        assert ratio_full < 0.1, m_full
        assert ratio_full < ratio_half < 0.8, (m_full, m_half)
    detected = trials.detect(full.rgb, f"movement, {side} weak")
    seen = side_motion(face_points, detected)
    assert seen[other(side)] > seen[side], seen


def test_movement_mix_is_a_distribution_and_a_bad_side_is_refused(face_rgb, face_points):
    from palsy_core.face.synth import MOVEMENT_MIX

    assert len(MOVEMENT_MIX) == len(MOVEMENTS) and abs(sum(MOVEMENT_MIX) - 1.0) < 1e-9
    with pytest.raises(ValueError, match="side must be one of"):
        random_movement(SynthResult(face_rgb, face_points), "centre", 0.5,
                        np.random.default_rng(0))
