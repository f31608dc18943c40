"""Expression features: key-point asymmetry measures and bilateral clinical measurements.

Two families, declared (names, units, descriptions, order) in ``registry``:

* the 29 key-point measures of Parra-Dominguez, Sanchez-Yanez & Garcia-Capulin (2021), "Facial
  Paralysis Detection on Images Using Key Point Analysis", Appl. Sci. 11(5):2435: angles, slopes
  and symmetry ratios max(a/b, b/a) over brows, eyes, mouth and nose, defined on dlib-68 key points
  and mapped here to MediaPipe landmarks (``DLIB_TO_MEDIAPIPE``);
* Emotrics-style measurements (Guarin et al. 2018) per side, in millimetres with the iris as ruler.

Everything is a pure function of the landmarks. Measurements are taken in the face's own frame
(origin at the iris midpoint, x along the interpupillary line towards the subject's left, y down),
which is the aligned frame up to a translation, so features do not depend on in-plane rotation,
position or scale. Signed features are positive towards the subject's left, so mirroring a face
negates them and swaps every ``*_right`` with its ``*_left``: ``mirror_permutation`` encodes this
from the feature keys, for flip augmentation.
"""

from __future__ import annotations

import numpy as np

from palsy_core.face.topology import (
    LEFT_ALA,
    LEFT_IRIS,
    RIGHT_ALA,
    RIGHT_IRIS,
    landmark_xy,
    mirror_index,
)
from palsy_core.modalities.base import FrameContext, ModalitySpec
from palsy_core.registry import CLIP_FEATURES, FRAME_FEATURES, Feature

IRIS_DIAMETER_MM = 11.7  # adult horizontal visible iris diameter, the ruler for millimetres
# Added to both terms of a symmetry ratio, as a fraction of the interocular distance, so a closed
# eye or mouth gives a large but finite ratio instead of a division by zero.
RATIO_EPS = 0.01
# Floor for denominators (widths, run of a slope), as a fraction of the interocular distance.
MIN_SPAN = 1e-3
ROM_PERCENTILES = (5.0, 95.0)

# --- dlib-68 -> MediaPipe ----------------------------------------------------------------------
# Parra-Dominguez use dlib's 68 points (0-based iBUG numbering). dlib 17-21, 36-41, 31-32, 48-50,
# 58-59 and 0 are on the subject's right; their left twins are derived with the exact mesh mirror
# table, so left and right are mirror images by construction.
_DLIB_RIGHT = {
    0: 127,  # face contour at eye level
    17: 70, 18: 63, 19: 105, 20: 66, 21: 107,  # upper brow border, outer to inner
    36: 33, 37: 160, 38: 158, 39: 133, 40: 153, 41: 144,  # eye: corners and lid points
    31: 98, 32: 97,  # alar base, nostril
    48: 61, 49: 40, 50: 37, 58: 84, 59: 91,  # mouth corner, upper and lower outer lip
}
_DLIB_MIDLINE = {8: 152, 30: 1, 33: 2, 51: 0, 57: 17}  # chin, nose tip, subnasale, lip midpoints
_DLIB_TWIN = {0: 16, 17: 26, 18: 25, 19: 24, 20: 23, 21: 22, 36: 45, 37: 44, 38: 43, 39: 42,
              40: 47, 41: 46, 31: 35, 32: 34, 48: 54, 49: 53, 50: 52, 58: 56, 59: 55}


def _dlib_to_mediapipe() -> dict[int, int]:
    mirror = mirror_index()
    left = {_DLIB_TWIN[d]: int(mirror[m]) for d, m in _DLIB_RIGHT.items()}
    return dict(sorted({**_DLIB_RIGHT, **_DLIB_MIDLINE, **left}.items()))


DLIB_TO_MEDIAPIPE: dict[int, int] = _dlib_to_mediapipe()

# --- Emotrics contours and points, subject's right side (left = mirror twins) -----------------
_RIGHT_SIDE: dict[str, np.ndarray] = {
    "brow": np.array([70, 63, 105, 66, 107]),  # upper brow border
    "upper_lid": np.array([33, 246, 161, 160, 159, 158, 157, 173, 133]),
    "lower_lid": np.array([33, 7, 163, 144, 145, 153, 154, 155, 133]),
    "upper_lip": np.array([61, 185, 40, 39, 37, 0]),  # outer border, corner to midline
    "lower_lip": np.array([61, 146, 91, 181, 84, 17]),
    "upper_lip_inner": np.array([78, 191, 80, 81, 82, 13]),
    "lower_lip_inner": np.array([78, 95, 88, 178, 87, 14]),
    "iris": np.array(RIGHT_IRIS),
    "outer_corner": np.array(33),
    "inner_corner": np.array(133),
    "commissure": np.array(61),
}
_SIDES = {"right": _RIGHT_SIDE, "left": {k: mirror_index()[v] for k, v in _RIGHT_SIDE.items()}}
_LOWER_LIP_FULL = np.concatenate([_SIDES["right"]["lower_lip"], _SIDES["left"]["lower_lip"][:-1]])
_IRIS_RINGS = ((469, 471, 470, 472), (474, 476, 475, 477))  # right, left: horizontal, vertical

# Features that change sign when the face is mirrored (every other one is symmetric or has a
# right/left twin named by its key).
SIGNED_FEATURES: frozenset[str] = frozenset({
    "pd_brow_outer_tilt", "pd_brow_middle_tilt", "pd_brow_inner_tilt",
    "pd_brow_outer_slope", "pd_brow_middle_slope", "pd_brow_inner_slope",
    "pd_eye_corner_tilt", "pd_mouth_corner_tilt", "pd_nostril_tilt", "pd_nose_lip_axis_angle",
})
_ROM_SUFFIX = "_rom_right"
_ROM_MEASURES = tuple(f.key[: -len(_ROM_SUFFIX)] for f in CLIP_FEATURES
                      if f.key.endswith(_ROM_SUFFIX))


def iris_diameters_px(points: np.ndarray) -> tuple[float, float]:
    """(right, left) iris diameters in pixels, each the mean of its horizontal and vertical one."""
    xy = landmark_xy(points)
    right, left = (
        0.5 * (np.linalg.norm(xy[a] - xy[b]) + np.linalg.norm(xy[c] - xy[d]))
        for a, b, c, d in _IRIS_RINGS
    )
    return float(right), float(left)


def iris_diameter_px(points: np.ndarray) -> float:
    """Iris diameter in pixels, averaged over both eyes: the ruler that turns pixels into mm."""
    return float(np.mean(iris_diameters_px(points)))


def _face_frame(xy: np.ndarray) -> tuple[np.ndarray, float]:
    """Landmarks in the face's own frame, and the interocular distance (same pixel scale)."""
    right, left = xy[RIGHT_IRIS], xy[LEFT_IRIS]
    interocular = float(np.linalg.norm(left - right))
    if interocular < 1e-6:
        raise ValueError("degenerate landmarks: both iris centres coincide")
    u = (left - right) / interocular
    rel = xy - (right + left) / 2.0
    return np.stack([rel @ u, rel @ np.array([-u[1], u[0]])], axis=1), interocular


# --- Geometry helpers (face frame: x towards the subject's left, y down) -----------------------
def _dist(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.hypot(*(a - b)))


def _run(right: np.ndarray, left: np.ndarray, floor: float) -> float:
    """Horizontal run from the right to the left point, kept at least ``floor`` away from 0."""
    run = float(left[0] - right[0])
    return run if abs(run) > floor else floor


def _tilt(right: np.ndarray, left: np.ndarray) -> float:
    """Degrees; positive when the left point is higher (smaller y) than the right one."""
    return float(np.degrees(np.arctan2(right[1] - left[1], left[0] - right[0])))


def _sym_ratio(a: float, b: float, eps: float) -> float:
    """max(a/b, b/a) of two non-negative lengths, smoothed by ``eps`` so it stays finite."""
    a, b = abs(a), abs(b)
    return (max(a, b) + eps) / (min(a, b) + eps)


def _y_at(pts: np.ndarray, x: float) -> float:
    """y of the polyline through ``pts`` at abscissa ``x`` (linear, clamped at the ends)."""
    order = np.argsort(pts[:, 0], kind="stable")
    return float(np.interp(x, pts[order, 0], pts[order, 1]))


# --- Parra-Dominguez 29 -----------------------------------------------------------------------
def _parra_dominguez(f: np.ndarray, interocular: float) -> dict[str, float]:
    """The paper's 29 measures in its order (eyebrows, eyes, mouth, nose, combined).

    Adaptations, each needed for a model input: angles and slopes keep their sign (the paper's
    measure is the magnitude) so a flip is exact; brow heights are measured from the
    interpupillary line rather than the image top; lip heights are compared between mirror-twin
    points; symmetry ratios are smoothed by ``RATIO_EPS`` so a closed eye stays finite.
    """
    d = {k: f[m] for k, m in DLIB_TO_MEDIAPIPE.items()}
    eps, floor = RATIO_EPS * interocular, MIN_SPAN * interocular
    face_width = max(abs(d[16][0] - d[0][0]), floor)
    mouth_width = max(abs(d[54][0] - d[48][0]), floor)

    def ratio(a: float, b: float) -> float:
        return _sym_ratio(a, b, eps)

    def slope(r: int, l_: int) -> float:
        return float(d[r][1] - d[l_][1]) / _run(d[r], d[l_], floor)

    def vgap(a: int, b: int) -> float:
        return abs(float(d[a][1] - d[b][1]))

    def perimeter(ring: tuple[int, ...]) -> float:
        return sum(_dist(d[a], d[b]) for a, b in zip(ring, ring[1:] + ring[:1], strict=True))

    brow_height_r = -float(np.mean([d[k][1] for k in range(17, 22)]))
    brow_height_l = -float(np.mean([d[k][1] for k in range(22, 27)]))
    lat_r, lat_l = vgap(49, 59), vgap(53, 55)
    par_r, par_l = vgap(50, 58), vgap(52, 56)
    open_lat_r, open_med_r = vgap(37, 41), vgap(38, 40)
    open_lat_l, open_med_l = vgap(44, 46), vgap(43, 47)
    lip = d[57]
    axis = lip - d[30]
    return {
        "pd_brow_outer_tilt": _tilt(d[17], d[26]),
        "pd_brow_middle_tilt": _tilt(d[19], d[24]),
        "pd_brow_inner_tilt": _tilt(d[21], d[22]),
        "pd_brow_height_ratio": ratio(brow_height_r, brow_height_l),
        "pd_brow_outer_slope": slope(17, 26),
        "pd_brow_middle_slope": slope(19, 24),
        "pd_brow_inner_slope": slope(21, 22),
        "pd_eye_corner_tilt": _tilt(d[36], d[45]),
        "pd_eye_width_ratio": ratio(d[39][0] - d[36][0], d[45][0] - d[42][0]),
        "pd_eye_face_edge_ratio": ratio(d[36][0] - d[0][0], d[16][0] - d[45][0]),
        "pd_eye_nostril_ratio": ratio(_dist(d[36], d[31]), _dist(d[45], d[35])),
        "pd_eye_opening_ratio": ratio(open_lat_r + open_med_r, open_lat_l + open_med_l),
        "pd_eye_lateral_opening_ratio": ratio(open_lat_r, open_lat_l),
        "pd_eye_medial_opening_ratio": ratio(open_med_r, open_med_l),
        "pd_mouth_corner_tilt": _tilt(d[48], d[54]),
        "pd_eye_lip_ratio": ratio(_dist(d[36], lip), _dist(d[45], lip)),
        "pd_lip_lateral_height_ratio": ratio(lat_r, lat_l),
        "pd_lip_paramedian_height_ratio": ratio(par_r, par_l),
        "pd_commissure_lip_max": max(_dist(d[48], lip), _dist(d[54], lip)) / face_width,
        "pd_lip_lateral_height_max": max(lat_r, lat_l) / mouth_width,
        "pd_lip_paramedian_height_max": max(par_r, par_l) / mouth_width,
        "pd_half_mouth_perimeter_max": max(perimeter((48, 49, 50, 51, 57, 58, 59)),
                                           perimeter((54, 53, 52, 51, 57, 56, 55))) / mouth_width,
        "pd_nostril_tilt": _tilt(d[31], d[35]),
        "pd_nose_lip_axis_angle": float(np.degrees(np.arctan2(axis[0], axis[1]))),
        "pd_nostril_lip_ratio": ratio(_dist(d[31], lip), _dist(d[35], lip)),
        "pd_brow_middle_lip_max": max(_dist(d[19], lip), _dist(d[24], lip)) / face_width,
        "pd_brow_medial_lip_max": max(_dist(d[20], lip), _dist(d[23], lip)) / face_width,
        "pd_lip_chin_length": _dist(lip, d[8]) / face_width,
        "pd_philtrum_length": _dist(d[33], d[51]) / face_width,
    }


# --- Emotrics ---------------------------------------------------------------------------------
def _emotrics_side(
    f: np.ndarray, side: dict[str, np.ndarray], lip_mid: np.ndarray, mm: float
) -> dict[str, float]:
    """One side's measurements; the iris centres lie on y = 0 and the midline is x = 0."""

    def y_on(contour: str, x: float) -> float:
        return _y_at(f[side[contour]], x)

    iris_x = f[side["iris"], 0]
    eye_mid_x = 0.5 * (f[side["outer_corner"], 0] + f[side["inner_corner"], 0])
    corner = f[side["commissure"]]
    to_corner = corner - lip_mid
    lip_x = 0.5 * corner[0]  # halfway between the midline and the mouth corner
    return {
        "brow_height": -y_on("brow", iris_x) * mm,
        "palpebral_fissure_height":
            max(0.0, y_on("lower_lid", eye_mid_x) - y_on("upper_lid", eye_mid_x)) * mm,
        "mrd1": -y_on("upper_lid", iris_x) * mm,
        "mrd2": y_on("lower_lid", iris_x) * mm,
        "commissure_excursion": float(np.hypot(*to_corner)) * mm,
        "smile_angle": float(np.degrees(np.arctan2(abs(to_corner[0]), to_corner[1]))),
        "upper_lip_height": y_on("upper_lip", lip_x) * mm,
        "lower_lip_height": y_on("lower_lip", lip_x) * mm,
        "dental_show":
            max(0.0, y_on("lower_lip_inner", lip_x) - y_on("upper_lip_inner", lip_x)) * mm,
    }


def _emotrics(f: np.ndarray, mm: float) -> dict[str, float]:
    lip_mid = np.array([0.0, _y_at(f[_LOWER_LIP_FULL], 0.0)])
    right = _emotrics_side(f, _SIDES["right"], lip_mid, mm)
    left = _emotrics_side(f, _SIDES["left"], lip_mid, mm)
    return _bilateral_values(right, left)


def _bilateral_values(right: dict[str, float], left: dict[str, float]) -> dict[str, float]:
    """``<m>_right``, ``<m>_left`` and ``<m>_absdiff`` for every measure ``m``."""
    out = {}
    for m in right:
        r, l_ = right[m], left[m]
        out |= {f"{m}_right": r, f"{m}_left": l_, f"{m}_absdiff": abs(r - l_)}
    return out


def _vector(values: dict[str, float], features: tuple[Feature, ...]) -> np.ndarray:
    return np.array([values[f.key] for f in features], dtype=np.float32)


# --- Public API -------------------------------------------------------------------------------
def frame_features(points: np.ndarray) -> np.ndarray:
    """The ``FRAME_FEATURES`` vector (float32) of one face from its (478, 2|3) aligned landmarks.

    Raises ``ValueError`` for a wrong shape, non-finite coordinates or degenerate irises.
    """
    xy = landmark_xy(points)
    iris = iris_diameter_px(xy)
    if iris < 1e-6:
        raise ValueError("degenerate landmarks: the iris rings have zero diameter")
    f, interocular = _face_frame(xy)
    values = _parra_dominguez(f, interocular) | _emotrics(f, IRIS_DIAMETER_MM / iris)
    return _vector(values, FRAME_FEATURES)


# --- Regional measures (the guided exam) -----------------------------------------------------
# Per side, in units of the distance between the eyes' centres (about the interocular
# distance), y down: what the exam compares between sides and between movements.
SIDE_MEASURES: tuple[str, ...] = (
    "brow_height",  # upper brow border above the line joining the eyes, at the eye's middle
    "palpebral_fissure",  # lid opening at the middle of the eye
    "ala_height",  # nasal ala below the line joining the eyes
    "commissure_height",  # mouth corner below the line joining the eyes
    "commissure_lateral",  # mouth corner's distance from the facial midline
    "fold_length",  # ala to mouth corner: the nasolabial line
)


def side_measures(points: np.ndarray, reference: str = "corners") -> tuple[np.ndarray, float]:
    """((2, len(SIDE_MEASURES)) right and left measures, millimetres per unit).

    The unit is the distance between the two eyes' centres and the frame is theirs: origin
    halfway, x along the line joining them. ``reference`` says what the centres are: "corners"
    (each eye's corner midpoint) stay put when the lids close, where the iris centres are hidden;
    "iris" (the iris centres) stay put when a palsied lid opening widens or a lower lid sags,
    which moves the corners: at rest, with open eyes, they are the steadier reference.
    Millimetres come from the iris ruler (``IRIS_DIAMETER_MM``); an exam converts with the ruler
    of its resting frames. Raises ``ValueError`` for degenerate landmarks.
    """
    if reference not in ("corners", "iris"):
        raise ValueError(f"reference must be 'corners' or 'iris', got {reference!r}")
    xy = landmark_xy(points)
    iris = iris_diameter_px(xy)
    if reference == "iris":
        centres = [xy[RIGHT_IRIS], xy[LEFT_IRIS]]
    else:
        centres = [0.5 * (xy[_SIDES[s]["outer_corner"]] + xy[_SIDES[s]["inner_corner"]])
                   for s in ("right", "left")]
    span = float(np.linalg.norm(centres[1] - centres[0]))
    if iris < 1e-6 or span < 1e-6:
        raise ValueError("degenerate landmarks: zero iris diameter or coinciding eyes")
    u = (centres[1] - centres[0]) / span
    rel = (xy - (centres[0] + centres[1]) / 2.0) / span
    f = np.stack([rel @ u, rel @ np.array([-u[1], u[0]])], axis=1)
    mid_x = float(np.mean((f[:, 0] + f[mirror_index(), 0]) / 2.0))
    rows = []
    for side, ala in (("right", RIGHT_ALA), ("left", LEFT_ALA)):
        s = _SIDES[side]
        eye_x = 0.5 * (f[s["outer_corner"], 0] + f[s["inner_corner"], 0])
        corner = f[s["commissure"]]
        rows.append([
            -_y_at(f[s["brow"]], eye_x),
            max(0.0, _y_at(f[s["lower_lid"]], eye_x) - _y_at(f[s["upper_lid"]], eye_x)),
            f[ala, 1],
            corner[1],
            abs(corner[0] - mid_x),
            _dist(f[ala], corner),
        ])
    return np.array(rows, dtype=np.float64), IRIS_DIAMETER_MM * span / iris


def _robust_range(column: np.ndarray) -> float:
    seen = column[np.isfinite(column)]
    if seen.size == 0:
        return float("nan")
    low, high = np.percentile(seen, ROM_PERCENTILES)
    return float(high - low)


def clip_features(per_frame: np.ndarray) -> np.ndarray:
    """The ``CLIP_FEATURES`` vector (float32) of a video from its (T, F) per-frame features.

    Frames without a face are NaN rows and are skipped; a measure never seen gives NaN.
    """
    table = np.asarray(per_frame, dtype=np.float64)
    if table.ndim != 2 or table.shape[1] != len(FRAME_FEATURES):
        raise ValueError(f"expected a (T, {len(FRAME_FEATURES)}) per-frame feature matrix, "
                         f"got shape {table.shape}")
    column = {f.key: i for i, f in enumerate(FRAME_FEATURES)}
    rom = {side: {f"{m}_rom": _robust_range(table[:, column[f"{m}_{side}"]]) for m in _ROM_MEASURES}
           for side in ("right", "left")}
    return _vector(_bilateral_values(rom["right"], rom["left"]), CLIP_FEATURES)


def mirror_permutation(
    features: tuple[Feature, ...] = FRAME_FEATURES,
) -> tuple[np.ndarray, np.ndarray]:
    """``(perm, sign)`` with ``features(mirrored face) == sign * features(face)[perm]``.

    Exact by construction: ``*_right`` and ``*_left`` swap, ``SIGNED_FEATURES`` change sign and
    every other feature is symmetric. Works for ``CLIP_FEATURES`` too.
    """
    index = {f.key: i for i, f in enumerate(features)}

    def twin(key: str) -> str:
        for a, b in (("_right", "_left"), ("_left", "_right")):
            if key.endswith(a):
                return key[: -len(a)] + b
        return key

    perm = np.array([index[twin(f.key)] for f in features], dtype=np.int64)
    sign = np.array([-1.0 if f.key in SIGNED_FEATURES else 1.0 for f in features])
    return perm, sign


class ExpressionFeatures(ModalitySpec):
    """Modality 4: the expression features of the registry, standardised for the network."""

    key = "features"
    encoder = "vector"

    def shape(self, size: int) -> tuple[int, ...]:
        return (len(FRAME_FEATURES),)

    def compute(self, ctx: FrameContext) -> np.ndarray:
        return frame_features(ctx.alignment.points)

    def mirror(self, batch: np.ndarray) -> np.ndarray:
        perm, sign = mirror_permutation()
        return (batch[:, perm] * sign).astype(np.float32)

    def model_input(self, batch: np.ndarray, normaliser) -> np.ndarray:
        return normaliser.transform(batch)

    def input_dim(self, n_features: int) -> int:
        return n_features


SPEC = ExpressionFeatures()
