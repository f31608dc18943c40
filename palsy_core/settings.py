"""Names and defaults the whole project shares, each written once.

The core, the command line, the dashboard and the bench read these from here; none of them keeps
a copy.
"""

from __future__ import annotations

from pathlib import Path

__version__ = "0.1.0"
DISCLAIMER = ("Research tool, not a diagnostic device. It must not be used to diagnose, grade or "
              "treat facial palsy.")
DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "models" / "default.pt"
SIDES = ("left", "right")  # the subject's own sides


def artifacts_dir(model: str | Path) -> Path:
    """Where training writes a model's CV and transfer artifacts: ``NAME_cv/`` beside it."""
    model = Path(model)
    return model.with_name(model.stem + "_cv")
