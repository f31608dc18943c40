"""Model loading, the disclaimer and other pieces every page uses."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from palsy_core.inference.scoring import LoadedModel, load_model
from palsy_core.model.checkpoint import CheckpointError
from palsy_core.registry import modality
from palsy_core.settings import DEFAULT_MODEL, DISCLAIMER


@dataclass(frozen=True)
class PageInfo:
    """One dashboard page: its script, its title in the sidebar, its link on Home."""

    path: str  # relative to the repository root, where ``streamlit run app.py`` runs
    title: str  # in the sidebar and the browser tab
    label: str  # the link text on Home
    icon: str
    url_path: str
    help: str


HOME = PageInfo("views/0_Home.py", "Home", "Home", ":material/home:", "", "")
PAGES = (
    PageInfo("views/1_Analyse.py", "Analyse", "Analyse a video or photo", ":material/movie:",
             "Analyse", "Verdict, affected side, per-frame timeline, overlays and a report."),
    PageInfo("views/2_Live.py", "Live camera", "Live camera", ":material/videocam:", "Live",
             "Landmarks or line segments on the webcam stream with a rolling score."),
    PageInfo("views/3_Ablation.py", "Modality ablation", "Modality ablation", ":material/tune:",
             "Ablation", "Switch modalities on and off, and sweep synthetic palsy severity."),
    PageInfo("views/4_Evaluation.py", "Evaluation", "Evaluation", ":material/analytics:",
             "Evaluation",
             "Transfer to unseen sources, cross-validated metrics, curves, and your own data."),
    PageInfo("views/5_Progress.py", "Progress", "Recovery over time", ":material/timeline:",
             "Progress", "Dated photos or videos of one person: P(palsy) and measurements over "
             "time, with a trend."),
    PageInfo("views/6_Exam.py", "Exam video", "Guided exam from a video",
             ":material/assignment:", "Exam",
             "A recording of the seven standard movements graded per region and side "
             "(eFACE-style), with an HTML and PDF report. Live prompts: Live camera page."),
)


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


def verdict_note(loaded: LoadedModel) -> str:
    """One sentence on which modalities the verdict fuses and why (empty when it fuses all)."""
    left_out = [m for m in loaded.modalities if m not in loaded.verdict_modalities]
    if not left_out:
        return ""
    names = " and ".join(modality(m).name for m in left_out)
    return (f"The verdict fuses {len(loaded.verdict_modalities)} of the "
            f"{len(loaded.modalities)} modalities: without {names}, the choice that carried over "
            "best to photo sources the model never saw (leave-one-source-out check, model card). "
            f"Switch {names} on to see the full fusion.")
