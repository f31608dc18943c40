"""Saving and loading trained fused models as safe, self-describing files.

A checkpoint holds only tensors and plain Python values, so it is read with
``torch.load(weights_only=True)``: opening a checkpoint from someone else can never run code.
It carries the model config, so loading needs nothing else, and the caller's ``meta`` (feature
normalisation, decision threshold, training info), returned untouched.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision
from torch import Tensor

from palsy_core.model.network import FusionModel, ModelConfig
from palsy_core.settings import __version__

FORMAT_VERSION = 1
KEYS = ("format_version", "config", "state_dict", "meta", "versions")
# Above this float32 state size, float tensors are stored as float16 so files stay under 50 MB.
HALF_ABOVE_BYTES = 40_000_000
_FP16_MAX = float(torch.finfo(torch.float16).max)


class CheckpointError(ValueError):
    """A file is missing, unreadable, unsafe or does not describe a loadable model."""


def save_checkpoint(
    path: str | Path, model: FusionModel, meta: Mapping[str, Any], precision: str = "auto"
) -> Path:
    """Write ``model`` and ``meta`` to ``path`` atomically; returns the path.

    ``precision``: "float32" (exact), "float16" (half the size; restored to float32 on load), or
    "auto" (float32 unless the float32 state exceeds ``HALF_ABOVE_BYTES``). ``meta`` may hold
    dicts, lists, strings, numbers, None, tensors and numpy values (stored as plain values).
    """
    if precision not in ("auto", "float32", "float16"):
        raise ValueError(f"precision must be 'auto', 'float32' or 'float16', got {precision!r}")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    if precision == "auto":
        size = sum(v.numel() * v.element_size() for v in state.values() if v.is_floating_point())
        precision = "float16" if size > HALF_ABOVE_BYTES else "float32"
    if precision == "float16":
        state = {k: _half(v) for k, v in state.items()}
    payload = {
        "format_version": FORMAT_VERSION,
        "config": model.config.to_dict(),
        "state_dict": state,
        "meta": _plain(meta, "meta"),
        "versions": {"palsy_core": str(__version__), "torch": str(torch.__version__),
                     "torchvision": str(torchvision.__version__)},
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    torch.save(payload, partial)
    os.replace(partial, path)  # a crash mid-write never leaves a truncated checkpoint at `path`
    return path


def load_checkpoint(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[FusionModel, dict[str, Any]]:
    """The model (float32, eval mode, on ``device``) and the ``meta`` it was saved with."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    payload = _read(path)
    if not isinstance(payload, dict):
        raise CheckpointError(f"{path} is not a palsy-fusion checkpoint (top level is "
                              f"{type(payload).__name__}, not a dict)")
    missing = [k for k in KEYS if k not in payload]
    if missing:
        raise CheckpointError(f"{path} is not a palsy-fusion checkpoint: missing keys {missing}")
    version = payload["format_version"]
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{path} has checkpoint format version {version!r}; this "
                              f"palsy-fusion reads version {FORMAT_VERSION}")
    try:
        config = ModelConfig.from_dict(payload["config"])
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{path} has an invalid model config: {err}") from err
    model = FusionModel(config)
    state = payload["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: state_dict is not a mapping of names to tensors")
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(f"{path}: weights do not match the stored config: {err}") from err
    meta = payload["meta"]
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: meta is {type(meta).__name__}, not a dict")
    return model.to(device).eval(), meta


def _read(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        detail = [ln for ln in str(err).splitlines() if "GLOBAL" in ln or "Unsupported" in ln]
        raise CheckpointError(
            f"{path} was refused: it is not a palsy-fusion checkpoint, or it holds Python objects "
            f"beyond tensors and plain values, which could run code when loaded "
            f"({'; '.join(detail) or type(err).__name__})"
        ) from err
    except (RuntimeError, OSError, EOFError, KeyError) as err:
        raise CheckpointError(
            f"{path} is not a readable torch file (corrupt or truncated?): "
            f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        ) from err


def _half(tensor: Tensor) -> Tensor:
    """float16 copy of a float tensor whose values fit float16's range; others unchanged."""
    if not tensor.is_floating_point() or tensor.numel() == 0:
        return tensor
    if tensor.abs().max().item() > _FP16_MAX:
        return tensor
    return tensor.half()


def _plain(value: Any, where: str) -> Any:
    """``value`` with numpy values and tuples turned into plain values and lists, or TypeError."""
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    if isinstance(value, Tensor):
        return value.detach().cpu()
    if value is None or type(value) in (bool, int, float, str):
        return value
    if isinstance(value, Mapping):
        bad = [k for k in value if not isinstance(k, str)]
        if bad:
            raise TypeError(f"{where}: dict keys must be strings, got {bad[:3]}")
        return {k: _plain(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise TypeError(f"{where}: {type(value).__name__} cannot go in a checkpoint; use dicts, lists, "
                    f"strings, numbers, None or tensors")
