"""Exports of one analysed file: a per-frame table and a self-contained HTML report.

Both are built from a ``ScoredMedia`` and the modalities the user has enabled, so an export shows
exactly what the dashboard showed. The HTML report embeds its images as PNG data URIs and draws its
timeline as inline SVG: it opens offline, can be mailed as one file and loads nothing from anywhere.
The frame views (overlays, Emotrics left/right table) are shared with the dashboard.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from PIL import Image

from palsy_core.face.alignment import align
from palsy_core.inference.explain import grad_cam, overlay_heatmap
from palsy_core.inference.scoring import ScoredMedia, SubsetScore
from palsy_core.metrics import FLAG_NAMES, deciding_frames, retake_hint
from palsy_core.modalities.line_segments import draw_landmarks, overlay_line_segments
from palsy_core.registry import EMOTRICS_FEATURES, EMOTRICS_MEASURES, FRAME_FEATURES, modality
from palsy_core.settings import DISCLAIMER, __version__

_COLUMN = {f.key: i for i, f in enumerate(FRAME_FEATURES)}


# --- shared frame views ------------------------------------------------------------------------


def emotrics_sides(features: np.ndarray) -> pd.DataFrame:
    """One frame's (or a median's) Emotrics measures: measure, unit, right, left, difference and
    the measure's definition."""
    rows = []
    for key, name, unit, definition in EMOTRICS_MEASURES:
        right, left = (float(features[_COLUMN[f"{key}_{s}"]]) for s in ("right", "left"))
        rows.append({"measure": name, "unit": unit, "right": right, "left": left,
                     "difference": abs(right - left), "definition": definition + "."})
    return pd.DataFrame(rows)


def overlay_face(scored: ScoredMedia, t: int, landmarks: bool = True, lines: bool = True
                 ) -> np.ndarray:
    """Frame ``t``'s aligned face with the landmark dots and/or the line segments drawn on it."""
    a = scored.analysis
    out = a.rgb[t].copy()
    if not a.has_face[t]:
        return out
    points = align(a.points[t], out.shape[0]).points
    if lines:
        out = overlay_line_segments(out, points)
    if landmarks:
        out = draw_landmarks(out, points)
    return out


def image_modalities(scored: ScoredMedia, enabled: Sequence[str]) -> list[str]:
    """The enabled image branches, the ones Grad-CAM can explain."""
    return [m for m in scored.modalities if m in enabled and modality(m).kind == "image"]


def cam_overlay(scored: ScoredMedia, t: int, key: str, enabled: Sequence[str]) -> np.ndarray:
    """Grad-CAM of image branch ``key`` over the image that branch sees at frame ``t``."""
    base = scored.analysis.rgb[t] if key == "rgb" else scored.analysis.lines[t]
    return overlay_heatmap(base, grad_cam(scored.loaded, scored, t, key, enabled))


def key_frames(score: SubsetScore, flags: Sequence[tuple[str, ...]], k: int = 3) -> list[int]:
    """Up to ``k`` frames worth showing: the most and least palsy-like and the median one, from
    frames without quality flags when there are any."""
    p = score.p_frames
    idx = np.flatnonzero(deciding_frames(~np.isnan(p), flags))
    if not len(idx):
        return []
    order = idx[np.argsort(p[idx], kind="stable")]
    picks = (order[-1], order[len(order) // 2], order[0])
    return list(dict.fromkeys(int(i) for i in picks))[:k]


# --- per-frame table ---------------------------------------------------------------------------


def frame_table(scored: ScoredMedia, enabled: Sequence[str]) -> pd.DataFrame:
    """One row per analysed frame: time, quality, pose, P(palsy) fused over ``enabled`` and per
    modality alone, P(affected side = left), and every Emotrics measure (mm, degrees, %)."""
    a = scored.analysis
    full = scored.score(enabled)
    table = pd.DataFrame({
        "frame": np.arange(a.n_frames),
        "source_frame": a.frame_index,
        "timestamp_s": a.timestamps,
        "has_face": a.has_face,
        "n_faces": a.n_faces,
        "quality_flags": [";".join(f) for f in scored.frame_flags],
        "yaw_deg": a.pose[:, 0], "pitch_deg": a.pose[:, 1], "roll_deg": a.pose[:, 2],
        "p_fused": full.p_frames,
    })
    for m in scored.modalities:
        table[f"p_{m}"] = scored.score((m,)).p_frames
    table["p_left"] = full.p_left_frames
    for f in EMOTRICS_FEATURES:
        table[f.key] = a.features[:, _COLUMN[f.key]]
    return table


# --- HTML report -------------------------------------------------------------------------------


def png_data_uri(rgb: np.ndarray) -> str:
    """An RGB uint8 image as a ``data:image/png;base64,...`` URI."""
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def pct(p: float | None) -> str:
    return "n/a" if p is None or not np.isfinite(p) else f"{100 * p:.1f}%"


def _num(v: float) -> str:
    return "n/a" if not np.isfinite(v) else f"{v:.2f}"


def html_table(cells: Sequence[Sequence[str]], header: Sequence[str] = ()) -> str:
    """An HTML table; cells are already escaped HTML."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in cells)
    return f"<table>{f'<tr>{head}</tr>' if head else ''}{body}</table>"


def _measures_table(features: np.ndarray, definitions: bool = False) -> str:
    """The Emotrics measures; each name carries its definition on hover, and ``definitions``
    lists them under the table (once per report, so that they print)."""
    df = emotrics_sides(features)
    table = html_table([[f"<span title='{html.escape(r.definition, quote=True)}'>"
                    f"{html.escape(r.measure)}</span>", r.unit, _num(r.right), _num(r.left),
                   _num(r.difference)] for r in df.itertuples()],
                  ["measure", "unit", "right", "left", "|right - left|"])
    terms = "".join(f"<dt>{html.escape(r.measure)}</dt><dd>{html.escape(r.definition)}</dd>"
                    for r in df.itertuples())
    return f"{table}<p><b>Definitions</b></p><dl>{terms}</dl>" if definitions else table


def _timeline_svg(score: SubsetScore, times: np.ndarray, width: int = 640, height: int = 200
                  ) -> str:
    """P(palsy) per frame as an inline SVG chart: y axis P(palsy) 0-1 with ticks, x axis time
    in seconds with ticks, the decision threshold dashed and labelled."""
    p = score.p_frames
    ok = ~np.isnan(p)
    if ok.sum() < 2:
        return ""
    left, right, top, bottom = 48, 12, 10, 38  # margins for the tick labels and axis titles
    w, h = width - left - right, height - top - bottom
    t0, t1 = float(times[0]), float(times[-1])
    span = (t1 - t0) or 1.0

    def sx(t: float) -> float:
        return left + (t - t0) / span * w

    def sy(v: float) -> float:
        return top + (1 - v) * h

    parts = [f'<svg width="{width}" height="{height}" role="img" '
             f'aria-label="P(palsy) per frame against time" font-family="sans-serif" '
             f'font-size="11">',
             f'<rect x="{left}" y="{top}" width="{w}" height="{h}" fill="#fafafa" '
             f'stroke="#ccc"/>']
    for v in (0.0, 0.25, 0.5, 0.75, 1.0):
        parts.append(f'<line x1="{left - 4}" x2="{left}" y1="{sy(v):.1f}" y2="{sy(v):.1f}" '
                     f'stroke="#666"/><text x="{left - 6}" y="{sy(v) + 4:.1f}" '
                     f'text-anchor="end">{v:.2f}</text>')
    for t in np.linspace(t0, t1, 5):
        parts.append(f'<line x1="{sx(t):.1f}" x2="{sx(t):.1f}" y1="{top + h}" '
                     f'y2="{top + h + 4}" stroke="#666"/><text x="{sx(t):.1f}" '
                     f'y="{top + h + 16}" text-anchor="middle">{t:.1f}</text>')
    parts.append(f'<text x="{left + w / 2:.1f}" y="{height - 4}" text-anchor="middle">'
                 f'time (s)</text>')
    parts.append(f'<text x="12" y="{top + h / 2:.1f}" text-anchor="middle" '
                 f'transform="rotate(-90 12 {top + h / 2:.1f})">P(palsy)</text>')
    ty = sy(score.threshold)
    parts.append(f'<line x1="{left}" x2="{left + w}" y1="{ty:.1f}" y2="{ty:.1f}" stroke="#999" '
                 f'stroke-dasharray="4 3"/><text x="{left + w - 2}" y="{ty - 3:.1f}" '
                 f'text-anchor="end" fill="#777">threshold {score.threshold:.2f}</text>')
    pts = " ".join(f"{sx(t):.1f},{sy(v):.1f}" for t, v, o in zip(times, p, ok, strict=True) if o)
    parts.append(f'<polyline points="{pts}" fill="none" stroke="#c0392b" stroke-width="2"/>')
    return "".join(parts) + "</svg>"


def _figure(uri: str, caption: str) -> str:
    return (f'<figure><img src="{uri}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _key_frame(scored: ScoredMedia, score: SubsetScore, t: int, enabled: Sequence[str]) -> str:
    a = scored.analysis
    figures = [_figure(png_data_uri(overlay_face(scored, t)), "face with landmarks and lines"),
               _figure(png_data_uri(a.lines[t]), "line-segment image")]
    figures += [_figure(png_data_uri(cam_overlay(scored, t, m, enabled)),
                        f"Grad-CAM: {modality(m).name}") for m in image_modalities(scored, enabled)]
    flags = ", ".join(FLAG_NAMES.get(f, f) for f in scored.frame_flags[t]) or "none"
    return (f"<section class='frame'><h3>Frame {t} at {a.timestamps[t]:.2f} s: P(palsy) "
            f"{pct(score.p_frames[t])}</h3><p>Quality flags: {html.escape(flags)}</p>"
            f"<div class='figs'>{''.join(figures)}</div>{_measures_table(a.features[t])}</section>")


REPORT_STYLE = """
body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;color:#222;padding:0 1em}
.disclaimer{background:#fff3cd;border:1px solid #e0c36a;padding:.8em 1em;border-radius:4px}
.verdict{font-size:1.4em;font-weight:600} table{border-collapse:collapse;margin:.6em 0}
td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left} th{background:#f4f4f4}
.figs{display:flex;flex-wrap:wrap;gap:.8em} figure{margin:0} figcaption{font-size:.85em}
img{width:224px;height:auto;image-rendering:auto}
"""


def html_report(scored: ScoredMedia, enabled: Sequence[str], title: str) -> str:
    """The whole report as one HTML document with no external resources."""
    a = scored.analysis
    score = scored.score(enabled)
    names = {m: modality(m).name for m in scored.modalities}
    quality: dict[str, int] = {}
    for fl in scored.frame_flags:
        for f in fl:
            quality[f] = quality.get(f, 0) + 1
    side = "n/a" if score.side is None else f"subject's {score.side}"
    summary = [
        ["File", html.escape(a.name)], ["Kind", a.kind],
        ["Frames analysed", str(a.n_frames)], ["Frames with a face", str(int(a.has_face.sum()))],
        ["Modalities used", html.escape(", ".join(names[m] for m in score.enabled)) + (
            "" if score.enabled == scored.loaded.verdict_modalities else
            " (an ablation: the model's own verdict fuses "
            + html.escape(", ".join(names[m] for m in scored.loaded.verdict_modalities)) + ")")],
        ["P(palsy)", pct(score.p)], ["Decision threshold", pct(score.threshold)],
        ["Affected side", html.escape(side) + f" (P(left) {pct(score.p_left)})"],
        ["Quality flags", html.escape("; ".join(f"{FLAG_NAMES.get(k, k)}: {v} frame(s)"
                                                for k, v in quality.items()) or "none")],
    ]
    per_modality = [[html.escape(names[m]), pct(score.weights.get(m)),
                     pct(scored.score((m,)).p)] for m in scored.modalities]
    rows = a.features[deciding_frames(a.has_face, scored.frame_flags)]
    measures = ""
    if len(rows):
        measures = (f"<h2>Measurements (median over {len(rows)} frames)</h2>"
                    f"{_measures_table(np.median(rows, axis=0), definitions=True)}")
    frames = "".join(_key_frame(scored, score, t, enabled)
                     for t in key_frames(score, scored.frame_flags))
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    no_verdict = (f"<p>No verdict: {html.escape(score.inconclusive)}. "
                  f"{html.escape(retake_hint(score.inconclusive))}</p>"
                  if score.inconclusive else
                  f"<p>Caution: {html.escape(score.caution)}.</p>" if score.caution else "")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{REPORT_STYLE}</style></head><body>
<h1>{html.escape(title)}</h1>
<p class="disclaimer"><strong>{html.escape(DISCLAIMER)}</strong></p>
<p class="verdict">{html.escape(score.verdict.capitalize())}: P(palsy) {pct(score.p)}</p>
{no_verdict}
{html_table(summary)}
<h2>Per modality</h2>
{html_table(per_modality, ["modality", "fusion weight", "P(palsy) alone"])}
<h2>P(palsy) per frame</h2>{_timeline_svg(score, a.timestamps)}
{measures}
<h2>Key frames</h2>{frames or "<p>No frame with a face.</p>"}
<p><small>palsy-fusion {__version__}, {stamp}. Left and right are the subject's own sides.
Measurements use the iris diameter (11.7 mm) as the ruler.</small></p>
</body></html>
"""
