"""The Progress page's pieces: score uploaded dated files from memory, and the trend figure."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date

import plotly.graph_objects as go

from palsy_core.extraction.pipeline import Settings
from palsy_core.inference.exam import REGIONS as EXAM_REGIONS
from palsy_core.inference.progress import parse_dates, progress_record
from palsy_core.inference.scoring import LoadedModel
from palsy_core.inference.screen import Screener
from ui.analysis import COLOURS


def dates_from_upload(data: bytes) -> dict[str, date]:
    """An uploaded ``name,date`` CSV; ValueError names the first bad row."""
    return parse_dates(data.decode("utf-8-sig", errors="replace"))


def score_uploads(loaded: LoadedModel, uploads: Sequence, dates: dict[str, date],
                  on_file: Callable[[int, int, str], None] | None = None) -> list[dict]:
    """One record per uploaded file, scored from its bytes (nothing is written to disk), in date
    order (undated last)."""
    records = []
    with Screener(loaded, Settings()) as screener:
        for i, upload in enumerate(uploads):
            records.append(progress_record(screener, upload.name, upload.getvalue(), dates))
            if on_file is not None:
                on_file(i + 1, len(uploads), upload.name)
    return sorted(records, key=lambda r: (r["date"] is None, r["date"] or ""))


def trend_figure(records: Sequence[dict], summary: dict) -> go.Figure:
    """P(palsy) per dated file, the smoothed trend with its 95 % band, the threshold."""
    dated = [r for r in records if r.get("date") and r.get("p_palsy") is not None]
    pts = summary["points"]
    fig = go.Figure()
    if pts:
        x = [p["date"] for p in pts]
        fig.add_trace(go.Scatter(x=x + x[::-1], y=[p["high"] for p in pts] +
                                 [p["low"] for p in pts][::-1], fill="toself",
                                 fillcolor="rgba(43,111,143,0.15)", line={"width": 0}, mode="lines",
                                 hoverinfo="skip", name="95 % band"))
        fig.add_trace(go.Scatter(x=x, y=[p["p_trend"] for p in pts], mode="lines",
                                 line={"color": COLOURS[0], "width": 3},
                                 name=f"trend ({summary['bandwidth_days']:g}-day kernel)"))
    fig.add_trace(go.Scatter(x=[r["date"] for r in dated], y=[r["p_palsy"] for r in dated],
                             mode="markers", marker={"color": COLOURS[1], "size": 9},
                             text=[r["path"] for r in dated], name="one file",
                             hovertemplate="%{x}: P(palsy) %{y:.2f}<br>%{text}<extra></extra>"))
    if summary.get("threshold") is not None:
        fig.add_hline(y=summary["threshold"], line_dash="dash", line_color="grey",
                      annotation_text=f"threshold {summary['threshold']:.2f}")
    fig.update_layout(yaxis={"title": "P(palsy)", "range": [0, 1]}, xaxis_title="date",
                      height=360, margin={"l": 10, "r": 10, "t": 10, "b": 10},
                      legend={"orientation": "h", "y": -0.25})
    return fig


def scores_figure(records: Sequence[dict], summary: dict) -> go.Figure:
    """Each region's at-rest score (the guided exam's static items, 0-100) per dated file, its
    smoothed trend and 95 % band."""
    dated = [r for r in records if r.get("date") and r.get("scores")]
    fig = go.Figure()
    for colour, (region, name) in zip(COLOURS, EXAM_REGIONS.items(), strict=False):
        pts = summary.get("regions", {}).get(region, [])
        if pts:
            x = [p["date"] for p in pts]
            low = [p["low"] if p["low"] is not None else p["score_trend"] for p in pts]
            high = [p["high"] if p["high"] is not None else p["score_trend"] for p in pts]
            fig.add_trace(go.Scatter(x=x + x[::-1], y=high + low[::-1], fill="toself",
                                     fillcolor=colour, opacity=0.12, line={"width": 0},
                                     mode="lines", hoverinfo="skip", showlegend=False,
                                     legendgroup=region))
            fig.add_trace(go.Scatter(x=x, y=[p["score_trend"] for p in pts], mode="lines",
                                     line={"color": colour, "width": 3}, name=name,
                                     legendgroup=region,
                                     hovertemplate=f"%{{x}}: {name} trend %{{y:.0f}}"
                                                   "<extra></extra>"))
        fig.add_trace(go.Scatter(
            x=[r["date"] for r in dated], y=[r["scores"].get(region) for r in dated],
            mode="markers", marker={"color": colour, "size": 7}, showlegend=False,
            legendgroup=region, hovertemplate=f"%{{x}}: {name} %{{y:.0f}}<extra></extra>"))
    fig.update_layout(yaxis={"title": "at-rest score (100 = symmetric)", "range": [0, 102]},
                      xaxis_title="date", height=320,
                      margin={"l": 10, "r": 10, "t": 30, "b": 10},
                      title={"text": "Regional scores at rest: each file, trend and 95 % band "
                                     "(guided exam items; computed, not clinically validated)",
                             "font": {"size": 13}},
                      legend={"orientation": "h", "y": -0.3})
    return fig
