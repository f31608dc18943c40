"""Scoring a camera stream frame by frame: the live page and the throughput benchmark share it.

Each frame goes through ``pipeline.analyse_frame`` (the path every file takes), then only the
enabled modalities are encoded and fused, so a live score means what a file score means. The
stream's P(palsy) is ``metrics.file_score`` over a rolling window of recent frames, so frames
without a face or with quality flags count exactly as they do for a video.

Settings may change while frames are processed from another thread (streamlit-webrtc calls the
frame callback from its own worker thread while the page's toggles run in the script thread), so
``enabled`` and ``overlay`` are read and written under a lock.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import cv2
import numpy as np

from palsy_core.extraction.pipeline import FrameResult, Settings, analyse_frame
from palsy_core.face.landmarks import LandmarkDetector, make_detector
from palsy_core.inference.scoring import (
    LoadedModel,
    ParallelEncoder,
    mirror_averaged,
    torch_threads,
)
from palsy_core.metrics import Decided, file_score, inconclusive_reason, turn_caution
from palsy_core.modalities import specs
from palsy_core.modalities.line_segments import draw_landmarks, overlay_line_segments
from palsy_core.model.batches import FrameArrays, frame_arrays, mirror_arrays, to_inputs
from palsy_core.model.novelty import UNFAMILIAR

NO_FACE = "no face in view"

Overlay = Literal["lines", "landmarks", "none"]
OVERLAYS: tuple[str, ...] = ("lines", "landmarks", "none")
# Weight of the newest frame in the latency average: about the last 10 frames dominate.
LATENCY_EMA = 0.2
RATE_WINDOW = 30  # frames over which the scoring rate is measured (wall clock)
# The heavy modalities (those running networks of their own: face-network and blendshape
# asymmetry) are computed on every HEAVY_EVERY-th face frame and reused in between; landmarks,
# the images and the model run on every frame. A face moves little in 1/15 s, and these two
# views cost about a third of a frame's work.
HEAVY_EVERY = 2


@dataclass(frozen=True)
class LiveResult(Decided):
    """The score after one frame. Probabilities are None when there is nothing to score."""

    index: int
    p_frame: float | None  # this frame's P(palsy); None without a face
    p_rolling: float | None  # P(palsy) over the window's face frames; None when none had a face
    p_left_rolling: float | None  # P(affected side = subject's left) over the same frames
    threshold: float  # decision threshold of the enabled modality subset
    enabled: tuple[str, ...]
    # Frames scored per second over the last RATE_WINDOW frames, by the wall clock: what the
    # stream actually gets, waits between frames included (1 / latency before two frames).
    fps: float
    latency_ms: float  # this frame's processing time
    flags: tuple[str, ...]  # this frame's quality flags ("no_face", "pose", "blur", ...)
    window_faces: int  # frames with a face in the window
    # Of those, the frames whose heavy modalities (their own networks) were computed on that
    # frame; the rest reused the previous frame's (``LiveScorer(heavy_every=...)``).
    window_fresh: int = 0

    inconclusive: str | None = None  # why the window gives no verdict (every frame unreliable)
    caution: str | None = None  # a verdict given on a turned head (``metrics.turn_caution``)

    def _decision_inputs(self):
        return (self.p_rolling, self.p_left_rolling, self.threshold, NO_FACE,
                self.inconclusive)


class LiveScorer:
    """One stream's detector, model and rolling window; feed it frames with :meth:`process`.

    The tracking detector is built once here (never per frame) and released by :meth:`close`.
    ``task_model`` (a ``face_landmarker.task`` path) overrides ``settings.task_model`` and makes
    the Tasks FaceLandmarker the landmark detector. The enabled encoders run side
    by side (``scoring.ParallelEncoder``), and ``torch_threads`` caps the intra-op threads of
    each (None: torch's threads shared out): a single small batch gains little from threads, and
    when the cores are busy (MediaPipe, video codecs, other sessions) their synchronisation makes
    it many times slower.
    """

    def __init__(
        self,
        loaded: LoadedModel,
        settings: Settings | None = None,
        enabled: Sequence[str] | None = None,
        window: int = 30,
        overlay: Overlay = "lines",
        task_model: str | None = None,
        torch_threads: int | None = 1,
        heavy_every: int = HEAVY_EVERY,
    ) -> None:
        if window < 1:
            raise ValueError(f"window must be at least 1 frame, got {window}")
        if heavy_every < 1:
            raise ValueError(f"heavy_every must be at least 1 frame, got {heavy_every}")
        self.heavy_every = heavy_every
        self._heavy_keys = tuple(k for k, s in specs().items() if s.heavy)
        self._reusable: dict[str, np.ndarray] | None = None  # the last fresh heavy values
        self._reused_in_a_row = 0
        self.loaded = loaded
        self.settings = settings or Settings()
        self.torch_threads = torch_threads
        self.detector: LandmarkDetector = make_detector(task_model or self.settings.task_model,
                                                        tracking=True)
        self.modalities = tuple(loaded.modalities)
        self._lock = threading.Lock()  # guards the settings, the window and the latest result
        self._process_lock = threading.Lock()  # one frame at a time: detectors are not thread-safe
        # (P(palsy), P(left), flags, heavy views fresh, head yaw) per frame
        self._window: deque[tuple[float, float, tuple[str, ...], bool, float]] = deque(
            maxlen=window)
        try:
            self._enabled = self._check_enabled(enabled)
            self._overlay = self._check_overlay(overlay)
        except (TypeError, ValueError):
            self.detector.close()
            raise
        self._encoder = ParallelEncoder(loaded.model, threads_each=torch_threads)
        self._latency_ema: float | None = None
        self._finished: deque[float] = deque(maxlen=RATE_WINDOW)  # when frames were done
        self._latest: LiveResult | None = None
        self._count = 0
        self._start = time.monotonic()
        self._closed = False
        self._observer: Callable[[FrameResult], None] | None = None

    # --- settings (any thread) ----------------------------------------------------------------

    @property
    def enabled(self) -> tuple[str, ...]:
        with self._lock:
            return self._enabled

    def set_enabled(self, enabled: Sequence[str] | None) -> None:
        """Score with these modalities from the next frame on (None: the verdict's).

        A change clears the rolling window: earlier frames were scored by another subset.
        """
        new = self._check_enabled(enabled)
        with self._lock:
            if new != self._enabled:
                self._enabled = new
                self._window.clear()

    @property
    def overlay(self) -> str:
        with self._lock:
            return self._overlay

    def set_overlay(self, overlay: Overlay) -> None:
        new = self._check_overlay(overlay)
        with self._lock:
            self._overlay = new

    def set_observer(self, observer: Callable[[FrameResult], None] | None) -> None:
        """Call ``observer`` with every analysed frame (quality flags included), in the thread
        that processes frames; None stops it. The guided exam records frames this way."""
        with self._lock:
            self._observer = observer

    def latest(self) -> LiveResult | None:
        """The result of the most recent frame (for a UI polling from another thread)."""
        with self._lock:
            return self._latest

    def _check_enabled(self, enabled: Sequence[str] | None) -> tuple[str, ...]:
        if enabled is None:
            return self.loaded.verdict_modalities
        if isinstance(enabled, str):
            raise TypeError(f"enabled must be a sequence of modality keys, not {enabled!r}")
        unknown = [m for m in enabled if m not in self.modalities]
        if unknown:
            raise ValueError(f"modalities {unknown} are not available here; choose from "
                             f"{list(self.modalities)}")
        chosen = tuple(m for m in self.modalities if m in enabled)
        if not chosen:
            raise ValueError(f"enable at least one of {list(self.modalities)}")
        return chosen

    @staticmethod
    def _check_overlay(overlay: str) -> str:
        if overlay not in OVERLAYS:
            raise ValueError(f"overlay must be one of {list(OVERLAYS)}, got {overlay!r}")
        return overlay

    # --- frames (one thread at a time) --------------------------------------------------------

    def process(self, rgb: np.ndarray, timestamp_s: float | None = None
                ) -> tuple[np.ndarray, LiveResult]:
        """Analyse and score one RGB uint8 frame; returns the annotated frame and the result.

        ``timestamp_s`` is the frame's stream time (default: seconds since the scorer started).
        """
        with self._process_lock:
            if self._closed:
                raise RuntimeError("this LiveScorer is closed; create a new one")
            started = time.perf_counter()
            with self._lock:
                enabled, overlay = self._enabled, self._overlay
            if timestamp_s is None:
                timestamp_s = time.monotonic() - self._start
            reuse = self._reuse()
            frame = analyse_frame(rgb, self.detector, self.settings, self._count, timestamp_s,
                                  reuse)
            fresh = frame.has_face and reuse is None
            self._remember(frame, fresh)
            p = p_left = None
            if frame.has_face:
                p, p_left, unfamiliar = self._score(frame, enabled)
                if unfamiliar:
                    frame = replace(frame, flags=(*frame.flags, UNFAMILIAR))
            with self._lock:
                observer = self._observer
            if observer is not None:
                observer(frame)
            image = self._draw_overlay(rgb, frame, overlay)
            latency = time.perf_counter() - started
            with self._lock:
                if enabled == self._enabled:  # scored by the current subset: it joins the window
                    self._window.append((np.nan if p is None else p,
                                         np.nan if p_left is None else p_left, frame.flags,
                                         fresh, frame.pose[0]))
                result = self._result(frame, p, enabled, latency)
                self._latest = result
            self._count += 1
            return _banner(image, result), result

    def _reuse(self) -> dict[str, np.ndarray] | None:
        """The previous frame's heavy modality values while fewer than ``heavy_every - 1``
        frames in a row have reused them; None: compute everything on this frame."""
        if self._reusable is None or self._reused_in_a_row >= self.heavy_every - 1:
            return None
        return self._reusable

    def _remember(self, frame: FrameResult, fresh: bool) -> None:
        if not frame.has_face:
            self._reusable, self._reused_in_a_row = None, 0  # the next face starts fresh
        elif fresh:
            self._reusable = {k: frame.values[k] for k in self._heavy_keys}
            self._reused_in_a_row = 0
        else:
            self._reused_in_a_row += 1

    def _score(self, frame: FrameResult, enabled: tuple[str, ...]) -> tuple[float, float, bool]:
        """P(palsy), P(left) and whether the face is unlike the model's training faces, for one
        face frame, encoding only the enabled modalities.

        The frame and its mirror image are encoded as one batch of two and scored exactly as an
        uploaded file's frames are (``scoring.mirror_averaged``).
        """
        size = self.loaded.model.config.image_size
        arrays = frame_arrays(frame, size)
        both = FrameArrays.concat([arrays, mirror_arrays(arrays)])
        emb = self._encoder.encode(to_inputs(both, self.loaded.normaliser, enabled), enabled)
        own = {m: e[:1] for m, e in emb.items()}
        mirror = {m: e[1:] for m, e in emb.items()}
        with torch_threads(self.torch_threads):
            p, left, _ = mirror_averaged(self.loaded, own, mirror, enabled)
        return float(p[0]), float(left[0]), bool(self.loaded.unfamiliar(arrays)[0])

    def _result(self, frame: FrameResult, p: float | None, enabled: tuple[str, ...],
                latency: float) -> LiveResult:
        """Fold one frame into the latency average and summarise the window (lock held)."""
        ema = self._latency_ema
        ema = latency if ema is None else LATENCY_EMA * latency + (1 - LATENCY_EMA) * ema
        self._latency_ema = ema
        self._finished.append(time.monotonic())
        span = self._finished[-1] - self._finished[0]
        rate = (len(self._finished) - 1) / span if span > 0 else 1.0 / max(ema, 1e-6)
        p_win = np.array([entry[0] for entry in self._window], dtype=np.float64)
        left_win = np.array([entry[1] for entry in self._window], dtype=np.float64)
        flags = [entry[2] for entry in self._window]
        face = ~np.isnan(p_win)
        face_flags = [f for f, has in zip(flags, face, strict=True) if has]
        inconclusive = inconclusive_reason(face_flags)
        yaw = np.array([entry[4] for entry in self._window], dtype=np.float64)[face]
        return LiveResult(
            index=frame.index, p_frame=p,
            p_rolling=_optional(file_score(p_win, flags)),
            p_left_rolling=_optional(file_score(left_win, flags)),
            threshold=self.loaded.threshold(enabled), enabled=enabled,
            fps=rate, latency_ms=1000.0 * latency,
            flags=frame.flags, window_faces=int(face.sum()),
            window_fresh=sum(1 for entry, has in zip(self._window, face, strict=True)
                             if entry[3] and has),
            inconclusive=inconclusive,
            caution=None if inconclusive else turn_caution(yaw, face_flags))

    @staticmethod
    def _draw_overlay(rgb: np.ndarray, frame: FrameResult, overlay: str) -> np.ndarray:
        if frame.points is None or overlay == "none":
            return np.array(rgb, copy=True)
        if overlay == "landmarks":
            return draw_landmarks(rgb, frame.points)
        return overlay_line_segments(rgb, frame.points)

    # --- lifetime -----------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget the rolling window and the frame-rate average (e.g. when a stream restarts)."""
        with self._lock:
            self._window.clear()
            self._latency_ema = None
            self._finished.clear()
            self._latest = None

    def close(self) -> None:
        """Release the detector (waits for a frame in progress)."""
        with self._process_lock:
            if not self._closed:
                self._closed = True
                self.detector.close()
                self._encoder.close()

    def __enter__(self) -> LiveScorer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _optional(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


def banner_text(result: LiveResult) -> str:
    """One line for the stream: rolling P(palsy), affected side and processing rate."""
    if result.p_rolling is None:
        score = "no face"
    else:
        score = f"P(palsy) {result.p_rolling:.2f}"
        if result.side:
            score += f", {result.side} side"
    return f"{score} | {result.fps:.1f} fps"


def _banner(image: np.ndarray, result: LiveResult) -> np.ndarray:
    """The banner drawn on a dark strip at the top left, scaled to the frame width."""
    scale = max(0.4, image.shape[1] / 1000)
    thickness = max(1, round(scale * 2))
    text = banner_text(result)
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    pad = round(6 * scale)
    image[: h + base + 2 * pad, : w + 2 * pad] //= 3
    colour = (255, 80, 80) if result.palsy else (255, 255, 255)
    cv2.putText(image, text, (pad, pad + h), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thickness,
                cv2.LINE_AA)
    return image
