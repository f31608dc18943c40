"""Modality ablation: switch modalities off and on, compare every subset, sweep palsy severity.

Works on the Analyse page's current analysis (``st.session_state["analysis"]``): every subset is
a re-weighting of cached per-frame embeddings, so nothing is re-detected. The severity sweep
draws synthetic palsy on one of its faces and analyses each version from scratch.
"""

import numpy as np
import streamlit as st

from palsy_core.inference.demo import severity_sweep
from ui import analysis as ua
from ui.common import disclaimer, get_model
from ui.evaluation import weights_figure

st.set_page_config(page_title="Modality ablation · palsy-fusion", layout="wide")
st.title("Modality ablation")
disclaimer()
st.markdown(
    "Which views of the face carry the decision? Switch modalities off and the fused model "
    "re-weights the remaining ones (its fusion weights are a softmax over the enabled "
    "modalities), instantly, from embeddings computed once per frame."
)

loaded = get_model()
if loaded is None:
    st.stop()

scored = ua.current_analysis(loaded)
if scored is None:
    st.info("No analysis in this session yet. Analyse a file on the **Analyse** page, or run the "
            "sample (a healthy face video and a synthetic palsy version of it) here.")
    if not st.button("Analyse the sample", type="primary", icon=":material/play_arrow:",
                     key="ablation_sample"):
        st.stop()
    ua.run_samples(loaded)
    if ua.current_analysis(loaded) is None:
        st.stop()
    st.rerun()  # drop the "no analysis yet" note now that there is one

name = st.session_state.get("analysis_name", scored.analysis.name)
st.caption(f"Current input: **{name}** ({scored.analysis.n_frames} frames, "
           f"{len(scored.face_idx)} with a face).")
enabled = ua.modality_toggles(loaded, scored, "ablation")
if not enabled:
    st.warning("Enable at least one modality to score the input.")
    st.stop()
score = scored.score(enabled)
ua.verdict_metrics(score)
if not scored.has_face:
    st.warning("No face was found in this input, so there is nothing to ablate.")
    st.stop()

weights_col, _ = st.columns([2, 1])
with weights_col:
    st.subheader("Fusion weights")
    st.plotly_chart(weights_figure(score.weights), key="ablation_weights")
    st.caption("With every modality on these are the learned weights; switching some off "
               "renormalises the rest.")
# Full width: the subset names are long, and the verdict and side must stay in view.
st.subheader("Every modality subset on this input")
st.dataframe(ua.subsets_table(scored, enabled), hide_index=True, key="subsets_table",
             column_config={
                 "current": st.column_config.TextColumn("", width=30),
                 "modalities": st.column_config.TextColumn("modalities", width="medium"),
                 "n": st.column_config.NumberColumn("n", width=40),
                 "P(palsy)": st.column_config.ProgressColumn(
                     "P(palsy)", min_value=0.0, max_value=1.0, format="percent"),
                 "threshold": st.column_config.NumberColumn(format="percent"),
                 "verdict": st.column_config.TextColumn("verdict", width="medium"),
                 "affected side": st.column_config.TextColumn("affected side", width="small")})

st.subheader("Severity sweep")
st.markdown("Synthetic one-sided palsy of growing severity is drawn on one face of this input "
            "(`palsy_core.face.synth`); each version is detected and analysed from scratch and "
            "scored by the model's verdict and by each modality alone.")
t, side, steps = ua.sweep_controls(scored)
if st.button("Run the sweep", icon=":material/trending_up:", key="run_sweep"):
    with st.spinner(f"Synthesising and analysing {steps} faces…"):
        st.session_state["sweep"] = severity_sweep(loaded, scored.analysis, t, side,
                                                   np.linspace(0.0, 1.0, steps))
result = st.session_state.get("sweep")
if result is not None:
    st.plotly_chart(ua.sweep_figure(result, loaded.threshold(loaded.verdict_modalities)),
                    key="sweep_chart")
    cols = st.columns(len(result.frames))
    for col, sev, frame in zip(cols, result.severities, result.frames, strict=True):
        if frame.has_face:
            col.image(frame.rgb, caption=f"severity {sev:.2f}", width="stretch")
        else:
            col.caption(f"severity {sev:.2f}: no face found")
