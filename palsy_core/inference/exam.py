"""The guided exam: seven standard movements, graded per region and side, eFACE-style.

Clinicians grade palsy from a fixed set of movements (House-Brackmann, Sunnybrook, eFACE). The
exam asks for the same ones (``PROTOCOL``) and grades each facial region of each side from the
landmarks of the frames of each movement:

* **static** (at rest): how far the two sides' brow, lid opening, nasolabial line and mouth
  corner differ, ``score = 100 * max(0, 1 - |right - left| / span)``;
* **dynamic** (in movement): each side's excursion from rest and the weaker side's share of the
  stronger side's, ``score = 100 * weaker / stronger``;
* **synkinesis**: movement that should not happen: the eye narrowing during the smile and the
  pucker, the mouth corner moving while the eyes close,
  ``score = 100 * max(0, 1 - |right - left| / span)``.

Every item is 0-100 with 100 normal (as in eFACE); the region, static, dynamic and synkinesis
scores and the total are means of their items. ``ITEMS`` holds every formula and span. The grades
are computed from landmarks, not clinically validated: they follow eFACE's structure, not its
clinician-scored items.

Measurements (``features.side_measures``) are in the frame of the two eyes' centres and turned
into millimetres with the iris ruler of the resting frames. An exam comes from a live session
(``exam_live.ExamRecorder``: each movement's frames are known) or from an uploaded video of the
same exam, whose movement segments ``find_segments`` locates from landmark and blendshape motion
(landmarks alone where blendshapes are absent); the user may correct them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from palsy_core.extraction.pipeline import MediaAnalysis
from palsy_core.inference.scoring import ScoredMedia
from palsy_core.metrics import UNRELIABLE_FLAGS, file_score
from palsy_core.modalities.blendshapes import movement_level
from palsy_core.modalities.features import SIDE_MEASURES, side_measures
from palsy_core.model.novelty import UNFAMILIAR

_M = {m: i for i, m in enumerate(SIDE_MEASURES)}


@dataclass(frozen=True)
class Movement:
    key: str
    name: str
    prompt: str  # what the person is asked to do


PROTOCOL: tuple[Movement, ...] = (
    Movement("rest", "At rest", "Relax your face and look straight at the camera"),
    Movement("brow_raise", "Raise the eyebrows", "Raise your eyebrows as high as you can"),
    Movement("eyes_gentle", "Close the eyes gently", "Close your eyes gently, as if asleep"),
    Movement("eyes_tight", "Close the eyes tightly", "Squeeze your eyes shut as tight as you can"),
    Movement("nose_wrinkle", "Wrinkle the nose", "Wrinkle your nose"),
    Movement("smile", "Smile showing the teeth", "Smile broadly, showing your teeth"),
    Movement("pucker", "Pucker the lips", "Pucker your lips, as if to whistle"),
)
MOVEMENTS: dict[str, Movement] = {m.key: m for m in PROTOCOL}
REGIONS: dict[str, str] = {"brow": "Brow", "eye": "Eye", "midface": "Mid-face",
                           "mouth": "Mouth"}
KINDS = ("static", "dynamic", "synkinesis")


@dataclass(frozen=True)
class Item:
    """One graded item: where, in which movement(s), what is measured and how it is scored."""

    key: str
    name: str
    kind: str  # static, dynamic or synkinesis
    region: str
    movements: tuple[str, ...]
    unit: str  # of the per-side values
    formula: str
    span: float = 0.0  # static and synkinesis: the difference that scores 0
    minimum: float = 0.0  # dynamic: the stronger side's least excursion that can be graded
    measure: str = ""  # static: the ``SIDE_MEASURES`` entry compared between the sides


ITEMS: tuple[Item, ...] = (
    Item("brow_rest", "Brow at rest", "static", "brow", ("rest",), "mm",
         "brow height above the eye line, at the middle of the eye; "
         "100 * max(0, 1 - |R - L| / 8 mm); the lower brow is the affected side", span=8.0,
         measure="brow_height"),
    Item("eye_rest", "Lid opening at rest", "static", "eye", ("rest",), "mm",
         "palpebral fissure height at the middle of the eye; 100 * max(0, 1 - |R - L| / 4 mm); "
         "the wider opening is the affected side", span=4.0, measure="palpebral_fissure"),
    Item("midface_rest", "Nasolabial line at rest", "static", "midface", ("rest",), "mm",
         "distance from the nasal ala to the mouth corner; 100 * max(0, 1 - |R - L| / 8 mm); "
         "the longer line (flat fold, low corner) is the affected side", span=8.0,
         measure="fold_length"),
    Item("mouth_rest", "Mouth corner at rest", "static", "mouth", ("rest",), "mm",
         "mouth corner's height below the eye line; 100 * max(0, 1 - |R - L| / 8 mm); "
         "the lower corner is the affected side", span=8.0, measure="commissure_height"),
    Item("brow_raise", "Brow elevation", "dynamic", "brow", ("brow_raise",), "mm",
         "rise of the brow from rest; 100 * weaker / stronger side", minimum=1.5),
    Item("eyes_gentle", "Gentle eye closure", "dynamic", "eye", ("eyes_gentle",), "%",
         "share of the resting lid opening closed; 100 * weaker / stronger side", minimum=25.0),
    Item("eyes_tight", "Full eye closure", "dynamic", "eye", ("eyes_tight",), "%",
         "share of the resting lid opening closed; 100 * weaker / stronger side", minimum=25.0),
    Item("nose_wrinkle", "Nose wrinkle", "dynamic", "midface", ("nose_wrinkle",), "mm",
         "rise of the nasal ala from rest; 100 * weaker / stronger side", minimum=0.8),
    Item("smile", "Smile (mouth corner)", "dynamic", "mouth", ("smile",), "mm",
         "distance the mouth corner moves from rest; 100 * weaker / stronger side",
         minimum=1.5),
    Item("pucker", "Lip pucker", "dynamic", "mouth", ("pucker",), "mm",
         "mouth corner's movement towards the midline from rest; 100 * weaker / stronger side",
         minimum=1.5),
    Item("ocular_synkinesis", "Eye narrowing in smile and pucker", "synkinesis", "eye",
         ("smile", "pucker"), "%",
         "share of the resting lid opening lost during the smile and the pucker; "
         "100 * max(0, 1 - |R - L| / 40 %); the side narrowing more is affected", span=40.0),
    Item("oral_synkinesis", "Mouth corner moving with eye closure", "synkinesis", "mouth",
         ("eyes_gentle", "eyes_tight"), "mm",
         "distance the mouth corner moves from rest while the eyes close; "
         "100 * max(0, 1 - |R - L| / 4 mm); the side moving more is affected", span=4.0),
)
ITEM_BY_KEY: dict[str, Item] = {i.key: i for i in ITEMS}

# A movement's peak: its frames whose excursion (mean of both sides) reaches PEAK_SHARE of the
# largest; each side's value is the median over them.
PEAK_SHARE = 0.8
NO_SIDE_ABOVE = 95.0  # every graded item at least this: no affected side is named
GEOMETRY_FLAGS = UNRELIABLE_FLAGS - {UNFAMILIAR}  # flags that make landmark measures unusable


# --- Per-frame measures --------------------------------------------------------------------------
@dataclass(frozen=True)
class ExamFrames:
    """Per-frame side measures of an analysed video (NaN rows where there is no face)."""

    measures: np.ndarray  # (T, 2, len(SIDE_MEASURES)) right/left, eye-centre units
    mm_per_unit: np.ndarray  # (T,)
    usable: np.ndarray  # (T,) a face without pose or image quality flags
    at_rest: np.ndarray  # (T, 2, len(SIDE_MEASURES)) the same in the iris centres' frame
    mm_at_rest: np.ndarray  # (T,)

    @classmethod
    def of(cls, scored: ScoredMedia) -> ExamFrames:
        a = scored.analysis
        t = a.n_frames
        measures = np.full((t, 2, len(SIDE_MEASURES)), np.nan)
        at_rest = measures.copy()
        mm, mm_rest = np.full(t, np.nan), np.full(t, np.nan)
        for i in np.flatnonzero(a.has_face):
            try:
                measures[i], mm[i] = side_measures(a.points[i])
                at_rest[i], mm_rest[i] = side_measures(a.points[i], reference="iris")
            except ValueError:  # degenerate landmarks: treated as no face
                mm[i] = np.nan
                continue
        face = ~np.isnan(mm)
        # Pose and image flags make a frame's geometry unusable; the model's own novelty flag
        # does not (a one-sided eye closure, the sign graded, is often unlike its training faces).
        geometry = np.array([not (set(f) & GEOMETRY_FLAGS) for f in scored.frame_flags],
                            dtype=bool)
        return cls(measures, mm, face & geometry, at_rest, mm_rest)


def _frames_of(span: Sequence[int] | tuple[int, int], n: int) -> np.ndarray:
    """A segment as frame indices: a (start, stop) pair or an explicit list."""
    if isinstance(span, tuple) and len(span) == 2:
        return np.arange(max(0, span[0]), min(n, span[1]))
    return np.asarray(span, dtype=np.int64)


# --- Results -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ItemScore:
    item: Item
    right: float | None  # per-side value in item.unit (dynamic: excursion; static: position)
    left: float | None
    score: float | None  # 0-100, 100 normal; None when it cannot be graded (note says why)
    affected: str | None  # the side the item points to
    note: str = ""

    @property
    def ratio(self) -> float | None:
        """Dynamic items: the weaker side's excursion over the stronger's."""
        if self.item.kind != "dynamic" or self.score is None:
            return None
        return self.score / 100.0


@dataclass(frozen=True)
class MovementResult:
    movement: Movement
    frames: np.ndarray  # analysis frame indices
    key_frame: int | None  # the frame shown for it (its peak), None without a usable face
    p: float | None  # the fused model's P(palsy) over its frames
    start_s: float | None
    end_s: float | None


@dataclass(frozen=True)
class Exam:
    """A graded exam: items, regional and total scores, and the fused model's verdict."""

    items: tuple[ItemScore, ...]
    movements: tuple[MovementResult, ...]
    p: float | None  # fused P(palsy) over every exam frame
    p_left: float | None
    threshold: float
    verdict: str
    model_side: str | None
    mm_per_unit: float
    inconclusive: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    def item(self, key: str) -> ItemScore:
        return next(s for s in self.items if s.item.key == key)

    def mean(self, kind: str | None = None, region: str | None = None) -> float | None:
        vals = [s.score for s in self.items if s.score is not None
                and (kind is None or s.item.kind == kind)
                and (region is None or s.item.region == region)]
        return float(np.mean(vals)) if vals else None

    @property
    def total(self) -> float | None:
        return self.mean()

    @property
    def side(self) -> str | None:
        """The side the graded items point to (weighted by how far each is from 100)."""
        weight = {"right": 0.0, "left": 0.0}
        for s in self.items:
            if s.score is not None and s.affected:
                weight[s.affected] += 100.0 - s.score
        if all(s.score is None or s.score >= NO_SIDE_ABOVE for s in self.items):
            return None
        return max(weight, key=weight.get)

    def to_dict(self) -> dict:
        """A JSON-ready record of the whole exam."""

        def num(v):
            return None if v is None or not np.isfinite(v) else round(float(v), 2)

        return {
            "p_palsy": num(self.p), "verdict": self.verdict, "model_side": self.model_side,
            "threshold": num(self.threshold), "inconclusive": self.inconclusive,
            "exam_side": self.side,
            "scores": {"total": num(self.total), **{k: num(self.mean(kind=k)) for k in KINDS},
                       **{r: num(self.mean(region=r)) for r in REGIONS}},
            "items": [{"key": s.item.key, "name": s.item.name, "kind": s.item.kind,
                       "region": s.item.region, "unit": s.item.unit, "right": num(s.right),
                       "left": num(s.left), "score": num(s.score), "ratio": num(s.ratio),
                       "affected": s.affected,
                       "note": s.note, "formula": s.item.formula} for s in self.items],
            "movements": [{"key": m.movement.key, "name": m.movement.name,
                           "frames": len(m.frames), "start_s": num(m.start_s),
                           "end_s": num(m.end_s), "p_palsy": num(m.p)}
                          for m in self.movements],
            "notes": list(self.notes),
        }


# --- Grading -------------------------------------------------------------------------------------
def _peak(excursion: np.ndarray) -> np.ndarray:
    """Rows of a movement's (n, 2) per-side excursions at its peak (mean of both sides)."""
    level = np.nanmean(excursion, axis=1)
    top = np.nanmax(level)
    if not np.isfinite(top):
        return np.zeros(0, dtype=np.int64)
    if top <= 0:
        return np.array([int(np.nanargmax(level))])
    return np.flatnonzero(level >= PEAK_SHARE * top)


def _static(item: Item, rest: np.ndarray, mm: float) -> ItemScore:
    r, l_ = (float(np.median(rest[:, s, _M[item.measure]])) * mm for s in (0, 1))
    score = 100.0 * max(0.0, 1.0 - abs(r - l_) / item.span)
    higher = "right" if r > l_ else "left"
    lower = "left" if higher == "right" else "right"
    # brow: the lower one droops; eye, fold, corner height: the larger value is affected
    affected = lower if item.key == "brow_rest" else higher
    return ItemScore(item, r, l_, score, affected if r != l_ else None)


def _excursion(key: str, rows: np.ndarray, base: np.ndarray, mm: float) -> np.ndarray:
    """(n, 2) per-side excursion of frames ``rows`` (n, 2, M) from the resting ``base`` (2, M),
    in the unit of the item graded on that movement (and of the synkinesis items)."""
    d = rows - base[None]
    if key == "brow_raise":
        return d[..., _M["brow_height"]] * mm
    if key in ("eyes_gentle", "eyes_tight", "ocular"):
        rest = np.maximum(base[:, _M["palpebral_fissure"]], 1e-6)
        return -100.0 * d[..., _M["palpebral_fissure"]] / rest[None]
    if key == "nose_wrinkle":
        return -d[..., _M["ala_height"]] * mm
    if key in ("smile", "oral"):
        return np.hypot(d[..., _M["commissure_lateral"]], d[..., _M["commissure_height"]]) * mm
    if key == "pucker":
        return -d[..., _M["commissure_lateral"]] * mm
    raise KeyError(key)


def _dynamic(item: Item, exc: np.ndarray) -> ItemScore:
    if exc.size == 0:
        return ItemScore(item, None, None, None, None, "no usable face frames in this movement")
    peak = exc[_peak(exc)]
    r, l_ = (float(np.median(peak[:, s])) for s in (0, 1))
    strong = max(r, l_)
    if strong < -item.minimum:  # both sides moved clearly the other way
        return ItemScore(item, r, l_, None, None,
                         f"moved the other way ({strong:.1f} {item.unit}): check the segment "
                         "or redo it")
    if strong < item.minimum:
        return ItemScore(item, r, l_, None, None,
                         f"too little movement ({strong:.1f} {item.unit}, needs "
                         f"{item.minimum:g}): redo it")
    weak = max(0.0, min(r, l_))
    return ItemScore(item, r, l_, 100.0 * weak / strong, "right" if r < l_ else "left")


def _synkinesis(item: Item, exc: np.ndarray) -> ItemScore:
    if exc.size == 0:
        return ItemScore(item, None, None, None, None, "no usable face frames in its movements")
    r, l_ = (float(np.median(np.maximum(exc[:, s], 0.0))) for s in (0, 1))
    score = 100.0 * max(0.0, 1.0 - abs(r - l_) / item.span)
    return ItemScore(item, r, l_, score, ("right" if r > l_ else "left") if r != l_ else None)


def _grade_item(item: Item, frames: ExamFrames, seg: Mapping[str, np.ndarray],
                usable: Mapping[str, np.ndarray], rest: np.ndarray, mm: float) -> ItemScore:
    """One item from the resting frames and the frames of the movements it watches."""
    none = np.zeros(0, dtype=np.int64)
    if item.kind == "static":  # open eyes: the iris centres are the steadier reference
        return _static(item, frames.at_rest[rest], float(np.median(frames.mm_at_rest[rest])))
    if not any(len(seg.get(m, ())) for m in item.movements):
        return ItemScore(item, None, None, None, None, "not recorded: record " + " and ".join(
            MOVEMENTS[m].name.lower() for m in item.movements))
    base = np.median(frames.measures[rest], axis=0)
    if item.kind == "dynamic":
        rows = np.concatenate([usable.get(m, none) for m in item.movements])
        return _dynamic(item, _excursion(item.key, frames.measures[rows], base, mm))
    # synkinesis: what the watched region does at the peak frames of each movement
    peaks = [r[_peak(_excursion(m, frames.measures[r], base, mm))]
             for m in item.movements if len(r := usable.get(m, none))]
    rows = np.concatenate(peaks) if peaks else none
    which = "ocular" if item.key == "ocular_synkinesis" else "oral"
    return _synkinesis(item, _excursion(which, frames.measures[rows], base, mm))


def _movement_result(m: Movement, scored: ScoredMedia, frames: ExamFrames, idx: np.ndarray,
                     use: np.ndarray, rest: np.ndarray, mm: float) -> MovementResult:
    """A movement's frames, key frame (its peak; the middle one at rest) and P(palsy)."""
    key_frame = None
    if len(use) and len(rest):
        if m.key == "rest":
            key_frame = int(use[len(use) // 2])
        else:
            base = np.median(frames.measures[rest], axis=0)
            level = np.nanmean(_excursion(m.key, frames.measures[use], base, mm), axis=1)
            key_frame = int(use[int(np.nanargmax(level))] if np.isfinite(level).any()
                            else use[0])
    p = None
    p_frames = scored.score().p_frames
    face = idx[~np.isnan(p_frames[idx])] if len(idx) else idx
    if len(face):
        p = file_score(p_frames[face], [scored.frame_flags[t] for t in face])
    times = scored.analysis.timestamps[idx] if len(idx) else None
    return MovementResult(m, idx, key_frame, p,
                          None if times is None else float(times.min()),
                          None if times is None else float(times.max()))


def grade(scored: ScoredMedia, segments: Mapping[str, Sequence[int] | tuple[int, int]],
          frames: ExamFrames | None = None) -> Exam:
    """Grade an exam from a scored video and each movement's frames (``(start, stop)`` or a list
    of frame indices, by ``Movement.key``). Movements without frames are graded as missing."""
    frames = frames or ExamFrames.of(scored)
    n = scored.analysis.n_frames
    none = np.zeros(0, dtype=np.int64)
    seg = {k: _frames_of(v, n) for k, v in segments.items() if k in MOVEMENTS}
    usable = {k: v[frames.usable[v]] if len(v) else v for k, v in seg.items()}
    notes: list[str] = []
    rest = usable.get("rest", none)
    if len(rest) == 0:
        rest = np.flatnonzero(frames.usable)[:1]
        notes.append("no usable resting frames: the first usable frame stands in for rest")
    if len(rest) == 0:  # no usable face anywhere
        mm = float("nan")
        items = tuple(ItemScore(i, None, None, None, None, "no usable face") for i in ITEMS)
    else:
        mm = float(np.median(frames.mm_per_unit[rest]))
        items = tuple(_grade_item(i, frames, seg, usable, rest, mm) for i in ITEMS)
    moves = tuple(_movement_result(m, scored, frames, seg.get(m.key, none),
                                   usable.get(m.key, none), rest, mm) for m in PROTOCOL)
    notes += [f"{m.movement.name}: no frames recorded" for m in moves if not len(m.frames)]
    full = scored.score()
    return Exam(items, moves, full.p, full.p_left, full.threshold, full.verdict, full.side, mm,
                full.inconclusive, tuple(notes))


# --- Segmenting an uploaded exam video -----------------------------------------------------------
# Full-scale landmark motion (eye-centre units; closure as a share) and the blendshapes that
# show each movement.
_FULL_SCALE = {"brow_raise": 0.06, "eyes_gentle": 0.7, "eyes_tight": 0.7, "nose_wrinkle": 0.03,
               "smile": 0.06, "pucker": 0.05}
_BLENDSHAPES = {"brow_raise": ("browOuterUp", "browInnerUp"), "eyes_gentle": ("eyeBlink",),
                "eyes_tight": ("eyeBlink", "eyeSquint"), "nose_wrinkle": ("noseSneer",),
                "smile": ("mouthSmile",), "pucker": ("mouthPucker",)}
ACTIVE = 0.35  # activation above which a frame counts for a movement
BASELINE_SHARE = 0.05  # the first frames (at least 3) are taken as rest for the activations


@dataclass(frozen=True)
class Segmentation:
    """Each movement's frames found in a video, and the activation curves they came from."""

    segments: dict[str, tuple[int, int]]  # movement key -> (start, stop) frame indices
    activation: dict[str, np.ndarray]  # movement key (not rest) -> (T,) activation
    used_blendshapes: bool

    @property
    def unsure(self) -> tuple[str, ...]:
        """Movements whose segment never reaches ``ACTIVE``: not clearly seen, worth a look."""
        return tuple(k for k, (s, e) in self.segments.items()
                     if k in self.activation and self.activation[k][s:e].max(initial=0) < ACTIVE)

    def times(self, timestamps: np.ndarray) -> dict[str, tuple[float, float]]:
        return {k: (float(timestamps[s]), float(timestamps[max(s, e - 1)]))
                for k, (s, e) in self.segments.items()}


def activations(analysis: MediaAnalysis, frames: ExamFrames) -> tuple[dict[str, np.ndarray], bool]:
    """(T,) activation of each movement (0 at rest, about 1 at full effort) per frame."""
    face = np.flatnonzero(~np.isnan(frames.mm_per_unit))
    n = analysis.n_frames
    if len(face) == 0:
        return {m.key: np.zeros(n) for m in PROTOCOL[1:]}, False
    k = max(3, int(np.ceil(BASELINE_SHARE * len(face))))
    base = np.median(frames.measures[face[:k]], axis=0)
    blend = analysis.values.get("blendshapes")
    has_blend = blend is not None and np.isfinite(blend[face]).all()
    out = {}
    for m in PROTOCOL[1:]:
        exc = np.full((n, 2), np.nan)
        exc[face] = _excursion(m.key, frames.measures[face], base, 1.0)
        # the stronger side: a paralysed side does not hide that the movement was made
        level = np.fmax(exc[:, 0], exc[:, 1])
        if m.key in ("eyes_gentle", "eyes_tight"):
            level = level / 100.0
        level = np.clip(level / _FULL_SCALE[m.key], 0.0, 1.5)
        if has_blend:
            shapes = np.mean([movement_level(blend, b) for b in _BLENDSHAPES[m.key]], axis=0)
            shapes = shapes - np.median(shapes[face[:k]])  # a face that smiles at rest
            level = 0.5 * level + 0.5 * np.clip(shapes / 0.6, 0.0, 1.5)
        level = np.where(np.isnan(level), 0.0, level)
        out[m.key] = np.convolve(np.pad(level, 1, mode="edge"), np.ones(3) / 3, mode="valid")
    return out, bool(has_blend)


def find_segments(analysis: MediaAnalysis, frames: ExamFrames) -> Segmentation:
    """The frames of each movement in an exam video recorded in ``PROTOCOL`` order.

    A left-to-right path through the stages rest, movement 1, pause, movement 2, ... is chosen to
    maximise the sum over its movement frames of (activation - ``ACTIVE``) (a Viterbi pass):
    every movement gets at least one frame, in order, pauses may be empty.
    """
    act, used = activations(analysis, frames)
    n = analysis.n_frames
    moves = [m.key for m in PROTOCOL[1:]]
    if n < 1 + len(moves):
        raise ValueError(f"an exam video needs at least {1 + len(moves)} analysed frames, "
                         f"this one has {n}")
    # stages: 0 rest, then (movement, pause) pairs
    stages = ["rest"] + [s for m in moves for s in (m, f"pause:{m}")]
    s_count = len(stages)
    gain = np.zeros((n, s_count))
    for j, st in enumerate(stages):
        if st in act:
            gain[:, j] = act[st] - ACTIVE
    neg = -np.inf
    score = np.full((n, s_count), neg)
    back = np.zeros((n, s_count), dtype=np.int64)
    score[0, 0] = gain[0, 0]
    for t in range(1, n):
        for j, st in enumerate(stages):
            cands = [(score[t - 1, j], j)]
            if j >= 1:
                cands.append((score[t - 1, j - 1], j - 1))
            if st in act and j >= 2 and stages[j - 1].startswith("pause:"):
                cands.append((score[t - 1, j - 2], j - 2))  # an empty pause
            best, arg = max(cands, key=lambda c: c[0])
            score[t, j] = best + gain[t, j]
            back[t, j] = arg
    end = max((s_count - 2, s_count - 1), key=lambda j: score[n - 1, j])
    path = np.zeros(n, dtype=np.int64)
    path[-1] = end
    for t in range(n - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    segments = {}
    for j, st in enumerate(stages):
        if st.startswith("pause:"):
            continue
        idx = np.flatnonzero(path == j)
        segments[st] = (int(idx[0]), int(idx[-1]) + 1)
    return Segmentation(segments, act, used)


def segments_from_times(timestamps: np.ndarray, times: Mapping[str, tuple[float, float]]
                        ) -> dict[str, tuple[int, int]]:
    """Movement time ranges (seconds, as the user corrected them) as frame ranges."""
    out = {}
    for key, (start, end) in times.items():
        idx = np.flatnonzero((timestamps >= start - 1e-6) & (timestamps <= end + 1e-6))
        out[key] = (int(idx[0]), int(idx[-1]) + 1) if len(idx) else (0, 0)
    return out


def examine(scored: ScoredMedia,
            times: Mapping[str, tuple[float, float]] | None = None) -> tuple[Exam, Segmentation]:
    """An uploaded exam video graded: segments found (or the user's ``times``), then graded."""
    frames = ExamFrames.of(scored)
    found = find_segments(scored.analysis, frames)
    segments = found.segments if times is None else segments_from_times(
        scored.analysis.timestamps, times)
    return grade(scored, segments, frames), found
