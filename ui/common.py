"""Model loading, the disclaimer and other pieces every page uses."""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from palsy_core.checkpoint import CheckpointError
from palsy_core.scoring import LoadedModel, load_model

DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "models" / "default.pt"
DISCLAIMER = ("Research tool, not a diagnostic device. It must not be used to diagnose, grade or "
              "treat facial palsy.")


def model_path() -> Path:
    """``$PALSY_MODEL`` or the shipped ``models/default.pt``."""
    return Path(os.environ.get("PALSY_MODEL") or DEFAULT_MODEL)


@st.cache_resource(show_spinner="Loading the model…")
def _load(path: str, mtime: float) -> LoadedModel:
    return load_model(path)


def get_model() -> LoadedModel | None:
    """The loaded model (once per process and file version), or None after showing why."""
    path = model_path()
    try:
        return _load(str(path), path.stat().st_mtime)
    except FileNotFoundError:
        st.error(f"No trained model at `{path}`. Train one with `make train` or set PALSY_MODEL.")
    except CheckpointError as exc:
        st.error(f"The model file cannot be used: {exc}")
    return None


def disclaimer() -> None:
    st.warning(DISCLAIMER, icon=":material/warning:")
