"""Evaluation views shared by the Home and Evaluation pages.

One ``EvaluationResult`` (metrics, predictions, variant names, unreadable files) feeds the same
views whether it comes from the shipped model's cross-validation artifacts or from the user's own
labelled data, so both are shown identically. Table and figure builders are plain functions;
only the ``show_*`` functions draw.
"""

from __future__ import annotations

import json
import os
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.colors import qualitative

from palsy_core.engine import ADDRESS_ENV, EngineOptions, open_engine
from palsy_core.evaluation.curves import Curves, curves_for
from palsy_core.evaluation.evaluate import (
    EvaluateJob,
    contrast_table,
    evaluate_record,
    inconclusive_rows,
    metrics_from_predictions,
    seen_in_training,
    transfer_tables,
    transfer_verdict,
    variant_names,
)
from palsy_core.extraction.pipeline import Settings
from palsy_core.inference.scoring import LoadedModel
from palsy_core.io.bundle import rows_outside
from palsy_core.io.manifest import LABELS, read_manifest
from palsy_core.model.fusion import variant_label, verdict_first
from palsy_core.registry import MODALITIES

PALETTE = qualitative.Plotly
METRIC_COLUMNS = {"n": "files", "precision": "precision", "recall": "recall", "f1": "F1",
                  "accuracy": "accuracy", "auroc": "AUROC", "threshold": "mean threshold"}


@dataclass
class EvaluationResult:
    """Everything the evaluation views show for one set of labelled files."""

    title: str
    metrics: dict  # evaluate.metrics_from_predictions: overall, per_source, no_face
    predictions: pd.DataFrame  # one row per file: path, subject, source, y, p_<v>, thr_<v>
    names: list[str]  # variants in display order
    errors: dict[str, str] = field(default_factory=dict)  # manifest path -> why it was unreadable
    seen_in_training: list[str] = field(default_factory=list)  # manifest paths the model saw

    @property
    def no_face(self) -> list[str]:
        return [p for p in self.metrics.get("no_face", []) if p not in self.errors]


def weights_figure(weights: dict[str, float]) -> go.Figure:
    """Horizontal bars of the fusion weights, labelled with the modality names."""
    names = {m.key: m.name for m in MODALITIES}
    fig = go.Figure(go.Bar(x=list(weights.values()), y=[names.get(k, k) for k in weights],
                           orientation="h", text=[f"{w:.2f}" for w in weights.values()],
                           marker_color=PALETTE[0]))
    fig.update_layout(xaxis_title="fusion weight", yaxis_autorange="reversed", height=80 +
                      40 * len(weights), margin={"l": 10, "r": 10, "t": 10, "b": 10})
    return fig


def load_cv(cv_dir: Path) -> EvaluationResult | None:
    """The CV artifacts in ``cv_dir`` (metrics.json + predictions.csv), None when absent."""
    metrics_file, preds_file = cv_dir / "metrics.json", cv_dir / "predictions.csv"
    if not (metrics_file.is_file() and preds_file.is_file()):
        return None
    metrics = json.loads(metrics_file.read_text(encoding="utf-8"))
    predictions = pd.read_csv(preds_file, dtype={"subject": str, "source": str, "path": str})
    title = f"Cross-validation ({metrics.get('cv', 'unknown scheme')}) of `{cv_dir.name}`"
    return EvaluationResult(title, metrics, predictions, list(metrics["overall"]))


def evaluate_manifest(
    manifest: Path,
    loaded: LoadedModel,
    settings: Settings,
    cache_dir: Path | None = None,
    confine_to: Path | None = None,
    on_progress: Callable[[int, int, str], None] | None = None,
    title: str | None = None,
) -> EvaluationResult:
    """Score a labelled manifest with ``loaded``; missing or unreadable files are listed with
    their reasons while the rest are scored.

    ``confine_to`` refuses rows outside that folder (uploaded bundles). ``on_progress(done, total,
    name)`` is called after each file. Raises ManifestError for a manifest that cannot be used.
    """
    rows = read_manifest(manifest, check_files=False)
    refused = rows_outside(rows, confine_to) if confine_to is not None else {}
    refused |= {r.path: "file not found" for r in rows
                if r.path not in refused and not r.path.is_file()}
    todo = [r for r in rows if r.path not in refused]
    # The dashboard scores here, file after file; with $RAY_ADDRESS set, on that Ray cluster.
    options = EngineOptions(engine="ray" if os.environ.get(ADDRESS_ENV) else "local",
                            progress=False)
    done: dict[Path, dict] = {}
    with open_engine(options) as engine:
        for i, record in engine.map(EvaluateJob(loaded, settings, cache_dir), todo):
            done[todo[i].path] = record
            if on_progress is not None:
                on_progress(len(done), len(todo), todo[i].path.name)
    records = [done.get(r.path) or evaluate_record(r, None, refused[r.path], loaded)
               for r in rows]
    errors = {**refused, **{p: rec["error"] for p, rec in done.items() if rec.get("error")}}
    df, names = pd.DataFrame.from_records(records), variant_names(loaded)
    metrics = {**metrics_from_predictions(df, names), "verdict": loaded.verdict_name}
    return EvaluationResult(title or f"`{manifest.name}`", metrics, df, names,
                            {r.rel: errors[r.path] for r in rows if r.path in errors},
                            seen_in_training(loaded.meta,
                                             [r for r in rows if r.path not in errors]))


def metrics_table(block: dict, names: list[str], verdict: str | None = None) -> pd.DataFrame:
    """One row per variant: files, precision, recall, F1, accuracy, AUROC, mean threshold (the
    ``verdict`` variant marked)."""
    rows = {variant_label(n, verdict): {label: block[n].get(k)
                                        for k, label in METRIC_COLUMNS.items()}
            for n in names if n in block}
    return pd.DataFrame.from_dict(rows, orient="index").apply(pd.to_numeric).round(3)


def per_source_table(metrics: dict, name: str) -> pd.DataFrame:
    """One row per source for variant ``name`` (from ``metrics['per_source']``).

    A source of one class has no AUROC, and precision, recall and F1 say nothing about healthy
    faces: such cells are left empty (NaN), and "files right" (accuracy) is what it shows.
    """
    rows = {}
    for src, block in metrics.get("per_source", {}).items():
        if name not in block:
            continue
        m = block[name]
        one_class = m.get("auroc") is None
        healthy_only = m.get("n_palsy", 0) == 0
        rows[src] = {"files": m["n"], "palsy files": m.get("n_palsy"),
                     "files right": m.get("accuracy"),
                     **{label: (None if healthy_only else m.get(k))
                        for k, label in (("precision", "precision"), ("recall", "recall"),
                                         ("f1", "F1"))},
                     "AUROC": None if one_class else m.get("auroc"),
                     "threshold": m.get("threshold")}
    return pd.DataFrame.from_dict(rows, orient="index").apply(pd.to_numeric).round(3)


def per_subject_table(df: pd.DataFrame, name: str) -> pd.DataFrame:
    """One row per subject for variant ``name``, least accurate first.

    A file counts as correct when its P(palsy) vs its own threshold matches its label; files
    without a score (no face, unreadable) are counted but never correct.
    """
    p = df[f"p_{name}"].astype(float)
    thr = df[f"thr_{name}"].astype(float) if f"thr_{name}" in df else 0.5
    scored = p.notna()
    pred = scored & (p >= thr)
    t = pd.DataFrame({"subject": df["subject"].astype(str),
                      "source": df["source"].fillna("").astype(str), "y": df["y"],
                      "scored": scored, "pred": pred,
                      "correct": scored & (pred.astype(int) == df["y"]), "p": p})
    g = t.groupby("subject", sort=True)
    out = pd.DataFrame({
        "sources": g["source"].agg(lambda s: ", ".join(sorted(set(s) - {""}))),
        "files": g.size(), "scored": g["scored"].sum(), "labelled palsy": g["y"].sum(),
        "predicted palsy": g["pred"].sum(), "correct": g["correct"].sum(),
        "mean P(palsy)": g["p"].mean().round(3),
    })
    out["accuracy"] = (out["correct"] / out["scored"].where(out["scored"] > 0)).round(3)
    return out.sort_values(["accuracy", "files"], ascending=[True, False], na_position="first")


TITLE_CHARS = 24  # confusion-matrix title characters per line


def confusion_figure(m: dict, title: str) -> go.Figure:
    """A 2x2 heatmap, coloured by the share of each true class, with the counts written in."""
    z = np.asarray(m["confusion"], dtype=float)
    rows = z.sum(axis=1, keepdims=True)
    share = np.divide(z, rows, out=np.zeros_like(z), where=rows > 0)
    cell = (("TN", "FP"), ("FN", "TP"))
    text = [[f"{cell[i][j]} {int(z[i, j])}<br>{100 * share[i, j]:.0f}%" for j in range(2)]
            for i in range(2)]
    fig = go.Figure(go.Heatmap(
        z=share, x=list(LABELS), y=list(LABELS), text=text, texttemplate="%{text}",
        colorscale="Blues", zmin=0, zmax=1, showscale=False,
        hovertemplate="true %{y}, predicted %{x}: %{text}<extra></extra>"))
    # A quarter of a laptop screen holds about 24 characters of the title's size: wrap there.
    lines = textwrap.wrap(title, TITLE_CHARS, break_on_hyphens=False) or [""]
    extra = 18 * (len(lines) - 1)
    fig.update_layout(
        title={"text": "<br>".join(lines) + f"<br><sup>F1 {m['f1']:.2f} · accuracy "
                       f"{m['accuracy']:.2f} · n {m['n']}</sup>", "font": {"size": 14}},
        xaxis_title="predicted", yaxis_title="true", yaxis_autorange="reversed",
        height=290 + extra, margin={"l": 10, "r": 10, "t": 70 + extra, "b": 10})
    return fig


def _curve_figure(curves: dict[str, Curves], roc: bool) -> go.Figure:
    fig = go.Figure()
    if roc:
        fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance",
                                 line={"dash": "dot", "color": "grey"}, hoverinfo="skip"))
    elif curves:
        first = next(iter(curves.values()))
        rate = first.n_palsy / first.n
        fig.add_trace(go.Scatter(x=[0, 1], y=[rate, rate], mode="lines", name="chance",
                                 line={"dash": "dot", "color": "grey"}, hoverinfo="skip"))
    for i, (name, c) in enumerate(curves.items()):
        colour = PALETTE[i % len(PALETTE)]
        label = variant_label(name)
        x, y = (c.fpr, c.tpr) if roc else (c.recall, c.precision)
        px, py = (c.point_fpr, c.point_tpr) if roc else (c.point_tpr, c.point_precision)
        score = f"AUROC {c.auroc:.2f}" if roc else f"AP {c.average_precision:.2f}"
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=f"{label} ({score})",
                                 legendgroup=name, line={"color": colour,
                                                         "shape": "linear" if roc else "vh"}))
        fig.add_trace(go.Scatter(
            x=[px], y=[py], mode="markers", legendgroup=name, showlegend=False,
            marker={"color": colour, "size": 10, "line": {"color": "white", "width": 1}},
            hovertemplate=f"{label} at its threshold: %{{x:.2f}}, %{{y:.2f}}<extra></extra>"))
    xt, yt = ("false positive rate", "true positive rate (recall)") if roc else (
        "recall", "precision")
    fig.update_layout(
        title="ROC" if roc else "Precision-recall", xaxis_title=xt, yaxis_title=yt, height=460,
        xaxis_range=[-0.02, 1.02], yaxis_range=[-0.02, 1.02],
        legend={"orientation": "h", "y": -0.2}, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig


def roc_figure(curves: dict[str, Curves]) -> go.Figure:
    """ROC curves with each variant's operating point (its thresholds) as a dot."""
    return _curve_figure(curves, roc=True)


def pr_figure(curves: dict[str, Curves]) -> go.Figure:
    """Precision-recall curves (step-wise, as average precision integrates them) with dots."""
    return _curve_figure(curves, roc=False)


def show_problem(exc: Exception) -> None:
    """An error whose first line is the summary and the rest a list (bad rows, bad members)."""
    head, _, rest = str(exc).partition("\n")
    st.error(head)
    if rest:
        st.code(rest, language=None)


def show_evaluation(result: EvaluationResult, key: str) -> None:
    """All evaluation views of one result; ``key`` keeps widget keys apart between results."""
    overall = result.metrics.get("overall", {})
    verdict = result.metrics.get("verdict") or "fused"
    names = verdict_first((n for n in result.names if n in overall), verdict)

    def label(name: str) -> str:
        return variant_label(name, verdict)

    st.markdown(f"**{result.title}**: {result.metrics.get('n_files', len(result.predictions))} "
                f"files, {len(result.no_face)} without a face, {len(result.errors)} unreadable.")
    if result.seen_in_training:
        n = len(result.seen_in_training)
        st.warning(f"The loaded model was trained on {n} of these files (the same file "
                   "contents): on them the metrics below measure what the model remembers, not "
                   "how it screens a new face. Evaluate on files it has not seen, or read the "
                   "transfer check on the first tab.", icon=":material/warning:")
    if result.errors:
        st.error(f"{len(result.errors)} file(s) could not be read and were left out:")
        st.dataframe(pd.DataFrame({"file": list(result.errors), "reason": list(
            result.errors.values())}), hide_index=True, key=f"{key}_errors")
    if result.no_face:
        st.warning(f"No face found in {len(result.no_face)} file(s), not scored: "
                   + ", ".join(result.no_face))
    unsure = result.metrics.get("inconclusive", [])
    if unsure:
        st.info(f"{len(unsure)} file(s) got an inconclusive verdict (every face frame turned, "
                "tilted, too small, blurred or unlike any training face) and are left out of "
                "the metrics, curves and tables below.", icon=":material/help:")
        reasons = result.predictions.set_index("path")["reason"] \
            if "reason" in result.predictions else pd.Series(dtype=str)
        with st.expander(f"The {len(unsure)} inconclusive file(s) and why"):
            st.markdown("\n".join(f"- `{p}`: {reasons.get(p, '') or 'no reason recorded'}"
                                   for p in unsure))
    conclusive = result.predictions[~inconclusive_rows(result.predictions)]
    if not names:
        st.warning("No file could be scored, so there are no metrics to show.")
        return
    st.dataframe(metrics_table(overall, names, verdict), key=f"{key}_metrics")

    st.subheader("Confusion matrices")
    st.caption("Rows are the true class, columns the prediction; colour is the share of each "
               "true class. Thresholds are the model's own (per fold in cross-validation).")
    singles = list(dict.fromkeys(n for n in (verdict, "fused", *(m.key for m in MODALITIES))
                                 if n in names))
    chosen = st.multiselect("Variants", names, default=singles[:4], format_func=label,
                            key=f"{key}_cm")
    cols = st.columns(4)
    for i, name in enumerate(chosen):
        with cols[i % 4]:
            st.plotly_chart(confusion_figure(overall[name], label(name)),
                            key=f"{key}_cm_{name}")

    st.subheader("ROC and precision-recall curves")
    picked = st.multiselect("Variants", names, default=singles, format_func=label,
                            key=f"{key}_curves")
    curves = curves_for(conclusive, picked)
    if curves:
        left, right = st.columns(2)
        left.plotly_chart(roc_figure(curves), key=f"{key}_roc")
        right.plotly_chart(pr_figure(curves), key=f"{key}_pr")
        st.caption("Dots mark where each variant operates at its thresholds.")
    else:
        st.info("Curves need scored files of both classes (healthy and palsy).")

    st.subheader("Per source and per subject")
    name = st.selectbox("Variant", names, format_func=label, key=f"{key}_table")
    st.dataframe(per_source_table(result.metrics, name), key=f"{key}_sources",
                 column_config={"files right": st.column_config.NumberColumn(
                     help="share of the source's files on the right side of the threshold"),
                     "AUROC": st.column_config.NumberColumn(
                         help="empty for a source of one class")})
    st.caption("Sources of one class (healthy-only, for example) have no AUROC; their "
               "precision, recall and F1 are left empty and \"files right\" is the share passed.")
    st.dataframe(per_subject_table(conclusive, name), key=f"{key}_subjects")


def load_transfer(cv_dir: Path) -> dict | None:
    """The leave-one-source-out summary (``train --transfer``), None when absent."""
    path = cv_dir / "transfer.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def load_contrast_pairs(cv_dir: Path, name: str) -> pd.DataFrame:
    """The transfer check per (held-out source, contrast source) pair, from its scored rows
    (``transfer_predictions.csv``); empty when they are absent."""
    path = cv_dir / "transfer_predictions.csv"
    return contrast_table(pd.read_csv(path), name) if path.is_file() else pd.DataFrame()


def pooled_transfer(summary: dict | None) -> dict | None:
    """The verdict's pooled metrics on the transfer check, None when there are none."""
    pooled = (summary or {}).get("variants", {}).get("pooled", {}) or {}
    return pooled.get(transfer_verdict(summary))


def show_transfer(cv_dir: Path) -> None:
    """The leave-one-source-out check, or how to make one."""
    summary = load_transfer(cv_dir)
    if summary is None:
        st.info("No transfer check next to this model: `python -m palsy_core train ... "
                "--transfer` writes `transfer.json` (`make train` does).")
        return
    real, synthetic, variants = transfer_tables(summary)
    st.caption("Each source held out in turn and scored against held-out people of the other "
               "class from the remaining sources, by a model trained on everything else (those "
               "people removed). AUROC within each fold; pooled numbers centre each fold's "
               "scores on its own threshold (the fold model's own, from its validation split). "
               "Files with an inconclusive verdict (every face frame turned, blurred, too small "
               "or unlike the fold model's training faces) are left out of the metrics and "
               "counted in the table. Numbers in percent."
               + (f" Every number is the mean of {runs} runs of the whole check with other "
                  "training seeds; each run's pooled AUROC / F1 is in the variants table."
                  if (runs := summary.get("repeats", {}).get("runs", 1)) > 1 else ""))
    st.dataframe(real, hide_index=True, key="transfer_real")
    pairs = load_contrast_pairs(cv_dir, transfer_verdict(summary))
    if len(pairs):
        with st.expander("Each held-out source against each contrast source"):
            st.caption("A fold's AUROC mixes its contrast sources; here each pair has its own "
                       "(the verdict). \"Contrast files right\" is the share of that source's "
                       "files on the right side of the fold model's threshold.")
            st.dataframe(pairs, hide_index=True, key="transfer_pairs")
    pooled = pooled_transfer(summary)
    if pooled:
        cols = st.columns(4)
        for col, (label, k) in zip(cols, [("F1", "f1"), ("AUROC", "auroc"),
                                          ("precision", "precision"), ("recall", "recall")],
                                   strict=True):
            value = pooled.get(k)
            col.metric(f"Pooled {label}", "n/a" if value is None else f"{100 * value:.1f}")
    if len(synthetic):
        st.markdown("**Synthetic one-sided palsy on the held-out sources' healthy faces**")
        st.dataframe(synthetic, hide_index=True, key="transfer_synthetic")
    if len(variants):
        st.markdown("**Every variant on the same folds** (which views carry over to a source the "
                    "model has never seen), with a late-fusion variant and a gradient-boosted "
                    "tree baseline")
        st.dataframe(variants, hide_index=True, key="transfer_variants")
    for source, why in summary.get("skipped", {}).items():
        st.warning(f"`{source}` was not held out: {why}.")
