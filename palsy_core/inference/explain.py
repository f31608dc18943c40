"""Grad-CAM for the image branches: where in the aligned face or line image the palsy logit looks.

The heatmap is computed for the fused palsy logit with only the ``enabled`` modalities, so it
explains the prediction the user is looking at. Only enabled inputs are read by the model, so no
gradient (and no value) of a disabled modality's input can reach the map. Gradients are taken with
``torch.autograd.grad`` on the hooked activation alone, so the shared model's parameters never
accumulate ``.grad``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence

import cv2
import numpy as np
import torch
from torch import Tensor

from palsy_core.extraction.pipeline import MediaAnalysis
from palsy_core.inference.scoring import LoadedModel, ScoredMedia
from palsy_core.model.batches import FrameArrays, analysis_arrays, to_inputs
from palsy_core.model.network import FusionModel

# Dashboard sessions share one model, and a hook fires on every thread's forward pass (another
# session's scoring included): it keeps only its own thread's activation, and hooked passes run
# one at a time.
_HOOK_LOCK = threading.Lock()


def cam_from_inputs(
    model: FusionModel, inputs: Mapping[str, Tensor], modality: str, enabled: Sequence[str]
) -> np.ndarray:
    """(B, h, w) Grad-CAM maps in [0, 1] at the hooked layer's resolution.

    ``inputs`` are model inputs (``batches.to_inputs``); only ``enabled`` ones are read.
    """
    if modality not in enabled:
        raise ValueError(f"Grad-CAM of {modality!r} needs it among the enabled modalities "
                         f"{list(enabled)}")
    layer = model.cam_layer(modality)
    captured: list[Tensor] = []
    owner = threading.get_ident()

    def keep(_module, _inputs, out: Tensor) -> None:
        if threading.get_ident() == owner:
            captured.append(out)

    with _HOOK_LOCK:
        handle = layer.register_forward_hook(keep)
        try:
            with torch.enable_grad():
                logit = model(inputs, enabled=enabled).palsy_logit
                (grads,) = torch.autograd.grad(logit.sum(), captured[0])
        finally:
            handle.remove()
    acts = captured[0].detach()
    # The image branches read the face minus its mirror image, so a region's evidence can come
    # with either sign (the same droop is positive on one half and negative on the other): the
    # map shows the magnitude of the weighted activations, not only their positive part.
    cam = (grads.mean(dim=(2, 3), keepdim=True) * acts).sum(dim=1).abs()
    peak = cam.flatten(1).amax(dim=1).clamp_min(1e-12)[:, None, None]
    return (cam / peak).numpy()


def one_frame(analysis: MediaAnalysis, t: int, image_size: int) -> FrameArrays:
    """Row ``t`` of an analysis as model-ready arrays (images resized to the model's size)."""
    if not analysis.has_face[t]:
        raise ValueError(f"frame {t} of {analysis.name} has no face to explain")
    return analysis_arrays(analysis, image_size, np.array([t]))


def grad_cam(
    loaded: LoadedModel,
    source: ScoredMedia | MediaAnalysis,
    frame: int,
    modality: str,
    enabled: Sequence[str] | None = None,
) -> np.ndarray:
    """Heatmap in [0, 1] over the aligned image (the analysis' crop size) of frame ``frame``
    (a row of the analysis), for image modality ``modality`` and the fused palsy logit of the
    ``enabled`` modalities (default: all the model has)."""
    analysis = source.analysis if isinstance(source, ScoredMedia) else source
    model = loaded.model
    enabled = tuple(model.config.modalities if enabled is None else enabled)
    arrays = one_frame(analysis, frame, model.config.image_size)
    inputs = to_inputs(arrays, loaded.normaliser, enabled)
    cam = cam_from_inputs(model, inputs, modality, enabled)[0]
    size = analysis.rgb.shape[1]
    return np.clip(cv2.resize(cam, (size, size), interpolation=cv2.INTER_CUBIC), 0.0, 1.0)


def overlay_heatmap(rgb: np.ndarray, heatmap: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """A jet-coloured heatmap blended over an RGB uint8 image (the map is resized to fit)."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"rgb must be an (H, W, 3) uint8 image, got {rgb.dtype} {rgb.shape}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    heat = cv2.resize(np.asarray(heatmap, np.float32), (rgb.shape[1], rgb.shape[0]))
    colour = cv2.applyColorMap(np.uint8(np.clip(heat, 0, 1) * 255), cv2.COLORMAP_JET)
    colour = cv2.cvtColor(colour, cv2.COLOR_BGR2RGB).astype(np.float32)
    out = (1.0 - alpha) * rgb.astype(np.float32) + alpha * colour
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
