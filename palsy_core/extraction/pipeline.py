"""From a photo or video to per-frame modalities: the one path every caller uses.

CLI extraction, prediction, training data and the dashboard all call ``analyse_media`` (files) or
``analyse_frame`` (single frames, e.g. the live camera), so the modalities the model sees at
training time are computed exactly as at inference time.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TypeVar

import cv2
import numpy as np

from palsy_core.face.alignment import MIN_SHARPNESS, align, sharpness, warp
from palsy_core.face.landmarks import Detection, LandmarkDetector, make_detector
from palsy_core.face.marks import neutralise_green_marks
from palsy_core.face.topology import N_LANDMARKS
from palsy_core.io.media import Frame, Source, iter_media_frames, media_kind
from palsy_core.modalities import features as feats
from palsy_core.modalities import specs
from palsy_core.modalities.base import FrameContext, ModalityValues

# Bump when anything that changes extracted values changes, so stale caches are not reused.
EXTRACTION_VERSION = 5
PREFETCH_FRAMES = 4  # decoded frames buffered ahead of the detector (bounded memory)
_END = object()  # marks the end of a prefetched stream
T = TypeVar("T")


@dataclass(frozen=True)
class Settings:
    """Everything that changes what extraction produces (and so keys the cache)."""

    size: int = 224
    sample_fps: float = 5.0
    max_frames: int = 300
    clean_marks: bool = True
    task_model: str | None = None

    def key(self) -> str:
        blob = json.dumps({**asdict(self), "version": EXTRACTION_VERSION}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class FrameResult(ModalityValues):
    """Modalities of one frame; ``values`` is empty when no face was found."""

    index: int
    timestamp_s: float
    flags: tuple[str, ...]
    n_faces: int = 0
    pose: tuple[float, float, float] = (np.nan, np.nan, np.nan)  # yaw, pitch, roll (degrees)
    points: np.ndarray | None = None  # (478, 3) source pixels
    # modality key -> this frame's value (``modalities.spec(key).shape``)
    values: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def has_face(self) -> bool:
        return self.points is not None


def analyse_frame(
    rgb: np.ndarray,
    detector: LandmarkDetector,
    settings: Settings,
    index: int = 0,
    timestamp_s: float = 0.0,
    reuse: Mapping[str, np.ndarray] | None = None,
) -> FrameResult:
    """Detect, align and compute every modality for one RGB uint8 frame.

    ``reuse`` gives modality values to take as they are instead of computing them (the live
    camera passes the previous frame's heavy modalities); a frame without a face ignores it.
    """
    rgb = _cleaned(rgb, settings)
    return _modalities(rgb, _detect(rgb, detector, timestamp_s), settings, index, timestamp_s,
                       reuse)


def _cleaned(rgb: np.ndarray, settings: Settings) -> np.ndarray:
    """The frame the detector and the modalities see (annotation marks removed if asked)."""
    return neutralise_green_marks(rgb) if settings.clean_marks else rgb


def _detect(rgb: np.ndarray, detector: LandmarkDetector, timestamp_s: float) -> Detection | None:
    """The detector's stage; stateful in tracking mode, so frames go in order, one thread."""
    return detector.detect(rgb, timestamp_ms=round(timestamp_s * 1000))


def _modalities(rgb: np.ndarray, detection: Detection | None, settings: Settings, index: int,
                timestamp_s: float, reuse: Mapping[str, np.ndarray] | None = None
                ) -> FrameResult:
    """Everything after detection: a pure function of the frame and its landmarks."""
    if detection is None:
        return FrameResult(index=index, timestamp_s=timestamp_s, flags=("no_face",))
    alignment = align(detection.points, settings.size, detection.n_faces)
    face = warp(rgb, alignment)
    flags = list(alignment.flags)
    if sharpness(cv2.cvtColor(face, cv2.COLOR_RGB2GRAY)) < MIN_SHARPNESS:
        flags.append("blur")
    pose = alignment.pose
    ctx = FrameContext(rgb=rgb, alignment=alignment, face=face)
    return FrameResult(
        index=index,
        timestamp_s=timestamp_s,
        flags=tuple(flags),
        n_faces=detection.n_faces,
        pose=(pose.yaw, pose.pitch, pose.roll),
        points=detection.points,
        values={key: reuse[key] if reuse and key in reuse else s.compute(ctx)
                for key, s in specs().items()},
    )


@dataclass
class MediaAnalysis(ModalityValues):
    """All frames of one photo or video, stacked; rows without a face hold zeros/NaN."""

    name: str
    kind: str
    settings_key: str
    timestamps: np.ndarray  # (T,) seconds
    frame_index: np.ndarray  # (T,) index in the decoded stream
    flags: list[tuple[str, ...]]
    n_faces: np.ndarray  # (T,)
    pose: np.ndarray  # (T, 3) yaw, pitch, roll; NaN without a face
    points: np.ndarray  # (T, 478, 3) source pixels; NaN without a face
    # modality key -> (T, *shape): images uint8 (black without a face), vectors NaN without one
    values: dict[str, np.ndarray]
    clip_features: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))

    @property
    def has_face(self) -> np.ndarray:
        return ~np.isnan(self.features).any(axis=1)

    @property
    def n_frames(self) -> int:
        return len(self.timestamps)

    @classmethod
    def from_frames(cls, name: str, kind: str, settings: Settings, frames: list[FrameResult]):
        stack = _FrameStack(settings.size)
        for fr in frames:
            stack.add(fr)
        return stack.analysis(name, kind, settings)

    def save(self, path: Path) -> None:
        """Write to a compressed ``.npz`` (atomic: a partial file never looks complete)."""
        arrays = {k: v for k, v in vars(self).items() if isinstance(v, np.ndarray)}
        arrays.update(self.values)  # one array per modality, named by its key
        meta = {"name": self.name, "kind": self.kind, "settings_key": self.settings_key,
                "flags": [list(f) for f in self.flags]}
        path.parent.mkdir(parents=True, exist_ok=True)
        # A name of its own per writer: two workers may extract the same content at once.
        tmp = path.with_name(f"{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, meta=np.array(json.dumps(meta)), **arrays)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> MediaAnalysis:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            arrays = {k: data[k] for k in data.files if k != "meta"}
        values = {k: arrays.pop(k) for k in specs()}  # a missing modality is a KeyError
        return cls(name=meta["name"], kind=meta["kind"], settings_key=meta["settings_key"],
                   flags=[tuple(f) for f in meta["flags"]], values=values, **arrays)


class _FrameStack:
    """Collects analysed frames into a ``MediaAnalysis`` holding each frame's pixels only once.

    The aligned images (almost all of a long video's memory) are copied into fixed-size chunks as
    frames arrive and the frames are kept without them; the final arrays are filled chunk by
    chunk, each chunk freed once copied, so peak memory stays near the size of the result.
    """

    CHUNK = 64

    def __init__(self, size: int) -> None:
        self.size = size
        self.frames: list[FrameResult] = []
        self.images = [k for k, s in specs().items() if s.image]
        self.chunks: dict[str, list[np.ndarray | None]] = {k: [] for k in self.images}

    def add(self, frame: FrameResult) -> None:
        row = len(self.frames) % self.CHUNK
        for key, chunks in self.chunks.items():
            if row == 0:
                chunks.append(np.zeros((self.CHUNK, self.size, self.size, 3), np.uint8))
            image = frame.values.get(key)
            if image is not None:
                chunks[-1][row] = image
        kept = {k: v for k, v in frame.values.items() if k not in self.chunks}
        self.frames.append(replace(frame, values=kept))

    def _images(self, key: str) -> np.ndarray:
        t, chunks = len(self.frames), self.chunks[key]
        out = np.empty((t, self.size, self.size, 3), np.uint8)
        for i, chunk in enumerate(chunks):
            start = i * self.CHUNK
            out[start : start + self.CHUNK] = chunk[: t - start]
            chunks[i] = None
        return out

    def analysis(self, name: str, kind: str, settings: Settings) -> MediaAnalysis:
        frames, t = self.frames, len(self.frames)

        def stack(key: str) -> np.ndarray:
            out = specs()[key].empty(t, self.size)
            for i, fr in enumerate(frames):
                value = fr.values.get(key)
                if value is not None:
                    out[i] = value
            return out

        points = np.full((t, N_LANDMARKS, 3), np.nan, np.float32)
        for i, fr in enumerate(frames):
            if fr.points is not None:
                points[i] = fr.points
        values = {k: self._images(k) if k in self.chunks else stack(k) for k in specs()}
        per_frame = values["features"]
        return MediaAnalysis(
            name=name,
            kind=kind,
            settings_key=settings.key(),
            timestamps=np.array([fr.timestamp_s for fr in frames], dtype=np.float64),
            frame_index=np.array([fr.index for fr in frames], dtype=np.int64),
            flags=[fr.flags for fr in frames],
            n_faces=np.array([fr.n_faces for fr in frames], dtype=np.int32),
            pose=np.array([fr.pose for fr in frames], dtype=np.float32).reshape(t, 3),
            points=points,
            values=values,
            clip_features=feats.clip_features(per_frame) if kind == "video" else
            np.full(len(feats.CLIP_FEATURES), np.nan, np.float32),
        )


def _prefetched(items: Iterator[T], depth: int) -> Generator[T, None, None]:
    """``items`` produced on a background thread, up to ``depth`` ahead of the consumer.

    Video decoding (FFmpeg releases the GIL) then overlaps the detector. The order is unchanged,
    an exception raised by ``items`` is re-raised here, and closing this generator stops the
    thread and closes ``items`` there (a generator is closed by the thread that runs it).
    """
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry: tuple) -> bool:
        while not stop.is_set():
            try:
                buffer.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        error = None
        try:
            for item in items:
                if not put((item, None)):
                    return
        except Exception as exc:  # handed to the consumer, raised there
            error = exc
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()
            put((_END, error))

    worker = threading.Thread(target=produce, name="palsy-decode", daemon=True)
    worker.start()
    try:
        while True:
            item, exc = buffer.get()
            if exc is not None:
                raise exc
            if item is _END:
                return
            yield item
    finally:
        stop.set()
        worker.join()


def iter_analysed_frames(
    source: Source,
    name: str,
    settings: Settings,
    detector: LandmarkDetector | None = None,
) -> Iterator[FrameResult]:
    """Analyse frames lazily. Videos get their own tracking detector; photos use ``detector``.

    Three stages overlap, each on its own thread: decoding with the annotation-mark check, the
    detector (in frame order, on this thread) and the per-frame modalities of the previous frame.
    Results are those of ``analyse_frame`` on each frame in turn, in order.
    """
    kind = media_kind(name)
    own = detector is None or kind == "video"
    det = make_detector(settings.task_model, tracking=kind == "video") if own else detector

    def cleaned() -> Iterator[tuple[Frame, np.ndarray]]:
        with closing(iter_media_frames(source, name, settings.sample_fps,
                                       settings.max_frames)) as decoded:
            for frame in decoded:
                yield frame, _cleaned(frame.rgb, settings)

    frames = _prefetched(cleaned(), PREFETCH_FRAMES)
    try:
        with ThreadPoolExecutor(1, thread_name_prefix="palsy-modalities") as pool:
            pending: deque[Future[FrameResult]] = deque()
            for frame, rgb in frames:
                detection = _detect(rgb, det, frame.timestamp_s)
                pending.append(pool.submit(_modalities, rgb, detection, settings, frame.index,
                                           frame.timestamp_s))
                if len(pending) > 1:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
    finally:
        frames.close()
        if own:
            det.close()


def analyse_media(
    source: Source,
    name: str,
    settings: Settings | None = None,
    detector: LandmarkDetector | None = None,
    on_frame: Callable[[FrameResult], None] | None = None,
) -> MediaAnalysis:
    """Every modality for every sampled frame of a photo or video."""
    settings = settings or Settings()
    stack = _FrameStack(settings.size)
    for fr in iter_analysed_frames(source, name, settings, detector):
        stack.add(fr)
        if on_frame is not None:
            on_frame(fr)
    return stack.analysis(str(name), media_kind(name), settings)
