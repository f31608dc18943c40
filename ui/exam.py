"""The guided exam's result panel and timeline, shared by the Live page and the Exam page."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from palsy_core.inference.exam import ITEMS, KINDS, PROTOCOL, REGIONS, Exam, Segmentation
from palsy_core.inference.exam_report import (
    KIND_NAMES,
    NOT_VALIDATED,
    exam_html,
    exam_pdf,
    key_frame_image,
)
from palsy_core.inference.scoring import ScoredMedia

ROW_PX = 35  # st.dataframe's row height: the regional table is shown whole, never scrolled
COLOURS = ("#636efa", "#ef553b", "#00cc96", "#ab63fa", "#ffa15a", "#19d3f3", "#ff6692")


def _score(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.0f}"


def _side(side: str | None) -> str:
    return "None" if side is None else side.capitalize()


def _pct(p: float | None) -> str:
    return "n/a" if p is None or not np.isfinite(p) else f"{p:.2f}"


def regional_frame(exam: Exam) -> pd.DataFrame:
    """One row per item: region, kind, item, right, left, unit, score, the side it points to
    (why an item is not graded is listed under the table)."""
    rows = [{"region": REGIONS[s.item.region], "kind": KIND_NAMES[s.item.kind],
             "item": s.item.name, "right": s.right, "left": s.left, "unit": s.item.unit,
             "score": s.score, "points to": s.affected or ""}
            for r in REGIONS for s in exam.items if s.item.region == r]
    return pd.DataFrame(rows)


def show_exam(exam: Exam, scored: ScoredMedia, key: str, title: str,
              redo: Callable[[str], None] | None = None) -> None:
    """The graded exam: verdict and scores, the regional table, each movement's key frame (with a
    redo button when ``redo`` is given), the formulas and the downloads."""
    st.info(NOT_VALIDATED, icon=":material/info:")
    verdict = st.columns([3, 2, 2])
    verdict[0].metric("Model verdict", exam.verdict,
                      help=f"P(palsy) {_pct(exam.p)} over every exam frame; threshold "
                           f"{_pct(exam.threshold)}")
    verdict[1].metric("P(palsy), all movements", _pct(exam.p))
    verdict[2].metric("Affected side (model)", _side(exam.model_side),
                      help="The subject's own side, from the model's verdict.")
    if exam.inconclusive:
        st.warning(f"No verdict from the model: {exam.inconclusive}.")
    grades = st.columns(5)
    grades[0].metric("Exam total", _score(exam.total),
                     help="Mean of every graded item, 0-100, 100 normal (eFACE-style).")
    for col, kind in zip(grades[1:4], KINDS, strict=True):
        col.metric(KIND_NAMES[kind], _score(exam.mean(kind=kind)))
    grades[4].metric("Exam points to", _side(exam.side),
                     help="The subject's own side the graded items point to, each weighted by "
                          "how far its score is from 100.")

    st.subheader("Regional scores")
    region_cols = st.columns(len(REGIONS))
    for col, (r, name) in zip(region_cols, REGIONS.items(), strict=True):
        col.metric(name, _score(exam.mean(region=r)))
    table = regional_frame(exam)
    st.dataframe(
        table, hide_index=True, key=f"{key}_regional", height=ROW_PX * (len(table) + 1) + 3,
        column_config={
            "right": st.column_config.NumberColumn(format="%.1f"),
            "left": st.column_config.NumberColumn(format="%.1f"),
            "score": st.column_config.ProgressColumn(min_value=0, max_value=100, format="%.0f"),
        })
    for s in exam.items:
        if s.note:
            st.caption(f"**{s.item.name}** not graded: {s.note}.")

    st.subheader("Movements")
    per_row = 4
    for start in range(0, len(exam.movements), per_row):
        cols = st.columns(per_row)
        for col, m in zip(cols, exam.movements[start: start + per_row], strict=False):
            with col:
                st.markdown(f"**{m.movement.name}**")
                if m.key_frame is not None:
                    st.image(key_frame_image(scored, m.key_frame), width="stretch")
                else:
                    st.caption("No usable frame with a face.")
                st.caption(f"P(palsy) {_pct(m.p)} · {len(m.frames)} frame(s)")
                if redo is not None:
                    st.button("Redo", key=f"{key}_redo_{m.movement.key}",
                              on_click=redo, args=(m.movement.key,),
                              help=f"Capture '{m.movement.name}' again")
    if exam.notes:
        st.caption("Notes: " + " · ".join(exam.notes))
    with st.expander("How each item is scored"):
        st.markdown("\n".join(f"- **{i.name}** ({KIND_NAMES[i.kind].lower()}, "
                              f"{REGIONS[i.region]}): {i.formula}" for i in ITEMS))
        st.caption("Millimetres use the iris diameter (11.7 mm) of the resting frames as the "
                   "ruler; left and right are the subject's own sides.")
    # The reports are built when their button is clicked, not on every rerun of the page.
    downloads = st.columns(3)
    downloads[0].download_button(
        "Report (HTML)", lambda: exam_html(exam, scored, title), file_name="exam_report.html",
        mime="text/html", key=f"{key}_html", icon=":material/description:")
    downloads[1].download_button(
        "Report (PDF)", lambda: exam_pdf(exam, scored, title), file_name="exam_report.pdf",
        mime="application/pdf", key=f"{key}_pdf", icon=":material/picture_as_pdf:")
    downloads[2].download_button(
        "Scores (JSON)", json.dumps(exam.to_dict(), indent=2), file_name="exam.json",
        mime="application/json", key=f"{key}_json", icon=":material/data_object:")


def timeline_figure(found: Segmentation, timestamps: np.ndarray,
                    times: dict[str, tuple[float, float]]) -> go.Figure:
    """Each movement's activation over time, with the segments in use shaded."""
    fig = go.Figure()
    for i, (colour, m) in enumerate(zip(COLOURS, PROTOCOL, strict=True)):
        if m.key in times:
            start, end = times[m.key]
            fig.add_vrect(x0=start, x1=max(end, start + 0.05), fillcolor=colour, opacity=0.15,
                          line_width=0, annotation_text=m.name, annotation_font_size=10,
                          annotation_position="top left" if i % 2 else "bottom left")
        if m.key in found.activation:
            fig.add_trace(go.Scatter(x=timestamps, y=found.activation[m.key], name=m.name,
                                     mode="lines", line={"color": colour}))
    fig.update_layout(height=280, margin={"l": 10, "r": 10, "t": 30, "b": 10},
                      xaxis_title="time (s)", yaxis_title="activation",
                      legend={"orientation": "h", "y": -0.3})
    return fig
