"""The front door: from a photo, a video or a list of frames to one screening result.

    from palsy_core import Screener

    with Screener() as screener:              # the shipped model, or Screener("my_model.pt")
        result = screener.analyse("clip.mp4")  # a path, the file's bytes, or RGB frames
    result.verdict, result.side, result.p      # "palsy suspected", "left", 0.91
    result.reason                              # why it is "inconclusive", else None
    result.caution                             # a verdict on a turned head says so, else None
    result.frames                              # one row per analysed frame (pandas)
    result.subsets()                           # the file score of every reported modality subset
    result.to_dict()                           # the record ``predict --json`` prints

The command line, the dashboard and the tests call this; the per-stage functions below it
(``pipeline.analyse_media``, ``scoring.ScoredMedia``) stay available for the bench, which times
each stage, and for training, which scores cached analyses.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from palsy_core.extraction.extract import frame_cap_reached
from palsy_core.extraction.pipeline import (
    FrameResult,
    MediaAnalysis,
    Settings,
    analyse_frame,
    analyse_media,
)
from palsy_core.face.landmarks import LandmarkDetector, make_detector
from palsy_core.inference.report import frame_table
from palsy_core.inference.scoring import LoadedModel, ScoredMedia, SubsetScore, load_model, summary
from palsy_core.io.media import MediaError, media_kind
from palsy_core.model.fusion import report_subsets
from palsy_core.settings import DEFAULT_MODEL

Media = str | Path | bytes | Sequence[np.ndarray]
FRAMES_FPS = 5.0  # the timestamps given to a list of frames: the default sampling rate


@dataclass
class Screening:
    """One analysed photo, video or frame sequence, scored by one model."""

    name: str
    scored: ScoredMedia
    frame_cap_reached: bool = False

    @property
    def analysis(self) -> MediaAnalysis:
        return self.scored.analysis

    def score(self, enabled: Sequence[str] | None = None) -> SubsetScore:
        """The result with only the ``enabled`` modalities (default: all of the model's)."""
        return self.scored.score(enabled)

    @property
    def verdict(self) -> str:
        return self.score().verdict

    @property
    def side(self) -> str | None:
        return self.score().side

    @property
    def p(self) -> float | None:
        return self.score().p

    @property
    def reason(self) -> str | None:
        return self.score().inconclusive

    @property
    def caution(self) -> str | None:
        """Why a verdict given is less sure (a turned head, ``metrics.turn_caution``), else None."""
        return self.score().caution

    @property
    def frames(self) -> pd.DataFrame:
        """One row per analysed frame: time, quality flags, pose, P(palsy) of the verdict's
        fusion (``p_fused``) and per modality, P(left) and every Emotrics measure."""
        return frame_table(self.scored, self.scored.loaded.verdict_modalities)

    def subsets(self) -> dict[str, SubsetScore]:
        """The fused model, each modality alone and each leave-one-out subset, by name."""
        return {s.name: s for s in map(self.score, report_subsets(self.scored.modalities))}

    def to_dict(self) -> dict:
        """The JSON-ready record: verdict, reason, side, P per subset, frames and quality."""
        record = summary(self.scored, report_subsets(self.scored.modalities))
        return {"path": self.name, **{k: _clean(v) for k, v in record.items()},
                "frame_cap_reached": self.frame_cap_reached}


class Screener:
    """A loaded model plus a photo detector, kept for many calls; close it (or use ``with``)."""

    def __init__(self, model: LoadedModel | str | Path | None = None,
                 settings: Settings | None = None) -> None:
        self.model = model if isinstance(model, LoadedModel) else load_model(
            DEFAULT_MODEL if model is None else model)
        self.settings = settings or Settings()
        self._detector: LandmarkDetector | None = None

    def analyse(self, media: Media, name: str | None = None,
                on_frame: Callable[[FrameResult], None] | None = None) -> Screening:
        """Analyse and score a file path, a file's bytes (``name`` gives its type) or a list of
        RGB uint8 frames of one sequence. Bad media raise ``MediaError`` with the reason."""
        if isinstance(media, (str, Path, bytes, bytearray)):
            if isinstance(media, (bytes, bytearray)):
                if not name:
                    raise ValueError("give the file's name with its bytes (its extension tells "
                                     "a photo from a video)")
                source: Path | bytes = bytes(media)
            else:
                name, source = name or str(media), Path(media)
            # Photos share one detector across calls; a video gets its own tracking one.
            photo = media_kind(name) == "photo"
            analysis = analyse_media(source, name, self.settings, on_frame=on_frame,
                                     detector=self._photo_detector() if photo else None)
        else:
            name = name or "frames"
            analysis = self._frames(list(media), name, on_frame)
        return Screening(name, ScoredMedia(self.model, analysis),
                         frame_cap_reached(analysis, self.settings))

    def _frames(self, frames: list[np.ndarray], name: str,
                on_frame: Callable[[FrameResult], None] | None) -> MediaAnalysis:
        """A frame sequence, tracked as a video is (one face followed from frame to frame)."""
        if not frames:
            raise ValueError("no frames to analyse")
        results = []
        with make_detector(self.settings.task_model, tracking=len(frames) > 1) as detector:
            for i, rgb in enumerate(frames):
                fr = analyse_frame(np.ascontiguousarray(rgb), detector, self.settings, i,
                                   i / FRAMES_FPS)
                results.append(fr)
                if on_frame is not None:
                    on_frame(fr)
        kind = "video" if len(frames) > 1 else "photo"
        return MediaAnalysis.from_frames(name, kind, self.settings, results)

    def _photo_detector(self) -> LandmarkDetector:
        if self._detector is None:
            self._detector = make_detector(self.settings.task_model)
        return self._detector

    def close(self) -> None:
        if self._detector is not None:
            self._detector.close()
            self._detector = None

    def __enter__(self) -> Screener:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class ScreenJob:
    """``predict`` for the batch engines: one file's ``Screening.to_dict()`` record, or its
    ``error``. ``model`` is a loaded model or a checkpoint path (each worker loads it once)."""

    def __init__(self, model: LoadedModel | str | Path, settings: Settings | None = None) -> None:
        self.model = model
        self.settings = settings or Settings()
        self._screener: Screener | None = None

    def __repr__(self) -> str:
        return "ScreenJob()"

    def setup(self) -> None:
        if self._screener is None:
            self._screener = Screener(self.model, self.settings)

    def __call__(self, path: str | Path) -> dict:
        try:
            return self._screener.analyse(Path(path), str(path)).to_dict()
        except (MediaError, OSError) as exc:
            return {"path": str(path), "error": str(exc)}

    def close(self) -> None:
        if self._screener is not None:
            self._screener.close()
            self._screener = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_screener": None}  # each worker builds its own


def _clean(value):
    """NaN as None, so the record is valid JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
