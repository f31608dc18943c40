"""What a modality is: one class per modality, in one file each, found by ``modalities.spec``.

A modality says how to compute its per-frame value from an aligned face, how that value looks in
a mirror, how a batch of values becomes the network's input, and which kind of encoder reads it.
Everything else (stacking frames, the cache, mirror augmentation, model inputs, the encoders) is
generic over these specs, so adding a modality is one file here plus its entry (name and
description for people) in ``palsy_core.registry.MODALITIES``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Literal, TypeVar

import numpy as np

from palsy_core.registry import MODALITY_KEYS

if TYPE_CHECKING:
    from palsy_core.face.alignment import Alignment

T = TypeVar("T")
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


@dataclass(frozen=True)
class FrameContext:
    """What every modality may read for one frame with a face."""

    rgb: np.ndarray  # the (cleaned) source frame, RGB uint8
    alignment: Alignment  # how the face maps into the aligned frame (points, matrix, size)
    face: np.ndarray  # the aligned face crop, (S, S, 3) RGB uint8


class ModalityValues:
    """Read a modality's values as an attribute (``analysis.features``): they live in
    ``values``, one entry per modality, so adding a modality touches no class that holds
    them."""

    def __getattr__(self, name: str):
        values = self.__dict__.get("values")
        if values is not None and name in MODALITY_KEYS:
            return values.get(name)  # None for a frame without a face
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")


class ModalitySpec:
    """One modality. Subclasses set ``key`` and ``encoder`` and implement the methods."""

    key: ClassVar[str]
    # The encoder that reads it: a ResNet on an image, a feed-forward net on a vector (scaled:
    # with a learned per-value scale first, for vectors of very different magnitudes), or the
    # landmark encoder on (478, 3) coordinates.
    encoder: ClassVar[Literal["image", "vector", "scaled", "landmark"]]
    image: ClassVar[bool] = False  # an (S, S, 3) uint8 image, resized to the model's size
    # A network of its own runs per frame (milliseconds, not microseconds): the live camera may
    # reuse such a modality's values from the previous frame instead of computing them anew.
    heavy: ClassVar[bool] = False

    def shape(self, size: int) -> tuple[int, ...]:
        """The stored per-frame shape for an aligned frame of ``size`` pixels."""
        raise NotImplementedError

    def compute(self, ctx: FrameContext) -> np.ndarray:
        raise NotImplementedError

    def mirror(self, batch: np.ndarray) -> np.ndarray:
        """The values of the same frames seen in a mirror (exact)."""
        raise NotImplementedError

    def model_input(self, batch: np.ndarray, normaliser) -> np.ndarray:
        """(N, ...) float32 network input; ``normaliser`` standardises expression features."""
        return np.nan_to_num(batch).astype(np.float32)

    def input_dim(self, n_features: int) -> int:
        """Width of a vector input (vector and scaled encoders); ``n_features`` is the model
        config's expression-feature count."""
        return int(np.prod(self.shape(1)))

    def empty(self, n: int, size: int) -> np.ndarray:
        """Stored values for ``n`` frames without a face: black images, NaN vectors."""
        if self.image:
            return np.zeros((n, *self.shape(size)), np.uint8)
        return np.full((n, *self.shape(size)), np.nan, np.float32)


class ImageSpec(ModalitySpec):
    """An (S, S, 3) uint8 image in the aligned frame, read by a ResNet; mirrored by a flip."""

    encoder = "image"
    image = True

    def shape(self, size: int) -> tuple[int, ...]:
        return (size, size, 3)

    def mirror(self, batch: np.ndarray) -> np.ndarray:
        return flip_images(batch)


class VectorSpec(ModalitySpec):
    """A vector of ``dim`` values per frame (its encoder scales each value first)."""

    encoder = "scaled"
    dim: ClassVar[int]

    def shape(self, size: int) -> tuple[int, ...]:
        return (self.dim,)


def process_wide(factory: Callable[[], T]) -> Callable[[], T]:
    """A getter for one object per process, created by ``factory`` on first use (thread-safe):
    the networks behind a modality load once and are shared by every caller."""
    lock, made = threading.Lock(), []

    def get() -> T:
        with lock:
            if not made:
                made.append(factory())
            return made[0]

    get.__doc__ = f"The process-wide {factory.__name__} (created on first use)."
    return get


def litert_interpreter(modality: str, error: type[Exception]) -> type:
    """ai-edge-litert's ``Interpreter`` class (the modalities' networks run on it), or ``error``
    saying which modality needs the package."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as err:
        raise error(f"the {modality!r} modality needs the ai-edge-litert package "
                    "(pip install -r requirements.txt)") from err
    return Interpreter


def image_input(images: np.ndarray, mean: np.ndarray | None = None,
                std: np.ndarray | None = None) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float32: ``x / 255``, then ``(x - mean) / std``.

    Made channels-first in the conversion to float and computed in place: the same arithmetic
    as on the float image, without its temporaries and the copy that reorders it.
    """
    x = images.transpose(0, 3, 1, 2).astype(np.float32, order="C")
    x /= 255.0
    if mean is not None:
        x -= mean[:, None, None]
        x /= std[:, None, None]
    return x


def flip_images(batch: np.ndarray) -> np.ndarray:
    """(N, S, S, 3) images flipped about the aligned midline (the image's central column)."""
    return np.ascontiguousarray(batch[:, :, ::-1])
