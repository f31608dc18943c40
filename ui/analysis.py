"""The Analyse and Ablation pages' building blocks: running an analysis, toggles, charts, exports.

Cross-page state in ``st.session_state``:

- ``"analysis"``: the current ``ScoredMedia`` (set by the Analyse page, read by the Ablation page);
- ``"analysis_name"``: its display name;
- ``"samples"``: ``{"healthy": ScoredMedia, "palsy": ScoredMedia}`` while the current analysis is
  the sample pair, else absent;
- ``"enabled"``: the enabled modality keys, shared by both pages' toggles;
- ``"sweep"``: the last ``demo.SweepResult`` of the current analysis;
- ``"frame_cap"``: ``max_frames`` when the current analysis stopped at that cap, else absent;
- ``"upload_key"``: (file id, settings) of the last upload analysed, failed or cancelled, so
  reruns do not analyse it again; ``"analysing"`` (the key being analysed) and ``"cancelled"``
  (the key of a cancelled analysis) drive the Cancel button.

One analysis (or the sample pair) is kept per session, its frames capped by ``Settings.max_frames``,
so a session's memory stays bounded. Uploads are analysed from memory: nothing about them is
written to disk.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.colors import qualitative

from palsy_core.extraction.pipeline import FrameResult, Settings
from palsy_core.inference.demo import SAMPLE_LABELS, VERDICT, SweepResult, samples
from palsy_core.inference.report import (
    FLAG_NAMES,
    cam_overlay,
    emotrics_sides,
    frame_table,
    html_report,
    image_modalities,
    key_frames,
    overlay_face,
)
from palsy_core.inference.scoring import LoadedModel, ScoredMedia, SubsetScore
from palsy_core.inference.screen import Screener, Screening
from palsy_core.io.media import MediaError, media_kind, probe_video
from palsy_core.io.samples import SamplesUnavailable
from palsy_core.metrics import retake_hint
from palsy_core.registry import modality
from palsy_core.settings import SIDES
from ui.common import verdict_note

# Samples are short; a few frames per second show the model's behaviour over time quickly.
SAMPLE_SETTINGS = Settings(sample_fps=5.0, max_frames=30)
CAM_CACHE_ENTRIES = 32
COLOURS = qualitative.Plotly
MIN_VIDEO_FRAMES = 3  # fewer sampled frames than this: the clip is called short


def name_of(key: str) -> str:
    return modality(key).name


# --- running analyses --------------------------------------------------------------------------


def kept(key: str, default):
    """Seed widget ``key`` with its last value in this session, default the first time.

    Streamlit forgets a widget's state when another page is shown; a copy under ``_kept_<key>``
    survives, so settings and choices are as the user left them on coming back. Create the
    widget without ``value``/``index`` and pass the result to ``keep``.
    """
    if key not in st.session_state:
        st.session_state[key] = st.session_state.get(f"_kept_{key}", default)
    return st.session_state[key]


def keep(key: str, value):
    st.session_state[f"_kept_{key}"] = value
    return value


def analysis_settings() -> Settings:
    """Frame sampling for uploaded videos, chosen in an expander (kept across page visits)."""
    with st.expander("Analysis settings"):
        kept("settings_fps", 5.0)
        fps = keep("settings_fps", st.slider("Frames analysed per second of video", 1.0, 15.0,
                                             step=1.0, key="settings_fps"))
        kept("settings_max_frames", 150)
        cap = keep("settings_max_frames", st.slider(
            "At most this many frames", 10, 300, step=10, key="settings_max_frames",
            help="Longer videos are cut here; this bounds time and memory."))
    return Settings(sample_fps=fps, max_frames=cap)


def _expected_frames(source: Path | bytes, name: str, settings: Settings) -> int:
    if media_kind(name) == "photo":
        return 1
    info = probe_video(source, name=name)
    return max(1, min(settings.max_frames, math.floor(info.duration_s * settings.sample_fps) + 1))


def analyse_with_progress(loaded: LoadedModel, source: Path | bytes, name: str,
                          settings: Settings, label: str) -> Screening:
    """Analyse one file through the core's front door with a progress bar; the result keeps
    its embeddings for instant re-scoring.

    ``source`` is a path or the upload's bytes (processed in memory, never written to disk).
    """
    total = _expected_frames(source, name, settings)
    bar = st.progress(0.0, text=f"{label}: reading frames…")
    done = 0

    def tick(frame: FrameResult) -> None:
        nonlocal done
        done += 1
        bar.progress(min(done / total, 1.0), text=f"{label}: frame {done} of ~{total} "
                     f"({'face' if frame.has_face else 'no face'})")

    with Screener(loaded, settings) as screener:
        result = screener.analyse(source, name, on_frame=tick)
    bar.empty()
    return result


def set_analysis(scored: ScoredMedia, name: str,
                 samples: dict[str, ScoredMedia] | None = None, frame_cap: int | None = None
                 ) -> None:
    """Make ``scored`` the session's current analysis, dropping views of the previous one.

    ``frame_cap``: the ``max_frames`` the analysis stopped at, when it did.
    """
    st.session_state["analysis"] = scored
    st.session_state["analysis_name"] = name
    for key, value in (("samples", samples), ("frame_cap", frame_cap)):
        if value is None:
            st.session_state.pop(key, None)
        else:
            st.session_state[key] = value
    for key in ("sweep", "cam_cache", "analyse_frame", "ablation_frame"):
        st.session_state.pop(key, None)


def _cancel() -> None:
    """The Cancel button's callback. Clicking reruns the page, which interrupts the analysis at
    its next progress update; this runs first and marks the upload as handled, so the rerun
    keeps nothing of it and does not start it again."""
    if "analysing" not in st.session_state:
        return  # it finished before the click arrived: nothing to cancel
    key = st.session_state.pop("analysing")
    st.session_state["cancelled"] = key
    if key is not None:
        st.session_state["upload_key"] = key


@contextmanager
def _cancellable(key: tuple | None) -> Iterator[None]:
    """A Cancel button while the block runs; a cancel marks ``key`` (an upload's) as handled.

    On an interruption nothing after ``yield`` runs, on purpose: ``"analysing"`` stays for the
    callback, which runs before the interrupting rerun.
    """
    st.session_state.pop("cancelled", None)
    st.session_state.pop("interrupted", None)
    st.session_state["analysing"] = key
    slot = st.empty()
    slot.button("Cancel analysis", key="cancel_analysis", icon=":material/stop:",
                on_click=_cancel, help="Stop now; nothing of this analysis is kept.")
    yield
    slot.empty()
    st.session_state.pop("analysing", None)


def note_interrupted() -> None:
    """Call first on the Analyse page: an analysis still marked as running was stopped by
    leaving the page (a Cancel click clears the mark before the rerun)."""
    if "analysing" in st.session_state:
        key = st.session_state.pop("analysing")
        st.session_state["interrupted"] = st.session_state.get(
            "analysing_name", "the sample" if key is None else "the upload")


def cancelled_notice(upload_key: tuple | None) -> bool:
    """After a cancelled analysis: say so (while the same upload and settings are chosen) and
    offer to run it again; a cancelled sample run is mentioned once. After an analysis stopped
    by a page switch: say so once. True when the current upload's analysis was cancelled: the
    page then shows no older result under it."""
    if name := st.session_state.pop("interrupted", None):
        st.info(f"The analysis of {name} stopped when you left the page; nothing of it was "
                "kept. Choose the file again to analyse it.", icon=":material/pause:")
    if "cancelled" not in st.session_state:
        return False
    key = st.session_state["cancelled"]
    if key is not None and key != upload_key:
        st.session_state.pop("cancelled")  # another file or other settings since
        return False
    if key is None:
        st.session_state.pop("cancelled")  # the samples: said once
    col, button = st.columns([4, 1])
    col.info("Analysis cancelled: nothing of it was kept.", icon=":material/stop:")
    if key is not None:
        button.button("Analyse again", key="analyse_again", on_click=_again)
    return key is not None


def _again() -> None:
    st.session_state.pop("upload_key", None)
    st.session_state.pop("cancelled", None)


def run_samples(loaded: LoadedModel) -> None:
    """Analyse the healthy sample and its synthetic palsy twin; the palsy one becomes current."""
    try:
        with st.spinner("Preparing the samples (fetched and made once, then cached)…"):
            pair = samples()
    except (SamplesUnavailable, ValueError, OSError) as exc:
        st.error(f"The samples are unavailable: {exc}")
        return
    st.session_state["analysing_name"] = "the sample pair"
    with _cancellable(None):
        scored = {s.key: analyse_with_progress(loaded, s.path, s.path.name, SAMPLE_SETTINGS,
                                               s.label).scored for s in pair}
    set_analysis(scored["palsy"], SAMPLE_LABELS["palsy"], samples=scored)


def analyse_upload(loaded: LoadedModel, upload, settings: Settings, key: tuple | None = None
                   ) -> None:
    """Analyse a ``st.file_uploader`` file from memory (never written to disk), cancellable.

    A bad file is reported, not raised. ``key`` (the page's file id and settings) becomes
    ``"upload_key"`` once the upload is handled (analysed, refused or cancelled), so reruns do
    not analyse it again.
    """
    st.session_state["analysing_name"] = upload.name
    with _cancellable(key):
        try:
            result = analyse_with_progress(loaded, upload.getvalue(), upload.name, settings,
                                           upload.name)
        except MediaError as exc:
            st.error(str(exc))
            result = None
    if key is not None:
        st.session_state["upload_key"] = key
    if result is not None:
        set_analysis(result.scored, upload.name,
                     frame_cap=settings.max_frames if result.frame_cap_reached else None)


def current_analysis(loaded: LoadedModel) -> ScoredMedia | None:
    """The session's analysis, re-scored when the model changed since it was made."""
    scored = st.session_state.get("analysis")
    if scored is None or scored.loaded is loaded:
        return scored
    samples = st.session_state.get("samples")
    if samples:
        samples = {k: ScoredMedia(loaded, s.analysis) for k, s in samples.items()}
        fresh = next(s for s in samples.values() if s.analysis is scored.analysis)
    else:
        fresh = ScoredMedia(loaded, scored.analysis)
    set_analysis(fresh, st.session_state.get("analysis_name", fresh.analysis.name), samples,
                 st.session_state.get("frame_cap"))
    return fresh


# --- toggles and results -----------------------------------------------------------------------


def modality_toggles(loaded: LoadedModel, scored: ScoredMedia, page: str) -> tuple[str, ...]:
    """A checkbox per modality of the model; the choice is shared across pages (``"enabled"``).

    They start as the verdict's modalities (``LoadedModel.verdict_modalities``). A modality the
    analysis lacks (blendshapes without the Tasks detector) is shown disabled.
    """
    previous = st.session_state.get("enabled", loaded.verdict_modalities)
    cols = st.columns(len(loaded.modalities))
    enabled = []
    for col, key in zip(cols, loaded.modalities, strict=True):
        available = key in scored.modalities
        on = col.checkbox(name_of(key), value=available and key in previous,
                          disabled=not available, key=f"{page}_mod_{key}",
                          help=modality(key).description if available else
                          "Not in this analysis (needs the MediaPipe Tasks detector).")
        if on and available:
            enabled.append(key)
    st.session_state["enabled"] = tuple(enabled)
    if verdict_note(loaded):
        st.caption(verdict_note(loaded))
    elif set(enabled) != set(loaded.verdict_modalities):
        st.caption("Some modalities are off: this is an ablation, not the model's own verdict.")
    return tuple(enabled)


def _pct(p: float | None) -> str:
    return "n/a" if p is None or not np.isfinite(p) else f"{100 * p:.1f}%"


def verdict_metrics(score: SubsetScore, suffix: str = "", compact: bool = False) -> None:
    """P(palsy), verdict and affected side as metrics (labels get ``suffix`` when given).

    The verdict gets the widest column (``compact``: a row of its own, for half-width columns)
    so "no palsy detected" is never cut off on a laptop screen.
    """
    if compact:
        p, side = st.columns(2)
        verdict = st.container()
    else:
        p, verdict, side = st.columns([1.0, 1.6, 1.4])
    p.metric(f"P(palsy){suffix}", _pct(score.p),
             help=f"Decision threshold {_pct(score.threshold)} for these modalities.")
    verdict.metric(f"Verdict{suffix}", score.verdict)
    side.metric(f"Affected side, subject's own{suffix}", score.side or "—",
                help="The subject's own side (their left is on the image's right in an "
                     f"unmirrored photo). P(subject's left) {_pct(score.p_left)}")
    if score.inconclusive:
        st.warning(f"No verdict{suffix}: {score.inconclusive}. P(palsy) is shown for reference "
                   f"only; {retake_hint(score.inconclusive)}", icon=":material/help:")
    elif score.caution:
        st.info(f"Caution{suffix}: {score.caution}.", icon=":material/rotate_right:")


def quality_flags(scored: ScoredMedia) -> None:
    """How many frames lacked a face or were unreliable, and why."""
    a = scored.analysis
    counts = {f: sum(f in fl for fl in scored.frame_flags) for f in FLAG_NAMES}
    # A head turned under the "too far" limit is clear but not frontal (its caution says more).
    clear = "clear face" if scored.score().caution else "clear, frontal face"
    if a.kind == "photo":
        problems = [FLAG_NAMES[f] for f, n in counts.items() if n]
        if problems:
            st.warning("Quality flags: " + "; ".join(problems) + ".", icon=":material/flag:")
        else:
            st.success(f"The photo shows one {clear}.", icon=":material/check:")
        return
    problems = [f"{FLAG_NAMES[f]}: {n} of {a.n_frames} frames" for f, n in counts.items() if n]
    if problems:
        st.warning("Quality flags: " + "; ".join(problems) + ". Flagged frames are shown but do "
                   "not decide the verdict when better frames exist.", icon=":material/flag:")
    else:
        st.success(f"All {a.n_frames} sampled frames have one {clear}.",
                   icon=":material/check:")
    if a.n_frames < MIN_VIDEO_FRAMES and not st.session_state.get("frame_cap"):
        st.info(f"A short clip: only {a.n_frames} frame(s) were sampled from it, so the verdict "
                "rests on very little; a few seconds of video (or a higher sampling rate in "
                "Analysis settings) give a steadier one.", icon=":material/timer:")
    if cap := st.session_state.get("frame_cap"):
        st.info(f"Stopped at the frame cap: only the first {cap} sampled frames were analysed; "
                "raise the cap in Analysis settings to analyse more of the video.",
                icon=":material/content_cut:")


def timeline_figure(scored: ScoredMedia, enabled: Sequence[str], current: int | None = None
                    ) -> go.Figure:
    """P(palsy) per frame: the fused result of ``enabled`` and each modality alone."""
    t = scored.analysis.timestamps
    fused = scored.score(enabled)
    mode = "lines+markers" if len(t) < 60 else "lines"
    fig = go.Figure(go.Scatter(x=t, y=fused.p_frames, name="fused (enabled)", mode=mode,
                               line={"width": 4, "color": "black"}))
    # Single modalities start hidden (a click on the legend shows one): six lines swinging
    # between 0 and 1 make a long video's timeline unreadable.
    for i, m in enumerate(scored.modalities):
        fig.add_trace(go.Scatter(x=t, y=scored.score((m,)).p_frames, name=f"{name_of(m)} alone",
                                 mode=mode, line={"width": 1.5, "color": COLOURS[i]},
                                 visible="legendonly"))
    fig.add_hline(y=fused.threshold, line_dash="dash", line_color="grey",
                  annotation_text="threshold")
    if current is not None:
        fig.add_vline(x=t[current], line_color="red", line_width=1)
    fig.update_layout(xaxis_title="time (s)", yaxis_title="P(palsy)", yaxis_range=[0, 1],
                      height=320, margin={"l": 10, "r": 10, "t": 10, "b": 10},
                      legend={"orientation": "h", "y": -0.25})
    return fig


def emotrics_figure(features: np.ndarray) -> go.Figure:
    """Left-vs-right bars of the Emotrics measures in millimetres."""
    df = emotrics_sides(features)
    df = df[df.unit == "mm"]
    # Hovering a bar shows the measure's definition (wrapped), as Emotrics defines it.
    wrapped = ["<br>".join(textwrap.wrap(d, 60)) for d in df.definition]
    hover = "%{y}, %{fullData.name}: %{x:.1f} mm<br><br>%{customdata}<extra></extra>"
    fig = go.Figure([
        go.Bar(y=df.measure, x=df.right, name="subject's right", orientation="h",
               marker_color=COLOURS[0], customdata=wrapped, hovertemplate=hover),
        go.Bar(y=df.measure, x=df.left, name="subject's left", orientation="h",
               marker_color=COLOURS[1], customdata=wrapped, hovertemplate=hover),
    ])
    fig.update_layout(barmode="group", xaxis_title="mm", yaxis_autorange="reversed", height=380,
                      margin={"l": 10, "r": 10, "t": 10, "b": 10},
                      legend={"orientation": "h", "y": -0.2})
    return fig


def _cam(scored: ScoredMedia, t: int, key: str, enabled: tuple[str, ...]) -> np.ndarray:
    """Grad-CAM overlay, memoised per session (a few entries) so scrubbing back is instant."""
    cache: dict = st.session_state.setdefault("cam_cache", {})
    k = (id(scored), t, key, enabled)
    if k not in cache:
        cache[k] = cam_overlay(scored, t, key, enabled)
        while len(cache) > CAM_CACHE_ENTRIES:
            cache.pop(next(iter(cache)))
    return cache[k]


def frame_slider(scored: ScoredMedia, enabled: Sequence[str], key: str, label: str = "Frame"
                 ) -> int:
    """A frame scrubber starting on the most palsy-like frame (0 for a photo)."""
    a = scored.analysis
    if a.n_frames == 1:
        return 0
    picks = key_frames(scored.score(enabled), scored.frame_flags, k=1)
    return st.slider(label, 0, a.n_frames - 1, picks[0] if picks else 0, key=key,
                     help="Frames as sampled from the video; the red line marks it on the "
                          "timeline.")


def frame_views(scored: ScoredMedia, enabled: tuple[str, ...], t: int) -> None:
    """Frame ``t``: overlays on the aligned face, the line image, Grad-CAM, Emotrics bars."""
    a = scored.analysis
    score = scored.score(enabled)
    flags = ", ".join(FLAG_NAMES.get(f, f) for f in scored.frame_flags[t]) or "no quality flags"
    where = ("The photo" if a.kind == "photo" else
             f"Sampled frame {t + 1} of {a.n_frames} (video frame {a.frame_index[t]}, "
             f"{a.timestamps[t]:.2f} s)")
    st.caption(f"{where}: P(palsy) {_pct(score.p_frames[t])}; {flags}.")
    if not a.has_face[t]:
        st.info("No face was found in this frame.")
        return
    c1, c2 = st.columns(2)
    show_lm = c1.toggle("Landmarks", value=False, key="overlay_landmarks")
    show_lines = c2.toggle("Line segments", value=True, key="overlay_lines")
    cams = image_modalities(scored, enabled)
    cols = st.columns(2 + len(cams))
    cols[0].image(overlay_face(scored, t, show_lm, show_lines), caption="Aligned face",
                  width="stretch")
    cols[1].image(a.lines[t], caption="Line-segment image", width="stretch")
    for col, m in zip(cols[2:], cams, strict=True):
        col.image(_cam(scored, t, m, enabled), caption=f"Grad-CAM: {name_of(m)}",
                  width="stretch")
    if not cams:
        st.caption("Grad-CAM needs an enabled image modality (RGB face or line segments).")
    st.markdown("**Expression features, left vs right** (Emotrics measures; the iris diameter "
                "of 11.7 mm is the ruler; hover a bar for the measure's definition)")
    st.plotly_chart(emotrics_figure(a.features[t]), key="emotrics_chart")
    sides = emotrics_sides(a.features[t])
    angle = sides[sides.unit == "deg"]
    st.caption("; ".join(f"{r.measure}: right {r.right:.1f}°, left {r.left:.1f}°"
                         for r in angle.itertuples()))


def export_buttons(scored: ScoredMedia, enabled: tuple[str, ...], name: str) -> None:
    """Per-frame CSV and self-contained HTML report, generated when clicked."""
    stem = Path(name).stem or "analysis"
    c1, c2 = st.columns(2)
    c1.download_button("Per-frame CSV", lambda: frame_table(scored, enabled).to_csv(index=False),
                       file_name=f"{stem}_frames.csv", mime="text/csv", on_click="ignore",
                       icon=":material/table:", key="export_csv")
    c2.download_button("HTML report", lambda: html_report(scored, enabled,
                                                          f"palsy-fusion report: {name}"),
                       file_name=f"{stem}_report.html", mime="text/html", on_click="ignore",
                       icon=":material/description:", key="export_html")


# --- ablation ----------------------------------------------------------------------------------


def subsets_table(scored: ScoredMedia, enabled: Sequence[str]) -> pd.DataFrame:
    """Every modality subset's result on this file, the current choice marked."""
    rows = []
    for s in scored.all_subsets():
        rows.append({"current": "✓" if set(s.enabled) == set(enabled) else "",
                     "modalities": " + ".join(name_of(m) for m in s.enabled),
                     "n": len(s.enabled), "P(palsy)": s.p, "threshold": s.threshold,
                     "verdict": s.verdict, "affected side": s.side or ""})
    return pd.DataFrame(rows)


def sweep_figure(result: SweepResult, threshold: float) -> go.Figure:
    """P(palsy) against synthetic severity, per modality alone and the verdict's fusion."""
    fig = go.Figure()
    for i, (variant, part) in enumerate(result.table.groupby("variant", sort=False)):
        fused = variant == VERDICT
        fig.add_trace(go.Scatter(
            x=part.severity, y=part.p, mode="lines+markers",
            name="the verdict" if fused else f"{name_of(variant)} alone",
            line={"width": 4 if fused else 2, "color": "black" if fused else COLOURS[i - 1]}))
    fig.add_hline(y=threshold, line_dash="dash", line_color="grey", annotation_text="threshold")
    fig.update_layout(xaxis_title=f"synthetic palsy severity (subject's {result.side} side)",
                      yaxis_title="P(palsy)", yaxis_range=[0, 1], height=360,
                      margin={"l": 10, "r": 10, "t": 10, "b": 10})
    return fig


def sweep_controls(scored: ScoredMedia) -> tuple[int, str, int]:
    """The face to sweep (a frame with a face), the side and the number of severity steps."""
    a = scored.analysis
    faces = np.flatnonzero(a.has_face)
    c1, c2, c3 = st.columns(3)
    if len(faces) > 1:
        t = c1.select_slider("Frame", options=faces.tolist(), key="ablation_frame",
                             value=int(faces[len(faces) // 2]))
    else:
        t = int(faces[0])
        c1.caption(f"Frame {t}")
    side = c2.radio("Affected side (subject's own)", SIDES, horizontal=True, key="sweep_side")
    steps = c3.slider("Severity steps", 3, 11, 6, key="sweep_steps")
    return int(t), side, steps
