"""Synthetic one-sided facial palsy from a healthy face photo (training augmentation).

Real palsy photos are scarce, so healthy faces are turned into plausible one-sided palsies: on the
chosen side (the subject's own side) the brow sags (laterally more), the palpebral fissure widens
(upper lid up, lower lid down: incomplete closure / ectropion), the mouth corner droops and slips
towards the midline, any smile on that side is pulled back towards rest, and the nasolabial fold
flattens. Every effect scales with ``severity`` and with face size (interocular distance).

Geometry is one smooth dense warp: displacements are set at landmarks (zero on the unaffected
side, the midline, the iris centre, the nose and the face outline), a thin-plate spline
interpolates them on a coarse grid over the face, and ``cv2.remap`` applies it. The spline is
fitted backwards (from displaced to original positions), so each control landmark lands where
intended and the returned landmarks are the positions of the features in the new image. The
eyeball does not move with the lids: the widened lid opening is redrawn from the original eye,
and the fold's shading is removed by a masked blend.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
from scipy.interpolate import RBFInterpolator

from palsy_core.face.topology import (
    CONTOURS,
    LEFT_ALA,
    LEFT_IRIS,
    LEFT_MOUTH_CORNER,
    LOWER_LIP_INNER,
    N_LANDMARKS,
    N_MESH,
    RIGHT_ALA,
    RIGHT_IRIS,
    RIGHT_MOUTH_CORNER,
    UPPER_LIP_INNER,
    canonical_face,
    mirror_index,
)
from palsy_core.settings import SIDES

# Effect sizes at severity 1, in interocular distances (iod) unless noted.
BROW_DROP = 0.12  # at the lateral brow end; the medial end drops half as much
LID_RAISE = 0.02  # upper lid margin, centre of the lid
LID_LOWER = 0.04  # lower lid margin, centre of the lid
CORNER_DROOP = 0.10  # mouth corner, downwards
CORNER_MEDIAL = 0.03  # mouth corner, towards the midline
SMILE_LOSS = 0.8  # fraction of the smile excursion removed
FOLD_SHIFT = 0.03  # nasolabial fold band, laterally (and half as much downwards)
FOLD_FLATTEN = 0.85  # fraction of the fold's shading removed
JITTER = 0.2  # with an rng, each effect is scaled by a factor in [1 - JITTER, 1 + JITTER]
N_EFFECTS = 7
# Which effects (in _displacements' gain order) belong to each facial region.
REGION_EFFECTS: dict[str, tuple[int, ...]] = {
    "brow": (0,), "eye": (1, 2), "midface": (6,), "mouth": (3, 4, 5)}

# Voluntary movements (synthesize_movement) at full effort, in iod: brows up; the upper lid's
# share of the lid opening closed (gentle, tight); ala up; mouth corner lateral and up (smile),
# medial (pucker).
MOVEMENT_BROW_RAISE = 0.10
MOVEMENT_CLOSURE = {"eyes_gentle": 0.75, "eyes_tight": 0.95}
MOVEMENT_ALA_RAISE = 0.09
MOVEMENT_SMILE = (0.10, -0.07)
MOVEMENT_PUCKER = -0.10
MOVEMENTS = ("brow_raise", "eyes_gentle", "eyes_tight", "nose_wrinkle", "smile", "pucker")
# Training faces in movement (random_movement): how often each of MOVEMENTS is drawn (smiles are
# the commonest expression in the web palsy photos) and the stronger side's effort.
MOVEMENT_MIX = (0.15, 0.10, 0.10, 0.10, 0.40, 0.15)
MOVEMENT_EFFORT = (0.5, 1.0)

# A resting mouth corner sits about under the pupil (half-width ~0.4 iod) at the lips' meeting
# line; a corner further out or higher is smiling.
NEUTRAL_HALF_WIDTH = 0.40

# Warp support: face box margin, grid step and border anchor spacing (iod), spline smoothing.
ROI_MARGIN = 0.6
GRID_STEP = 0.05
BORDER_STEP = 0.25
SMOOTHING = 1e-3

# Nasolabial fold band (iod): offsets of its ends from the ala and the mouth corner, lateral bow,
# band half-width, and the scales separating fold shading (removed) from skin texture (kept).
FOLD_TOP = (0.06, -0.02)  # (lateral, down) from the ala
FOLD_BOTTOM = (0.12, 0.08)  # (lateral, down) from the mouth corner
FOLD_BOW = 0.05
FOLD_HALF_WIDTH = 0.06
FOLD_TEXTURE_SIGMA = 0.01
FOLD_SHADING_SIGMA = 0.10
MIN_IOD_PX = 8.0

# Newly exposed sclera: colour percentile of the visible sclera, shade at the lid margin and the
# width (iod) of the lid's shadow.
SCLERA_PERCENTILE = 90
SCLERA_SHADE = 0.75
SCLERA_SHADOW = 0.03
LID_MARGIN = 0.025  # width (iod) of the lid margin band hidden when the lid moves


@dataclass(frozen=True)
class SynthResult:
    """The palsied image (same shape and dtype as the input) and its landmarks (source pixels)."""

    rgb: np.ndarray
    points: np.ndarray


@dataclass(frozen=True)
class _Regions:
    """Landmark index sets of the affected side."""

    side_sign: float  # +1: subject's left (canonical +x), -1: subject's right
    anchors: np.ndarray  # held still: unaffected side, midline, eyeball, nose, face outline
    members: np.ndarray  # all landmarks of the affected side
    brow: np.ndarray
    eye: np.ndarray  # lid margins, in order around the eye
    lips: np.ndarray
    iris: int
    corner: int
    ala: int


def _contour(name: str) -> np.ndarray:
    return np.array(sorted({i for edge in CONTOURS[name] for i in edge}), dtype=np.int64)


def _cycle(name: str) -> np.ndarray:
    """The landmarks of a closed contour in walking order (a polygon)."""
    neighbours: dict[int, list[int]] = {}
    for a, b in CONTOURS[name]:
        neighbours.setdefault(a, []).append(b)
        neighbours.setdefault(b, []).append(a)
    order = [min(neighbours)]
    prev = -1
    while True:
        nxt = next(n for n in neighbours[order[-1]] if n != prev)
        if nxt == order[0]:
            return np.array(order, dtype=np.int64)
        prev = order[-1]
        order.append(nxt)


@lru_cache(maxsize=2)
def _regions(side: str) -> _Regions:
    sign = 1.0 if side == "left" else -1.0
    canon_x = np.zeros(N_LANDMARKS)
    canon_x[:N_MESH] = canonical_face()[:, 0]
    canon_x[RIGHT_IRIS : RIGHT_IRIS + 5] = -1.0
    canon_x[LEFT_IRIS : LEFT_IRIS + 5] = 1.0
    midline = mirror_index() == np.arange(N_LANDMARKS)
    members = ~midline & (np.sign(canon_x) == sign)
    iris = LEFT_IRIS if side == "left" else RIGHT_IRIS
    held = np.zeros(N_LANDMARKS, dtype=bool)
    held[~members] = True
    held[iris] = True  # the eyeball stays; its ring is redrawn by _reveal_eyeball
    held[_contour("nose")] = True
    held[_contour("face_oval")] = True
    lips = _contour("lips")
    return _Regions(
        side_sign=sign,
        anchors=np.flatnonzero(held),
        members=np.flatnonzero(members),
        brow=_contour(f"brow_{side}"),
        eye=_cycle(f"eye_{side}"),
        lips=lips[members[lips]],
        iris=iris,
        corner=LEFT_MOUTH_CORNER if side == "left" else RIGHT_MOUTH_CORNER,
        ala=LEFT_ALA if side == "left" else RIGHT_ALA,
    )


@dataclass(frozen=True)
class _Frame:
    """Face coordinates: lateral towards the affected side and downwards, in iod units.

    The origin is the eye midpoint and the axes follow the interpupillary line, so effects keep
    their meaning under in-plane head roll and any face size.
    """

    origin: np.ndarray
    lateral: np.ndarray  # image unit vector towards the affected side
    down: np.ndarray  # image unit vector from the eyes towards the chin
    iod: float

    def to_face(self, xy: np.ndarray) -> np.ndarray:
        rel = (xy - self.origin) / self.iod
        return np.stack([rel @ self.lateral, rel @ self.down], axis=-1)

    def to_image(self, lateral_down: np.ndarray) -> np.ndarray:
        """Face-frame vectors (iod units) as image pixel vectors."""
        return self.iod * (lateral_down[..., :1] * self.lateral + lateral_down[..., 1:] * self.down)


def _frame(xy: np.ndarray, sign: float) -> _Frame:
    right, left = xy[RIGHT_IRIS], xy[LEFT_IRIS]
    axis = left - right  # towards the subject's left
    iod = float(np.linalg.norm(axis))
    if iod < MIN_IOD_PX:
        raise ValueError(f"face too small to synthesize palsy: interocular distance {iod:.1f} px")
    u = axis / iod
    down = np.array([-u[1], u[0]])
    return _Frame(origin=(right + left) / 2.0, lateral=sign * u, down=down, iod=iod)


def _effect_gains(rng: np.random.Generator | None) -> np.ndarray:
    if rng is None:
        return np.ones(N_EFFECTS)
    return rng.uniform(1.0 - JITTER, 1.0 + JITTER, size=N_EFFECTS)


def _progress(x: np.ndarray, start: float, end: float) -> np.ndarray:
    """Position along a feature from its medial (0) to its lateral (1) end."""
    return np.clip((x - start) / max(end - start, 1e-6), 0.0, 1.0)


def _fold_curve(face: np.ndarray, reg: _Regions) -> np.ndarray:
    """The nasolabial fold as a lateral-bowed curve from beside the ala to beyond the corner."""
    top = face[reg.ala] + np.array(FOLD_TOP)
    bottom = face[reg.corner] + np.array(FOLD_BOTTOM)
    bow = (top + bottom) / 2.0 + np.array([FOLD_BOW, 0.0])
    t = np.linspace(0.0, 1.0, 16)[:, None]
    return (1 - t) ** 2 * top + 2 * t * (1 - t) * bow + t**2 * bottom


def _displacements(
    face: np.ndarray, reg: _Regions, severity: float, gains: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Face-frame displacements of the control landmarks and which landmarks control the warp.

    Landmarks that are neither anchored nor moved (forehead, cheek, lid folds) follow the spline.
    """
    g_brow, g_up, g_low, g_droop, g_medial, g_smile, g_fold = severity * gains
    disp = np.zeros((N_LANDMARKS, 2))
    control = np.zeros(N_LANDMARKS, dtype=bool)
    control[reg.anchors] = True
    # Distance from the facial midline: half the lateral gap to the mirror twin (robust to yaw).
    lat = (face[:, 0] - face[mirror_index(), 0]) / 2.0

    brow = reg.brow
    t = _progress(lat[brow], lat[brow].min(), lat[brow].max())
    disp[brow, 1] = g_brow * BROW_DROP * (0.5 + 0.5 * t)
    control[brow] = True

    eye = reg.eye
    inner, outer = eye[np.argmin(lat[eye])], eye[np.argmax(lat[eye])]
    t = _progress(lat[eye], lat[inner], lat[outer])
    chord = face[outer] - face[inner]
    rel = face[eye] - face[inner]
    above = (chord[0] * rel[:, 1] - chord[1] * rel[:, 0]) < 0  # image y grows downwards
    bump = np.sin(np.pi * t)
    disp[eye, 1] = np.where(above, -g_up * LID_RAISE, g_low * LID_LOWER) * bump
    control[eye] = True

    corner = reg.corner
    stomion = (face[UPPER_LIP_INNER, 1] + face[LOWER_LIP_INNER, 1]) / 2.0
    raised = max(0.0, stomion - face[corner, 1])
    widened = max(0.0, lat[corner] - NEUTRAL_HALF_WIDTH)
    corner_move = np.array([
        -g_medial * CORNER_MEDIAL - g_smile * SMILE_LOSS * widened,
        g_droop * CORNER_DROOP + g_smile * SMILE_LOSS * raised,
    ])
    lips = reg.lips
    weight = np.clip(lat[lips] / max(lat[corner], 1e-6), 0.0, 1.0) ** 2
    disp[lips] = weight[:, None] * corner_move
    control[lips] = True

    curve = _fold_curve(face, reg)
    dist = np.linalg.norm(face[:, None, :] - curve[None, :, :], axis=-1).min(axis=1)
    band = np.zeros(N_LANDMARKS, dtype=bool)
    band[reg.members] = True
    band &= (dist < FOLD_HALF_WIDTH) & ~control
    disp[band] = g_fold * FOLD_SHIFT * np.array([1.0, 0.5])
    control[band] = True
    return disp, control


def _box(xy: np.ndarray, margin: float, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """Bounding box (x0, y0, x1, y1) of points plus a margin in pixels, clipped to the image."""
    x0, y0 = np.floor(xy.min(axis=0) - margin).astype(int)
    x1, y1 = np.ceil(xy.max(axis=0) + margin).astype(int)
    return max(x0, 0), max(y0, 0), min(x1, shape[1]), min(y1, shape[0])


def _border(roi: tuple[int, int, int, int], step: float) -> np.ndarray:
    x0, y0, x1, y1 = roi
    nx = max(2, int(np.ceil((x1 - x0) / step)) + 1)
    ny = max(2, int(np.ceil((y1 - y0) / step)) + 1)
    xs, ys = np.linspace(x0, x1 - 1, nx), np.linspace(y0, y1 - 1, ny)
    return np.concatenate([
        np.stack([xs, np.full(nx, y0)], 1), np.stack([xs, np.full(nx, y1 - 1)], 1),
        np.stack([np.full(ny, x0), ys], 1), np.stack([np.full(ny, x1 - 1), ys], 1),
    ])


def _dense_field(
    spline: RBFInterpolator, roi: tuple[int, int, int, int], step: float
) -> np.ndarray:
    """Backward displacements (h, w, 2) over the ROI: the spline on a coarse grid, resized."""
    x0, y0, x1, y1 = roi
    w, h = x1 - x0, y1 - y0
    gw, gh = max(2, int(np.ceil(w / step))), max(2, int(np.ceil(h / step)))
    # Grid nodes sit where cv2.resize expects source pixel centres.
    gx = x0 + (np.arange(gw) + 0.5) * w / gw - 0.5
    gy = y0 + (np.arange(gh) + 0.5) * h / gh - 0.5
    grid = np.stack(np.meshgrid(gx, gy), axis=-1).reshape(-1, 2)
    coarse = spline(grid).reshape(gh, gw, 2).astype(np.float32)
    return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_LINEAR)


def _warp(rgb: np.ndarray, sources: np.ndarray, targets: np.ndarray,
          frame: _Frame) -> tuple[np.ndarray, RBFInterpolator, np.ndarray]:
    """Warp the face so that each source point lands on its target.

    Returns the warped image, the backward spline (target -> source offset) and the warp's
    displacement length per pixel. The warp is zero on the border of a box around the face.
    """
    roi = _box(sources, ROI_MARGIN * frame.iod, rgb.shape)
    border = _border(roi, BORDER_STEP * frame.iod)
    nodes = np.concatenate([targets, border])
    offsets = np.concatenate([sources - targets, np.zeros_like(border)])
    spline = RBFInterpolator(nodes, offsets, kernel="thin_plate_spline", smoothing=SMOOTHING)
    x0, y0, x1, y1 = roi
    field = _dense_field(spline, roi, max(1.0, GRID_STEP * frame.iod))
    xs, ys = np.meshgrid(np.arange(x0, x1, dtype=np.float32), np.arange(y0, y1, dtype=np.float32))
    out = rgb.copy()
    out[y0:y1, x0:x1] = cv2.remap(rgb, xs + field[..., 0], ys + field[..., 1], cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REFLECT_101)
    shift = np.zeros(rgb.shape[:2], dtype=np.float32)
    shift[y0:y1, x0:x1] = np.hypot(field[..., 0], field[..., 1])
    return out, spline, shift


def _forward(spline: RBFInterpolator, xy: np.ndarray, iterations: int = 5) -> np.ndarray:
    """Where the warp moves each point: solves q + B(q) = p for the backward field B."""
    q = xy.copy()
    for _ in range(iterations):
        q = xy - spline(q)
    return q


def _flatten_fold(rgb: np.ndarray, face: np.ndarray, frame: _Frame, reg: _Regions,
                  strength: float) -> None:
    """Remove the fold's shading (mid frequencies) in a soft band, keeping fine skin texture."""
    curve = frame.origin + frame.to_image(_fold_curve(face, reg))
    pad = 3.0 * (FOLD_SHADING_SIGMA + FOLD_HALF_WIDTH) * frame.iod
    x0, y0, x1, y1 = _box(curve, pad, rgb.shape)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return
    patch = rgb[y0:y1, x0:x1].astype(np.float32)
    mask = np.zeros(patch.shape[:2], dtype=np.float32)
    line = np.round(curve - [x0, y0]).astype(np.int32)
    cv2.polylines(mask, [line], False, 1.0, thickness=max(1, round(FOLD_HALF_WIDTH * frame.iod)))
    mask = cv2.GaussianBlur(mask, (0, 0), FOLD_HALF_WIDTH * frame.iod / 2.0)
    fine = cv2.GaussianBlur(patch, (0, 0), max(0.5, FOLD_TEXTURE_SIGMA * frame.iod))
    coarse = cv2.GaussianBlur(patch, (0, 0), FOLD_SHADING_SIGMA * frame.iod)
    patch -= (strength * mask)[..., None] * (fine - coarse)
    rgb[y0:y1, x0:x1] = np.clip(np.round(patch), 0, 255).astype(np.uint8)


def _polygon_mask(poly: np.ndarray, origin: tuple[int, int], shape: tuple[int, int]) -> np.ndarray:
    """Filled polygon (float32 0/1) with vertices at 1/8 px precision."""
    mask = np.zeros(shape, dtype=np.uint8)
    pts = np.round((poly - origin) * 8).astype(np.int32)
    cv2.fillPoly(mask, [pts], 1, lineType=cv2.LINE_8, shift=3)
    return mask.astype(np.float32)


def _fill_iris(fill: np.ndarray, patch: np.ndarray, seen: np.ndarray, in_iris: np.ndarray,
               centre_row: float) -> None:
    """Paint hidden iris pixels from visible iris: mirrored about the iris centre row where the
    mirror is visible, else the nearest visible iris pixel in the same column."""
    rows, cols = np.indices(seen.shape)
    hidden = ~seen & in_iris
    mirrored = np.clip(np.round(2 * centre_row - rows).astype(int), 0, seen.shape[0] - 1)
    take = hidden & seen[mirrored, cols]
    fill[take] = patch[mirrored[take], cols[take]]
    visible = seen & in_iris
    top = visible.argmax(axis=0)
    bottom = seen.shape[0] - 1 - visible[::-1].argmax(axis=0)
    nearest = np.clip(rows, top, bottom)
    take = hidden & ~take & visible.any(axis=0)
    fill[take] = patch[nearest[take], cols[take]]


def _reveal_eyeball(out: np.ndarray, rgb: np.ndarray, old_xy: np.ndarray, new_xy: np.ndarray,
                    reg: _Regions, iod: float, shift: np.ndarray) -> None:
    """Redraw the eyeball where the lids opened.

    The eyeball does not move with the lids, so the opening shows the original eye away from the
    old lid margins (which would otherwise stay visible as a second lid line); newly exposed iris
    comes from the visible iris, newly exposed sclera takes the visible sclera's colour, shaded
    towards the lids (scleral show). This is blended in only where the warp moved things
    (``shift``: displacement length in pixels, per image pixel), so unmoved parts keep their
    detail. Without visible sclera (a closed eye) the warped lids are left as they are.
    """
    old, new = old_xy[reg.eye], new_xy[reg.eye]
    x0, y0, x1, y1 = _box(np.concatenate([old, new]), 3.0, rgb.shape)
    shape, origin = (y1 - y0, x1 - x0), (x0, y0)
    erode = 2 * max(1, round(LID_MARGIN * iod)) + 1
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (erode, erode))
    seen = cv2.erode(_polygon_mask(old, origin, shape), kernel) > 0
    centre = old_xy[reg.iris] - origin
    radius = float(np.linalg.norm(old_xy[reg.iris + 1 : reg.iris + 5] - old_xy[reg.iris], axis=1)
                   .mean())
    rows, cols = np.indices(shape)
    r2 = (cols - centre[0]) ** 2 + (rows - centre[1]) ** 2
    patch = rgb[y0:y1, x0:x1].astype(np.float32)
    sclera = patch[seen & (r2 > (1.15 * radius) ** 2)]
    if len(sclera) < 4:
        return
    opening = _polygon_mask(new, origin, shape)
    depth = cv2.distanceTransform(opening.astype(np.uint8), cv2.DIST_L2, 3)
    shade = SCLERA_SHADE + (1.0 - SCLERA_SHADE) * np.clip(depth / (SCLERA_SHADOW * iod), 0, 1)
    fill = shade[..., None] * np.percentile(sclera, SCLERA_PERCENTILE, axis=0)
    in_iris = r2 < radius**2
    if (seen & in_iris).any():
        fill[in_iris] = np.median(patch[seen & in_iris], axis=0)
        _fill_iris(fill, patch, seen, in_iris, centre[1])
    fill[seen] = patch[seen]
    moved = np.clip(shift[y0:y1, x0:x1] / max(1.0, LID_MARGIN * iod), 0.0, 1.0)
    weight = cv2.GaussianBlur(opening, (0, 0), max(0.5, 0.005 * iod)) * moved
    warped = out[y0:y1, x0:x1].astype(np.float32)
    blend = warped + weight[..., None] * (fill - warped)
    out[y0:y1, x0:x1] = np.clip(np.round(blend), 0, 255).astype(np.uint8)


def _validate(rgb: np.ndarray, points: np.ndarray, side: str, severity: float, rng) -> None:
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3 \
            or rgb.dtype != np.uint8:
        got = f"{rgb.shape} {rgb.dtype}" if isinstance(rgb, np.ndarray) else type(rgb).__name__
        raise ValueError(f"expected an RGB uint8 image of shape (H, W, 3), got {got}")
    if not isinstance(points, np.ndarray) or points.ndim != 2 \
            or points.shape[0] != N_LANDMARKS or points.shape[1] not in (2, 3):
        got = points.shape if isinstance(points, np.ndarray) else type(points).__name__
        raise ValueError(f"expected ({N_LANDMARKS}, 2) or ({N_LANDMARKS}, 3) landmarks, got {got}")
    if not np.isfinite(points).all():
        raise ValueError("landmarks contain NaN or infinite values")
    if side not in SIDES:
        raise ValueError(f"side must be one of {SIDES} (the subject's own side), got {side!r}")
    if isinstance(severity, bool) or not isinstance(severity, int | float | np.number):
        raise TypeError(f"severity must be a number in [0, 1], got {type(severity).__name__}")
    if not 0.0 <= float(severity) <= 1.0:  # also rejects NaN
        raise ValueError(f"severity must be in [0, 1], got {severity}")
    if rng is not None and not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator or None, got {type(rng).__name__}")


def synthesize_palsy(
    rgb: np.ndarray,
    points: np.ndarray,
    side: str,
    severity: float,
    rng: np.random.Generator | None = None,
    regions: Collection[str] | None = None,
) -> SynthResult:
    """A one-sided palsy of ``severity`` in [0, 1] on the subject's ``side`` of a healthy face.

    ``points`` are the face's (478, 2|3) landmarks in source pixels; the result's points are where
    those features are in the new image (z unchanged). With ``rng`` the mix of effects varies a
    little between calls; without it the output is deterministic. Severity 0 returns copies.
    ``regions`` limits the palsy to some of ``REGION_EFFECTS`` (default: every region).
    """
    _validate(rgb, points, side, severity, rng)
    unknown = set(regions or ()) - set(REGION_EFFECTS)
    if unknown:
        raise ValueError(f"unknown regions {sorted(unknown)}; choose from {list(REGION_EFFECTS)}")
    if severity == 0:
        return SynthResult(rgb=rgb.copy(), points=points.astype(np.float32))
    reg = _regions(side)
    xy = points[:, :2].astype(np.float64)
    frame = _frame(xy, reg.side_sign)
    face = frame.to_face(xy)
    gains = _effect_gains(rng)
    if regions is not None:
        keep = np.zeros(N_EFFECTS, dtype=bool)
        keep[[i for r in regions for i in REGION_EFFECTS[r]]] = True
        gains = np.where(keep, gains, 0.0)
    disp, control = _displacements(face, reg, float(severity), gains)

    out, spline, shift = _warp(rgb, xy[control], xy[control] + frame.to_image(disp[control]), frame)
    new_points = points.astype(np.float32, copy=True)
    new_points[:, :2] = _forward(spline, xy)
    new_points[reg.iris : reg.iris + 5, :2] = xy[reg.iris : reg.iris + 5]  # the eyeball stays
    _reveal_eyeball(out, rgb, xy, new_points[:, :2].astype(np.float64), reg, frame.iod, shift)
    if gains[-1] > 0:
        _flatten_fold(out, frame.to_face(new_points[:, :2]), frame, reg,
                      min(1.0, FOLD_FLATTEN * severity * gains[-1]))
    return SynthResult(rgb=out, points=new_points)


def _movement_displacements(face: np.ndarray, reg: _Regions, movement: str,
                            effort: float) -> tuple[np.ndarray, np.ndarray]:
    """Face-frame displacements (lateral towards ``reg``'s side, down) of one side's features,
    and the landmarks they control (the moving feature's whole contour)."""
    disp = np.zeros((N_LANDMARKS, 2))
    control = np.zeros(N_LANDMARKS, dtype=bool)
    lat = (face[:, 0] - face[mirror_index(), 0]) / 2.0
    if movement == "brow_raise":
        t = _progress(lat[reg.brow], lat[reg.brow].min(), lat[reg.brow].max())
        disp[reg.brow, 1] = -effort * MOVEMENT_BROW_RAISE * (0.8 + 0.2 * t)
        control[reg.brow] = True
    elif movement in MOVEMENT_CLOSURE:
        eye = reg.eye
        inner, outer = eye[np.argmin(lat[eye])], eye[np.argmax(lat[eye])]
        t = _progress(lat[eye], lat[inner], lat[outer])
        chord = face[outer] - face[inner]
        rel = face[eye] - face[inner]
        above = (chord[0] * rel[:, 1] - chord[1] * rel[:, 0]) < 0
        opening = float(np.ptp(face[eye, 1]))
        bump = np.sin(np.pi * t)
        disp[eye, 1] = np.where(above, effort * MOVEMENT_CLOSURE[movement] * opening * bump, 0.0)
        control[eye] = True
    elif movement == "nose_wrinkle":
        disp[reg.ala, 1] = -effort * MOVEMENT_ALA_RAISE
        control[reg.ala] = True
    elif movement in ("smile", "pucker"):
        move = (np.array(MOVEMENT_SMILE) if movement == "smile"
                else np.array([MOVEMENT_PUCKER, 0.0]))
        weight = np.clip(lat[reg.lips] / max(lat[reg.corner], 1e-6), 0.0, 1.0) ** 2
        disp[reg.lips] = effort * weight[:, None] * move
        control[reg.lips] = True
    else:
        raise ValueError(f"unknown movement {movement!r}; choose from {list(MOVEMENTS)}")
    return disp, control


def synthesize_movement(rgb: np.ndarray, points: np.ndarray, movement: str,
                        effort_right: float, effort_left: float) -> SynthResult:
    """A voluntary ``movement`` (one of ``MOVEMENTS``) drawn onto a resting face, each side with
    its own effort in [0, 1]: a weak side is a palsy of that side in movement (test material for
    the guided exam: the excursion each side should show is known)."""
    _validate(rgb, points, "left", 0.0, None)
    for effort in (effort_right, effort_left):
        if not 0.0 <= float(effort) <= 1.0:
            raise ValueError(f"effort must be in [0, 1], got {effort}")
    xy = points[:, :2].astype(np.float64)
    image_disp = np.zeros((N_LANDMARKS, 2))
    moved = np.zeros(N_LANDMARKS, dtype=bool)
    for side, effort in (("right", effort_right), ("left", effort_left)):
        reg = _regions(side)
        frame = _frame(xy, reg.side_sign)
        disp, controlled = _movement_displacements(frame.to_face(xy), reg, movement,
                                                   float(effort))
        image_disp += frame.to_image(disp)
        moved |= controlled
    if not np.abs(image_disp).any():
        return SynthResult(rgb=rgb.copy(), points=points.astype(np.float32))
    frame = _frame(xy, 1.0)
    held = np.zeros(N_LANDMARKS, dtype=bool)
    held[_contour("face_oval")] = True
    held[_contour("nose")] = True
    held[mirror_index() == np.arange(N_LANDMARKS)] = True
    if movement not in MOVEMENT_CLOSURE:  # closing lids pass over the iris centre
        held[[RIGHT_IRIS, LEFT_IRIS]] = True
    held[N_MESH:] &= movement not in MOVEMENT_CLOSURE
    control = moved | held
    out, spline, _ = _warp(rgb, xy[control], xy[control] + image_disp[control], frame)
    new_points = points.astype(np.float32, copy=True)
    new_points[:, :2] = _forward(spline, xy)
    return SynthResult(rgb=out, points=new_points)


def random_movement(face: SynthResult, side: str | None, severity: float,
                    rng: np.random.Generator) -> SynthResult:
    """``face`` (a ``synthesize_palsy`` result) making a voluntary movement drawn from
    ``MOVEMENT_MIX`` with a random effort: both sides alike for a control (``side`` None), the
    palsy ``side`` moving ``1 - severity`` as far as the other (palsy shows in movement: a
    one-sided smile, a brow that does not rise)."""
    if side is not None and side not in SIDES:
        raise ValueError(f"side must be one of {SIDES} or None, got {side!r}")
    movement = MOVEMENTS[int(rng.choice(len(MOVEMENTS), p=MOVEMENT_MIX))]
    effort = float(rng.uniform(*MOVEMENT_EFFORT))
    efforts = {s: effort * (1.0 - severity) if s == side else effort for s in SIDES}
    return synthesize_movement(face.rgb, face.points, movement, efforts["right"], efforts["left"])
