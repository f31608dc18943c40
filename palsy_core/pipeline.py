"""From a photo or video to per-frame modalities: the one path every caller uses.

CLI extraction, prediction, training data and the dashboard all call ``analyse_media`` (files) or
``analyse_frame`` (single frames, e.g. the live camera), so the modalities the model sees at
training time are computed exactly as at inference time.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from . import features as feats
from .alignment import MIN_SHARPNESS, align, normalised_coordinates, sharpness, warp
from .landmarks import LandmarkDetector, make_detector
from .line_segments import draw_line_segments
from .marks import neutralise_green_marks
from .media import Source, iter_media_frames, media_kind
from .topology import N_LANDMARKS

# Bump when anything that changes extracted values changes, so stale caches are not reused.
EXTRACTION_VERSION = 1
N_BLENDSHAPES = 52


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
class FrameResult:
    """Modalities of one frame; image/vector fields are None when no face was found."""

    index: int
    timestamp_s: float
    flags: tuple[str, ...]
    n_faces: int = 0
    pose: tuple[float, float, float] = (np.nan, np.nan, np.nan)  # yaw, pitch, roll (degrees)
    points: np.ndarray | None = None  # (478, 3) source pixels
    rgb: np.ndarray | None = None  # (S, S, 3) uint8 aligned face
    lines: np.ndarray | None = None  # (S, S, 3) uint8 line-segment image
    landmarks: np.ndarray | None = None  # (478, 3) normalised coordinates
    features: np.ndarray | None = None  # (F,) expression features
    blendshapes: np.ndarray | None = None  # (52,) when the Tasks backend is used

    @property
    def has_face(self) -> bool:
        return self.points is not None


def analyse_frame(
    rgb: np.ndarray,
    detector: LandmarkDetector,
    settings: Settings,
    index: int = 0,
    timestamp_s: float = 0.0,
) -> FrameResult:
    """Detect, align and compute every modality for one RGB uint8 frame."""
    if settings.clean_marks:
        rgb = neutralise_green_marks(rgb)
    detection = detector.detect(rgb, timestamp_ms=round(timestamp_s * 1000))
    if detection is None:
        return FrameResult(index=index, timestamp_s=timestamp_s, flags=("no_face",))
    alignment = align(detection.points, settings.size, detection.n_faces)
    face = warp(rgb, alignment)
    flags = list(alignment.flags)
    if sharpness(cv2.cvtColor(face, cv2.COLOR_RGB2GRAY)) < MIN_SHARPNESS:
        flags.append("blur")
    pose = alignment.pose
    return FrameResult(
        index=index,
        timestamp_s=timestamp_s,
        flags=tuple(flags),
        n_faces=detection.n_faces,
        pose=(pose.yaw, pose.pitch, pose.roll),
        points=detection.points,
        rgb=face,
        lines=draw_line_segments(alignment.points, settings.size),
        landmarks=normalised_coordinates(alignment),
        features=feats.frame_features(alignment.points),
        blendshapes=detection.blendshapes,
    )


@dataclass
class MediaAnalysis:
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
    rgb: np.ndarray  # (T, S, S, 3) uint8
    lines: np.ndarray  # (T, S, S, 3) uint8
    landmarks: np.ndarray  # (T, 478, 3); NaN without a face
    features: np.ndarray  # (T, F); NaN without a face
    blendshapes: np.ndarray | None  # (T, 52) or None
    clip_features: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))

    @property
    def has_face(self) -> np.ndarray:
        return ~np.isnan(self.features).any(axis=1)

    @property
    def n_frames(self) -> int:
        return len(self.timestamps)

    @classmethod
    def from_frames(cls, name: str, kind: str, settings: Settings, frames: list[FrameResult]):
        s, nf = settings.size, len(feats.FRAME_FEATURES)
        t = len(frames)

        def stack(attr: str, shape: tuple[int, ...], dtype, fill):
            out = np.full((t, *shape), fill, dtype=dtype)
            for i, fr in enumerate(frames):
                value = getattr(fr, attr)
                if value is not None:
                    out[i] = value
            return out

        has_blend = any(fr.blendshapes is not None for fr in frames)
        per_frame = stack("features", (nf,), np.float32, np.nan)
        return cls(
            name=name,
            kind=kind,
            settings_key=settings.key(),
            timestamps=np.array([fr.timestamp_s for fr in frames], dtype=np.float64),
            frame_index=np.array([fr.index for fr in frames], dtype=np.int64),
            flags=[fr.flags for fr in frames],
            n_faces=np.array([fr.n_faces for fr in frames], dtype=np.int32),
            pose=np.array([fr.pose for fr in frames], dtype=np.float32).reshape(t, 3),
            points=stack("points", (N_LANDMARKS, 3), np.float32, np.nan),
            rgb=stack("rgb", (s, s, 3), np.uint8, 0),
            lines=stack("lines", (s, s, 3), np.uint8, 0),
            landmarks=stack("landmarks", (N_LANDMARKS, 3), np.float32, np.nan),
            features=per_frame,
            blendshapes=stack("blendshapes", (N_BLENDSHAPES,), np.float32, np.nan)
            if has_blend
            else None,
            clip_features=feats.clip_features(per_frame) if kind == "video" else
            np.full(len(feats.CLIP_FEATURES), np.nan, np.float32),
        )

    def save(self, path: Path) -> None:
        """Write to a compressed ``.npz`` (atomic: a partial file never looks complete)."""
        arrays = {k: v for k, v in vars(self).items() if isinstance(v, np.ndarray)}
        meta = {"name": self.name, "kind": self.kind, "settings_key": self.settings_key,
                "flags": [list(f) for f in self.flags]}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, meta=np.array(json.dumps(meta)), **arrays)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> MediaAnalysis:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            arrays = {k: data[k] for k in data.files if k != "meta"}
        return cls(
            name=meta["name"], kind=meta["kind"], settings_key=meta["settings_key"],
            flags=[tuple(f) for f in meta["flags"]],
            blendshapes=arrays.pop("blendshapes", None), **arrays,
        )


def iter_analysed_frames(
    source: Source,
    name: str,
    settings: Settings,
    detector: LandmarkDetector | None = None,
) -> Iterator[FrameResult]:
    """Analyse frames lazily. Videos get their own tracking detector; photos use ``detector``."""
    kind = media_kind(name)
    own = detector is None or kind == "video"
    det = make_detector(settings.task_model, tracking=kind == "video") if own else detector
    try:
        for frame in iter_media_frames(source, name, settings.sample_fps, settings.max_frames):
            yield analyse_frame(frame.rgb, det, settings, frame.index, frame.timestamp_s)
    finally:
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
    frames = []
    for fr in iter_analysed_frames(source, name, settings, detector):
        frames.append(fr)
        if on_frame is not None:
            on_frame(fr)
    return MediaAnalysis.from_frames(str(name), media_kind(name), settings, frames)
