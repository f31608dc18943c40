"""Photo-style augmentation: the same face as another camera, website or lighting would show it.

Faces from an unseen source differ from the training faces in how they were photographed: news
photos are small and soft, web photos are recompressed, clinic photos are lit from one side. A
mirror-based model reads some of that as asymmetry (a small, soft face gives noisier landmarks; a
face lit from one side has one darker half). Training samples are therefore also shown in random
photo styles, drawn the same way for both classes so that a style can never tell them apart:

- resolution: the face shrunk to an interocular distance of ``MIN_IOD_PX``-``MAX_IOD_PX`` and
  scaled back up (the detail is gone, the image size is not);
- blur (a soft lens or motion), sensor noise, JPEG recompression;
- colour: per-channel gains (white balance), gamma (exposure), saturation;
- lighting direction: a smooth brightness ramp across the face, left or right.

Each effect is drawn independently with its own probability; ``random_style`` draws a style and
``apply_style`` renders it, so the same style can be reapplied.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# Interocular distances a face is shrunk to (news photos of 250 px have about 43 px; the smallest
# face the pipeline accepts has 28, ``alignment.MIN_INTEROCULAR_PX``).
MIN_IOD_PX, MAX_IOD_PX = 30.0, 70.0
MAX_BLUR_SIGMA = 1.2  # Gaussian sigma in pixels of the image as rendered
MAX_NOISE_SIGMA = 6.0  # grey levels
JPEG_QUALITY = (25, 90)
CHANNEL_GAIN = 0.12  # each channel scaled by a factor in [1 - g, 1 + g]
GAMMA = (0.75, 1.35)
SATURATION = (0.6, 1.2)
MAX_LIGHT_RAMP = 0.45  # brightness changes by up to this fraction from one face edge to the other
# Training default: share of the synthetic controls (and as many warps) shown in a random style.
# Off: on the transfer check it did not help (models/README.md).
STYLED_SHARE = 0.0
# How often each effect is drawn.
P_EFFECT = {"resolution": 0.6, "blur": 0.4, "noise": 0.3, "jpeg": 0.7, "colour": 0.7, "light": 0.5}


@dataclass(frozen=True)
class PhotoStyle:
    """One drawn style; the neutral values (the defaults) leave the image unchanged."""

    scale: float = 1.0  # < 1: shrink by this factor and scale back up
    blur_sigma: float = 0.0
    noise_sigma: float = 0.0
    jpeg_quality: int | None = None
    gains: tuple[float, float, float] = (1.0, 1.0, 1.0)
    gamma: float = 1.0
    saturation: float = 1.0
    light_ramp: float = 0.0  # signed: > 0 brighter towards image right
    seed: int = 0  # the noise pattern

    @property
    def neutral(self) -> bool:
        return self == PhotoStyle(seed=self.seed)


def random_style(rng: np.random.Generator, interocular_px: float,
                 p_effect: dict[str, float] | None = None) -> PhotoStyle:
    """Draw a style for a face whose interocular distance in the image is ``interocular_px``."""
    if not np.isfinite(interocular_px) or interocular_px <= 0:
        raise ValueError(f"interocular distance must be a positive number of pixels, "
                         f"got {interocular_px!r}")
    p = {**P_EFFECT, **(p_effect or {})}
    unknown = set(p) - set(P_EFFECT)
    if unknown:
        raise ValueError(f"unknown style effects {sorted(unknown)}; choose from {list(P_EFFECT)}")

    def on(name: str) -> bool:
        return bool(rng.random() < p[name])

    scale = 1.0
    if on("resolution"):
        scale = min(1.0, float(rng.uniform(MIN_IOD_PX, MAX_IOD_PX)) / interocular_px)
    gains, gamma, saturation = (1.0, 1.0, 1.0), 1.0, 1.0
    if on("colour"):
        gains = tuple(float(g) for g in rng.uniform(1 - CHANNEL_GAIN, 1 + CHANNEL_GAIN, 3))
        gamma = float(rng.uniform(*GAMMA))
        saturation = float(rng.uniform(*SATURATION))
    return PhotoStyle(
        scale=scale,
        blur_sigma=float(rng.uniform(0.3, MAX_BLUR_SIGMA)) if on("blur") else 0.0,
        noise_sigma=float(rng.uniform(1.0, MAX_NOISE_SIGMA)) if on("noise") else 0.0,
        jpeg_quality=int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1)) if on("jpeg")
        else None,
        gains=gains, gamma=gamma, saturation=saturation,
        light_ramp=float(rng.uniform(-MAX_LIGHT_RAMP, MAX_LIGHT_RAMP)) if on("light") else 0.0,
        seed=int(rng.integers(2 ** 31)),
    )


def apply_style(rgb: np.ndarray, style: PhotoStyle) -> np.ndarray:
    """Render ``style`` on an RGB uint8 image (same size out). Light and colour first, as the
    scene and camera would; then the loss of detail, noise and compression, as the file would."""
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3 \
            or rgb.dtype != np.uint8:
        got = f"{rgb.shape} {rgb.dtype}" if isinstance(rgb, np.ndarray) else type(rgb).__name__
        raise ValueError(f"expected an RGB uint8 image of shape (H, W, 3), got {got}")
    if not 0.0 < style.scale <= 1.0:
        raise ValueError(f"style scale must be in (0, 1], got {style.scale}")
    h, w = rgb.shape[:2]
    img = rgb.astype(np.float32) / 255.0
    if style.light_ramp:
        x = np.linspace(-0.5, 0.5, w, dtype=np.float32)[None, :, None]
        img = img * (1.0 + style.light_ramp * x)
    img = np.clip(img * np.asarray(style.gains, np.float32), 0.0, 1.0) ** style.gamma
    if style.saturation != 1.0:
        grey = img.mean(axis=2, keepdims=True)
        img = grey + style.saturation * (img - grey)
    img = np.clip(img * 255.0, 0, 255)
    if style.scale < 1.0:
        small = (max(1, round(w * style.scale)), max(1, round(h * style.scale)))
        img = cv2.resize(cv2.resize(img, small, interpolation=cv2.INTER_AREA), (w, h),
                         interpolation=cv2.INTER_LINEAR)
    if style.blur_sigma > 0:
        img = cv2.GaussianBlur(img, (0, 0), style.blur_sigma)
    if style.noise_sigma > 0:
        noise = np.random.default_rng(style.seed).normal(0.0, style.noise_sigma, img.shape)
        img = img + noise.astype(np.float32)
    out = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    if style.jpeg_quality is not None:
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(out, cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, int(style.jpeg_quality)])
        if not ok:  # pragma: no cover - OpenCV's encoder does not fail on a valid image
            raise RuntimeError("JPEG encoding failed")
        out = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return out
