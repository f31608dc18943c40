"""palsy-fusion core: everything that is not UI. Never imports Streamlit.

The front door (:mod:`palsy_core.inference.screen`)::

    from palsy_core import Screener
    with Screener() as screener:                   # the shipped model by default
        result = screener.analyse("face.jpg")       # path, bytes + name, or RGB frames
    print(result.verdict, result.side, result.p, result.reason)

``load_model`` loads a checkpoint to pass to ``Screener`` (or to score cached analyses).
Research tool, not a diagnostic device.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from palsy_core.settings import DISCLAIMER, __version__

if TYPE_CHECKING:
    from palsy_core.inference.scoring import load_model
    from palsy_core.inference.screen import Screener, Screening

__all__ = ["DISCLAIMER", "Screener", "Screening", "__version__", "load_model"]


def __getattr__(name: str) -> Any:
    """The front door's names, imported on first use (``import palsy_core`` stays light)."""
    if name in ("Screener", "Screening"):
        from palsy_core.inference import screen

        return getattr(screen, name)
    if name == "load_model":
        from palsy_core.inference.scoring import load_model

        return load_model
    raise AttributeError(f"module 'palsy_core' has no attribute {name!r}")
