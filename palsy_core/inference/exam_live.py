"""The guided exam on a live camera: prompts, countdowns, capture windows, redo, grading.

``ExamRecorder`` is fed every analysed frame of the stream (``LiveScorer.set_observer``) from the
WebRTC worker thread and polled by the page from the script thread, so all of its state is read
and written under one lock. It walks through ``exam.PROTOCOL``: for each movement a prompt with a
countdown, then a capture window; a window closes once it has lasted ``capture_s`` and holds at
least ``MIN_FACE_FRAMES`` frames with a face (a slow machine gets a longer window, never an empty
one). A single movement can be captured again (``redo``). The captured frames are the frames the
live scorer analysed; ``grade_recording`` scores them as one video (every frame and its mirror,
as an uploaded file is) and grades each movement on its own frames.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from palsy_core.extraction.pipeline import FrameResult, MediaAnalysis, Settings
from palsy_core.inference.exam import MOVEMENTS, PROTOCOL, Exam, Movement, grade
from palsy_core.inference.scoring import LoadedModel, ScoredMedia

COUNTDOWN_S = 3.0
CAPTURE_S = 2.0
MIN_FACE_FRAMES = 4
MAX_FRAMES = 12  # frames kept per movement (evenly over its window)
GIVE_UP_AFTER = 5.0  # a window without enough face frames closes after this many capture_s
STALLED_AFTER = 3.0  # seconds without a frame while recording: the page asks about the camera


@dataclass(frozen=True)
class ExamStatus:
    """Where the exam stands, for the page and the drawn prompt."""

    phase: str  # idle, countdown, capture or done
    movement: Movement | None  # the movement being prompted or captured
    seconds_left: float  # in the countdown (or the capture window)
    step: int  # 1-based position of the movement in this run
    steps: int  # movements in this run (7, or 1 for a redo)
    captured: tuple[str, ...]  # movement keys with frames, protocol order
    face_frames: int = 0  # face frames captured in the current window
    since_frame_s: float | None = None  # seconds since the last frame arrived (None: none yet)

    @property
    def complete(self) -> bool:
        return self.phase == "done" and len(self.captured) == len(PROTOCOL)

    @property
    def running(self) -> bool:
        return self.phase in ("countdown", "capture")

    @property
    def stalled(self) -> bool:
        """Recording, but no frame from the camera for ``STALLED_AFTER`` seconds."""
        return self.phase == "capture" and (self.since_frame_s is None
                                            or self.since_frame_s > STALLED_AFTER)


class ExamRecorder:
    """One guided exam on one stream; ``observe`` every frame, ``status`` from anywhere."""

    def __init__(self, countdown_s: float = COUNTDOWN_S, capture_s: float = CAPTURE_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if countdown_s < 0 or capture_s <= 0:
            raise ValueError("countdown_s must be >= 0 and capture_s > 0")
        self.countdown_s, self.capture_s, self._clock = countdown_s, capture_s, clock
        self._lock = threading.Lock()
        self._frames: dict[str, list[FrameResult]] = {}
        self._queue: list[str] = []
        self._steps = 0
        self._phase = "idle"
        self._since = 0.0  # when the current phase began
        self._window: list[FrameResult] = []
        self._version = 0  # bumped whenever captured frames change (pages re-grade then)
        self._last_frame: float | None = None  # when the last frame arrived

    # --- control (script thread) ----------------------------------------------------------
    def start(self, countdown_s: float | None = None) -> None:
        """Begin (or restart) the whole protocol, optionally with another countdown; earlier
        captures are dropped."""
        if countdown_s is not None and countdown_s < 0:
            raise ValueError(f"countdown_s must be >= 0, got {countdown_s}")
        with self._lock:
            if countdown_s is not None:
                self.countdown_s = float(countdown_s)
            self._frames = {}
            self._begin([m.key for m in PROTOCOL])

    def redo(self, key: str) -> None:
        """Capture one movement again (its earlier frames are kept until the new ones arrive)."""
        if key not in MOVEMENTS:
            raise ValueError(f"unknown movement {key!r}; choose from {list(MOVEMENTS)}")
        with self._lock:
            self._begin([key])

    def cancel(self) -> None:
        """Stop prompting; what was captured stays."""
        with self._lock:
            self._queue, self._phase, self._window = [], "idle", []

    def _begin(self, keys: list[str]) -> None:
        self._queue, self._steps = keys, len(keys)
        self._phase, self._since, self._window = "countdown", self._clock(), []
        self._version += 1

    # --- frames (WebRTC worker thread) ----------------------------------------------------
    def observe(self, frame: FrameResult) -> None:
        """One analysed frame of the stream: advance the clock-driven phases, keep it if a
        capture window is open."""
        with self._lock:
            self._last_frame = self._clock()
            self._advance()
            if self._phase != "capture":
                return
            if not self._window:  # the window's time runs from its first frame (after a stall)
                self._since = self._clock()
            self._window.append(frame)
            faces = sum(f.has_face for f in self._window)
            elapsed = self._clock() - self._since
            if (elapsed >= self.capture_s and faces >= MIN_FACE_FRAMES) \
                    or elapsed >= GIVE_UP_AFTER * self.capture_s:
                self._close_window()

    def _advance(self) -> None:
        if self._phase == "countdown" and self._clock() - self._since >= self.countdown_s:
            self._phase, self._since, self._window = "capture", self._clock(), []

    def _close_window(self) -> None:
        key = self._queue.pop(0)
        faces = [f for f in self._window if f.has_face]
        if faces:
            keep = np.unique(np.linspace(0, len(faces) - 1, min(MAX_FRAMES, len(faces))
                                         ).round().astype(int))
            self._frames[key] = [faces[i] for i in keep]
            self._version += 1
        self._window = []
        if self._queue:
            self._phase, self._since = "countdown", self._clock()
        else:
            self._phase = "done"

    # --- reading (any thread) -------------------------------------------------------------
    def status(self) -> ExamStatus:
        with self._lock:
            self._advance()
            now = self._clock()
            movement = MOVEMENTS[self._queue[0]] if self._queue else None
            if self._phase == "countdown":
                left = max(0.0, self.countdown_s - (now - self._since))
            elif self._phase == "capture":
                left = max(0.0, self.capture_s - (now - self._since))
            else:
                left = 0.0
            return ExamStatus(
                phase=self._phase, movement=movement, seconds_left=left,
                step=self._steps - len(self._queue) + (1 if self._queue else 0),
                steps=self._steps,
                captured=tuple(m.key for m in PROTOCOL if m.key in self._frames),
                face_frames=sum(f.has_face for f in self._window),
                since_frame_s=None if self._last_frame is None else now - self._last_frame)

    @property
    def version(self) -> int:
        """Changes whenever the captured frames change."""
        with self._lock:
            return self._version

    def recording(self, settings: Settings) -> tuple[MediaAnalysis, dict[str, list[int]]]:
        """The captured frames as one analysed video, and each movement's frame indices."""
        with self._lock:
            captured = {m.key: list(self._frames[m.key]) for m in PROTOCOL
                        if m.key in self._frames}
        if not captured:
            raise ValueError("nothing captured yet: start the exam with the camera running")
        frames, segments = [], {}
        for key, rows in captured.items():
            segments[key] = list(range(len(frames), len(frames) + len(rows)))
            frames.extend(rows)
        return MediaAnalysis.from_frames("live exam", "video", settings, frames), segments

    def annotate(self, image: np.ndarray) -> np.ndarray:
        """The prompt, countdown and progress drawn at the bottom of a stream frame."""
        status = self.status()
        if status.phase not in ("countdown", "capture") or status.movement is None:
            return image
        m = status.movement
        if status.phase == "countdown":
            text = f"{status.step}/{status.steps}  {m.prompt}  in {status.seconds_left:.0f}"
            done = (status.step - 1) / status.steps
        else:
            text = f"{status.step}/{status.steps}  {m.prompt}: hold it"
            done = (status.step - 1 + 1 - status.seconds_left / self.capture_s) / status.steps
        return _strip(image, text, done, capture=status.phase == "capture")


def _strip(image: np.ndarray, text: str, progress: float, capture: bool = False) -> np.ndarray:
    """A dark strip along the bottom with ``text`` and a progress bar under it."""
    h, w = image.shape[:2]
    scale = max(0.45, w / 1100)
    thick = max(1, round(scale * 2))
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    while tw > w - 20 and scale > 0.3:  # long prompts on a small frame
        scale *= 0.9
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    pad = round(8 * scale)
    bar = max(3, round(5 * scale))
    top = h - (th + base + 3 * pad + bar)
    image[top:] //= 3
    colour = (120, 255, 120) if capture else (255, 255, 255)
    cv2.putText(image, text, (pad, top + pad + th), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thick,
                cv2.LINE_AA)
    y = h - pad - bar
    image[y: y + bar, pad: w - pad] = (90, 90, 90)
    image[y: y + bar, pad: pad + round((w - 2 * pad) * min(1.0, max(0.0, progress)))] = \
        (120, 255, 120)
    return image


def grade_recording(loaded: LoadedModel, recorder: ExamRecorder,
                    settings: Settings | None = None) -> tuple[Exam, ScoredMedia]:
    """Score the captured frames as one video and grade each movement on its frames."""
    analysis, segments = recorder.recording(settings or Settings())
    scored = ScoredMedia(loaded, analysis)
    return grade(scored, segments), scored
