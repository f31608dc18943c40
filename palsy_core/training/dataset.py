"""Training samples: real frames from extracted files plus synthetic one-sided palsy.

Each frame with a face is one sample; every file carries equal total weight however many frames it
has. Synthetic palsy is made from healthy faces (``palsy_core.face.synth``) and then run through the
same detection and modality pipeline as real data, so the model sees detector output, not the
warp's own landmarks. Synthetic samples are only ever used for training.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from palsy_core.extraction.pipeline import MediaAnalysis, Settings, analyse_frame
from palsy_core.face.alignment import INTEROCULAR, align
from palsy_core.face.landmarks import make_detector
from palsy_core.face.style import STYLED_SHARE, apply_style, random_style
from palsy_core.face.synth import random_movement, synthesize_palsy
from palsy_core.io.manifest import ManifestRow
from palsy_core.model.batches import FrameArrays, analysis_arrays
from palsy_core.settings import SIDES

SIDE_CODES = {None: -1, "right": 0, "left": 1}

# Synthetic samples shown in a voluntary movement (``synthetic_samples``' ``movement``,
# ``synth.random_movement``): the movement draws have their own random stream.
MOVEMENT_SALT = 7919  # with a share of 0 every sample is as it was without movements
MOVEMENT_SHARE = 0.5  # default share of warps (and of controls) shown in a movement


@dataclass
class SampleSet:
    arrays: FrameArrays
    y: np.ndarray  # (N,) 1 = palsy
    side: np.ndarray  # (N,) -1 unknown, 0 right, 1 left (subject's side)
    weight: np.ndarray  # (N,) each file sums to 1
    file_id: np.ndarray  # (N,) index into ``rows``
    synthetic: np.ndarray  # (N,) bool
    rows: list[ManifestRow] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.y)

    @property
    def subjects(self) -> np.ndarray:
        return np.array([self.rows[i].subject for i in self.file_id], dtype=object)

    def take(self, idx: np.ndarray) -> SampleSet:
        return SampleSet(self.arrays.take(idx), self.y[idx], self.side[idx], self.weight[idx],
                         self.file_id[idx], self.synthetic[idx], self.rows)

    @staticmethod
    def concat(a: SampleSet, b: SampleSet) -> SampleSet:
        """Join two sets built over the same ``rows``."""
        return SampleSet(FrameArrays.concat([a.arrays, b.arrays]), np.concatenate([a.y, b.y]),
                         np.concatenate([a.side, b.side]), np.concatenate([a.weight, b.weight]),
                         np.concatenate([a.file_id, b.file_id]),
                         np.concatenate([a.synthetic, b.synthetic]), a.rows)


def real_samples(
    rows: Sequence[ManifestRow], analyses: dict[Path, MediaAnalysis], image_size: int
) -> SampleSet:
    """All face frames of the rows that were extracted (rows without a face contribute none)."""
    parts, y, side, weight, fid = [], [], [], [], []
    for i, row in enumerate(rows):
        res = analyses.get(row.path)
        if res is None or not res.has_face.any():
            continue
        idx = np.flatnonzero(res.has_face)
        parts.append(analysis_arrays(res, image_size, idx))
        n = len(idx)
        y += [row.y] * n
        side += [SIDE_CODES[row.side]] * n
        weight += [1.0 / n] * n
        fid += [i] * n
    if not parts:
        raise ValueError("no face was found in any file: nothing to train on")
    return SampleSet(FrameArrays.concat(parts), np.array(y, np.float32),
                     np.array(side, np.int8), np.array(weight, np.float32),
                     np.array(fid, np.int64), np.zeros(len(y), bool), list(rows))


def _variant_seed(row: ManifestRow, k: int, seed: int) -> int:
    return int(hashlib.sha256(f"{row.rel}|{k}|{seed}".encode()).hexdigest()[:8], 16)


def synthetic_samples(
    rows: Sequence[ManifestRow],
    analyses: dict[Path, MediaAnalysis],
    image_size: int,
    variants: int = 4,
    controls: int = 1,
    seed: int = 0,
    severity: tuple[float, float] = (0.4, 1.0),
    styled: float = STYLED_SHARE,
    movement: float = MOVEMENT_SHARE,
    progress: bool = True,
) -> SampleSet:
    """Synthetic one-sided palsy from every healthy row: ``variants`` per file, alternating sides.

    The warp is applied to the aligned face crop, then detection and every modality are recomputed
    on the result. ``controls`` extra copies per file go through the same resampling and
    re-detection with severity 0 and keep the healthy label, so resampling artefacts cannot
    separate the classes. A share ``styled`` of the controls, and as many warps, are then shown in
    a random photo style (``palsy_core.face.style``: resolution, blur, noise, JPEG, colour,
    lighting direction), so that a healthy-only source's look is seen with both labels. A share
    ``movement`` of the warps and of the controls is shown in a voluntary movement
    (``synth.random_movement``: the warp's side moving less, a control's sides equally), so
    that palsy is also seen in movement and a strong symmetric expression with both labels'
    resampling. Variants whose warped face is not re-detected are skipped.
    """
    if not 0.0 <= movement <= 1.0:
        raise ValueError(f"movement must be a share in [0, 1], got {movement}")
    settings = Settings(clean_marks=False)
    frames, y, y_side, fid = [], [], [], []
    healthy = [(i, r) for i, r in enumerate(rows) if r.label == "healthy"
               and r.path in analyses and analyses[r.path].has_face.any()]
    with make_detector(tracking=False) as det:
        for j, (i, row) in enumerate(tqdm(healthy, desc="synthetic palsy", unit="file",
                                          disable=not progress)):
            res = analyses[row.path]
            face_idx = np.flatnonzero(res.has_face)
            for k in range(variants + controls):
                rng = np.random.default_rng(_variant_seed(row, k, seed))
                t = int(face_idx[rng.integers(len(face_idx))])
                aligned = align(res.points[t], res.rgb.shape[1]).points
                palsy = k < variants
                # Sides alternate over variants and, for an odd count, over files too.
                side = SIDES[(k + j * variants) % 2] if palsy else None
                sev = float(rng.uniform(*severity)) if palsy else 0.0
                out = synthesize_palsy(res.rgb[t], aligned, side or "left", sev, rng=rng)
                moves = np.random.default_rng(_variant_seed(row, k, seed + MOVEMENT_SALT))
                if movement > 0 and moves.random() < movement:
                    out = random_movement(out, side, sev, moves)
                rgb = out.rgb
                # Controls are styled with probability ``styled``, each warp with the probability
                # that gives as many styled warps as styled controls: a style never hints a label.
                if rng.random() < (styled * controls / variants if palsy else styled):
                    rgb = apply_style(rgb, random_style(rng, INTEROCULAR * rgb.shape[1]))
                fr = analyse_frame(rgb, det, settings)
                if fr.has_face:
                    frames.append(fr)
                    y.append(float(palsy))
                    y_side.append(SIDE_CODES[side])
                    fid.append(i)
    if not frames:
        raise ValueError("no synthetic palsy sample could be made (no healthy face detected)")
    stacked = MediaAnalysis.from_frames("synthetic", "photo", settings, frames)
    arrays = analysis_arrays(stacked, image_size, np.arange(len(frames)))
    n = len(frames)
    counts = np.bincount(np.array(fid), minlength=len(rows)).astype(np.float32)
    return SampleSet(arrays, np.array(y, np.float32), np.array(y_side, np.int8),
                     1.0 / counts[np.array(fid)], np.array(fid, np.int64), np.ones(n, bool),
                     list(rows))
