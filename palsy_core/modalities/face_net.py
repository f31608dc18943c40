"""Mirror asymmetry of a face as seen by a face-trained network (MediaPipe's landmark CNN).

A network trained on faces sees more than 478 points (skin folds, lid and lip shape), but its raw
activations also encode identity, lighting and photo style, which on small collections is what a
classifier learns. Comparing the activations of the aligned face with those of its mirror image,
position by position, cancels all of that: for a symmetric face the two inputs are the same image,
so the difference is exactly zero, and mirroring the face negates it. What remains is asymmetry.

The network is ``face_landmark.tflite`` from the mediapipe wheel (offline, frozen), run through
the ``ai-edge-litert`` interpreter with its intermediate tensors kept.
"""

from __future__ import annotations

import threading
import warnings
from pathlib import Path

import cv2
import numpy as np

from palsy_core.modalities.base import (
    FrameContext,
    VectorSpec,
    litert_interpreter,
    process_wide,
)

INPUT_SIZE = 192  # the network's input side
N_BANDS = 3  # horizontal bands (upper, middle, lower face) the absolute difference is pooled over
# Intermediate PReLU outputs read from the network: name -> (channels, spatial side at 192 px).
LAYERS: dict[str, tuple[int, int]] = {"p_re_lu_15": (128, 6), "p_re_lu_17": (128, 3)}
SIGNED_LAYER = "p_re_lu_17"
N_ABS = N_BANDS * sum(c for c, _ in LAYERS.values())
DIM = N_ABS + LAYERS[SIGNED_LAYER][0]


class FaceNetUnavailable(RuntimeError):
    """The face network or its interpreter is missing from this installation."""


def model_path() -> Path:
    """``face_landmark.tflite`` inside the installed mediapipe package."""
    import mediapipe

    return Path(mediapipe.__file__).parent / "modules" / "face_landmark" / "face_landmark.tflite"


class FaceNet:
    """Reads the chosen activations of the landmark network; one interpreter per thread.

    TFLite interpreters are not thread-safe, and the analysis pipeline computes modalities on a
    thread pool, so each thread lazily gets its own (about 2 MB each).
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path else model_path()
        if not self.path.is_file():
            raise FaceNetUnavailable(f"face network not found at {self.path}: reinstall "
                                     f"mediapipe==0.10.21 (it ships the model)")
        self._interpreter_cls = litert_interpreter("face_asym", FaceNetUnavailable)
        self._local = threading.local()

    def _interpreter(self):
        it = getattr(self._local, "interpreter", None)
        if it is None:
            with warnings.catch_warnings():  # keeping intermediate tensors is the point here
                warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors")
                it = self._interpreter_cls(model_path=str(self.path), num_threads=1,
                                           experimental_preserve_all_tensors=True)
            it.allocate_tensors()
            names = {t["name"]: t["index"] for t in it.get_tensor_details()}
            missing = [n for n in LAYERS if n not in names]
            if missing:
                raise FaceNetUnavailable(f"{self.path} lacks the layers {missing}: "
                                         f"it is not mediapipe 0.10.21's landmark model")
            self._local.interpreter = it
            self._local.input = it.get_input_details()[0]["index"]
            self._local.layers = {n: names[n] for n in LAYERS}
        return it

    def activations(self, face_rgb: np.ndarray) -> dict[str, np.ndarray]:
        """(H, W, C) activation maps of an RGB uint8 face crop."""
        it = self._interpreter()
        x = cv2.resize(face_rgb, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_AREA)
        it.set_tensor(self._local.input, (x.astype(np.float32) / 255.0)[None])
        it.invoke()
        return {n: it.get_tensor(i)[0].copy() for n, i in self._local.layers.items()}

    def asymmetry(self, face_rgb: np.ndarray) -> np.ndarray:
        """(DIM,) float32: activations of the face minus those of its mirror image, pooled.

        The first ``N_ABS`` values are mean absolute differences per channel over
        ``N_BANDS`` horizontal bands of each layer (unchanged by mirroring); the last 128 are the
        signed mean difference of the deepest layer (negated by mirroring), which says which side.
        Both inputs are the aligned crop, whose vertical midline is the eye midpoint.
        """
        own = self.activations(face_rgb)
        mirrored = self.activations(np.ascontiguousarray(face_rgb[:, ::-1]))
        parts = []
        for name in LAYERS:
            diff = np.abs(own[name] - mirrored[name])
            parts += [band.mean(axis=(0, 1)) for band in np.array_split(diff, N_BANDS, axis=0)]
        parts.append((own[SIGNED_LAYER] - mirrored[SIGNED_LAYER]).mean(axis=(0, 1)))
        return np.concatenate(parts).astype(np.float32)


def mirror_asymmetry(values: np.ndarray) -> np.ndarray:
    """The asymmetry vectors (..., DIM) of the mirrored faces: the signed part changes sign."""
    out = np.array(values, dtype=np.float32, copy=True)
    out[..., N_ABS:] *= -1.0
    return out


shared_face_net = process_wide(FaceNet)


class FaceNetAsymmetry(VectorSpec):
    """Modality 5: the face network's activations on the face minus on its mirror."""

    key = "face_asym"
    dim = DIM
    heavy = True  # a network of its own per frame

    def compute(self, ctx: FrameContext) -> np.ndarray:
        return shared_face_net().asymmetry(ctx.face)

    def mirror(self, batch: np.ndarray) -> np.ndarray:
        return mirror_asymmetry(batch)


SPEC = FaceNetAsymmetry()
