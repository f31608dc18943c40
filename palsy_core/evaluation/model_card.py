"""The model card (``models/README.md``), written from a checkpoint and its CV artifacts.

Every number in the card is read from files the training command wrote, so the card cannot drift
from the model it describes. Targets are checked mechanically and a missed target is stated.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from palsy_core.evaluation.evaluate import contrast_table, transfer_tables, transfer_verdict
from palsy_core.inference.scoring import load_model
from palsy_core.metrics import MIN_THRESHOLD_FILES
from palsy_core.model.fusion import variant_label, verdict_first
from palsy_core.settings import DISCLAIMER

TARGETS = {"f1": 0.90, "auroc": 0.95, "source_accuracy": 0.85}


def _fmt(v) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}"


def _row_label(name: str, verdict: str) -> str:
    label = variant_label(name, verdict)
    return f"**{label}**" if name == verdict else label


def table(block: dict, names: list[str], verdict: str = "fused") -> str:
    rows = ["| model | precision | recall | F1 | accuracy | AUROC "
            "| confusion [[TN, FP], [FN, TP]] |",
            "|---|---|---|---|---|---|---|"]
    for n in names:
        m = block.get(n)
        if m is None:
            continue
        rows.append(f"| {_row_label(n, verdict)} | {_fmt(m['precision'])} | {_fmt(m['recall'])} | "
                    f"{_fmt(m['f1'])} | {_fmt(m['accuracy'])} | {_fmt(m['auroc'])} | "
                    f"{m['confusion']} |")
    return "\n".join(rows)


def target_lines(cv: dict, chosen: str = "fused") -> list[str]:
    """The in-collection targets, checked on the verdict's variant ``chosen``."""
    overall = cv["overall"]
    fused = overall[chosen]
    who = variant_label(chosen, chosen)
    lines = []

    def verdict(ok: bool) -> str:
        return "met" if ok else "**missed**"

    lines.append(f"- {who}: F1 >= {TARGETS['f1']:.2f}: {fused['f1']:.3f}, "
                 f"{verdict(fused['f1'] >= TARGETS['f1'])}.")
    auc = fused["auroc"] or 0.0
    lines.append(f"- {who}: AUROC >= {TARGETS['auroc']:.2f}: {auc:.3f}, "
                 f"{verdict(auc >= TARGETS['auroc'])}.")
    for source, block in cv["per_source"].items():
        acc = block[chosen]["accuracy"]
        lines.append(f"- Accuracy >= {TARGETS['source_accuracy']:.2f} within `{source}` "
                     f"(n={block[chosen]['n']}): {acc:.3f}, "
                     f"{verdict(acc >= TARGETS['source_accuracy'])}.")
    # Single modalities (alone in the fused model, and separately trained) and the baseline;
    # leave-one-out subsets are reported but are not single modalities.
    others = {n: m for n, m in overall.items() if n not in ("fused", chosen) and "+" not in n
              and not n.startswith("without_")}
    beaten = [n for n, m in others.items() if fused["f1"] > m["f1"]
              and (fused["auroc"] or 0) > (m["auroc"] or 0)]
    lost = sorted(set(others) - set(beaten))
    lines.append(f"- The verdict above every single modality (alone and separately trained) "
                 f"and the logistic-regression baseline, in both F1 and AUROC: {verdict(not lost)}"
                 + (f"; not above: {', '.join(lost)}." if lost else "."))
    return lines


def source_table(per_source: dict, names: list[str], verdict: str = "fused") -> str:
    """Accuracy per source (most sources hold one class, where precision and F1 mean nothing)."""
    sources = list(per_source)
    head = " | ".join(f"{src} (n={next(iter(per_source[src].values()))['n']})"
                      for src in sources)
    rows = [f"| model | {head} |", "|---|" + "---|" * len(sources)]
    for n in names:
        cells = [_fmt(per_source[src][n]["accuracy"]) if n in per_source[src] else "n/a"
                 for src in sources]
        rows.append(f"| {_row_label(n, verdict)} | {' | '.join(cells)} |")
    return "\n".join(rows)


def _markdown(df: pd.DataFrame) -> str:
    def cell(v) -> str:
        return "n/a" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)

    rows = ["| " + " | ".join(df.columns) + " |", "|---" * len(df.columns) + "|"]
    rows += ["| " + " | ".join(cell(v) for v in r) + " |" for r in df.itertuples(index=False)]
    return "\n".join(rows)


TRANSFER_TARGETS = {"auroc": 0.90, "f1": 0.85, "held_out": 0.85, "synthetic_auroc": 0.90,
                    "side": 0.90}


def transfer_targets(transfer: dict) -> list[str]:
    """The generalisation targets, checked on the leave-one-source-out check."""
    def verdict(ok: bool) -> str:
        return "met" if ok else "**missed**"

    lines = []
    pooled = transfer.get("variants", {}).get("pooled", {})
    per_fold = transfer.get("variants", {}).get("per_fold", {})
    chosen = transfer_verdict(transfer)
    if chosen not in pooled:
        return ["- No transfer check was run."]
    lines += [f"Checked on the verdict: {variant_label(chosen)}.", ""]
    for fold, block in per_fold.items():
        m = block[chosen]
        auc, right = m["auroc"] or 0.0, m["held_out_correct"] or 0.0
        lines.append(f"- `{fold}`: AUROC {auc:.3f} (>= {TRANSFER_TARGETS['auroc']:.2f} "
                     f"{verdict(auc >= TRANSFER_TARGETS['auroc'])}); {m['held_out_class']} "
                     f"files right at the model's own threshold {right:.3f} (>= "
                     f"{TRANSFER_TARGETS['held_out']:.2f} "
                     f"{verdict(right >= TRANSFER_TARGETS['held_out'])}).")
    f = pooled[chosen]
    lines.append(f"- Pooled, each fold centred on its own threshold: AUROC "
                 f"{(f['auroc'] or 0):.3f} (>= {TRANSFER_TARGETS['auroc']:.2f} "
                 f"{verdict((f['auroc'] or 0) >= TRANSFER_TARGETS['auroc'])}), F1 {f['f1']:.3f} "
                 f"(>= {TRANSFER_TARGETS['f1']:.2f} "
                 f"{verdict(f['f1'] >= TRANSFER_TARGETS['f1'])}).")
    singles = [n for n in pooled if n not in ("fused", chosen) and not n.startswith("without_")]
    lost = [n for n in singles if not (f["f1"] > pooled[n]["f1"]
                                       and (f["auroc"] or 0) > (pooled[n]["auroc"] or 0))]
    lines.append("- The verdict above every single modality, the late-fusion variant and the "
                 "gradient-boosted-tree baseline (pooled AUROC and F1): "
                 + verdict(not lost) + (f"; not above: {', '.join(lost)}." if lost else "."))
    syn = transfer.get("synthetic", {}).get("pooled")
    if syn:
        auc, side = syn["auroc"] or 0.0, syn["side_accuracy"] or 0.0
        lines.append(f"- Synthetic one-sided palsy on held-out healthy sources: AUROC {auc:.3f} "
                     f"({verdict(auc >= TRANSFER_TARGETS['synthetic_auroc'])}), affected side "
                     f"right {side:.3f} ({verdict(side >= TRANSFER_TARGETS['side'])}).")
    return lines


def transfer_section(transfer: dict, predictions: pd.DataFrame | None = None) -> list[str]:
    """The leave-one-source-out check: unseen sources (each against each contrast source too,
    from the scored rows ``predictions`` where given), and synthetic palsy on their faces."""
    real, synthetic, variants = transfer_tables(transfer)
    frac = transfer.get("protocol", {}).get("contrast_fraction", 0.3)
    parts = ["## Transfer to an unseen source (leave one source out): the check we choose on",
             "Each source in turn is held out (`droop-web` and `droop-web2` together: one web "
             "pool) and scored against held-out people of the other class from the remaining "
             f"sources (a fixed {round(100 * frac)} % of them, grouped by subject), with a model "
             "trained on everything else: every person of the held-out source and of the "
             "contrast group is removed from training wherever they appear. Real files and "
             "synthetic one-sided palsy made from the training sources' healthy faces are "
             "trained on. Every fold is scored at its own model's thresholds (chosen on that "
             "model's subject-grouped validation split, as for the shipped model: on its real "
             f"files, or on every sample, synthetic ones included, where a class has fewer than "
             f"{MIN_THRESHOLD_FILES} real files there, as when the web pool is held out). AUROC is "
             "computed within each fold (one model scores both classes); pooled numbers centre "
             "each fold's scores on that fold's own threshold. \"Held-out files right\" is the "
             "share of the held-out source's files (one class) on the right side of the "
             "threshold. Files whose verdict is inconclusive (every face frame turned, "
             "blurred, too small, or unlike the fold model's training faces: "
             "`palsy_core/model/novelty.py`) are left out of every variant's metrics and "
             "counted in the table. Numbers in percent; the scored rows are in "
             "`transfer_predictions.csv` and `transfer_synthetic.csv` next to `transfer.json`.",
             ""]
    runs = transfer.get("repeats", {}).get("runs", 1)
    if runs > 1:
        parts[-2] += (f" **The whole check was run {runs} times**, with only the training seeds "
                      "changed (each fold network's initialisation, batch order and validation "
                      "split; the same folds, files and synthetic samples), and every number "
                      f"below is the mean of the {runs} runs: a single run's pooled numbers move "
                      "by several hundredths with the seed alone. Each run's pooled AUROC / F1 "
                      "is in the variants table.")
    chosen = transfer.get("verdict")
    if chosen:
        gains = ", ".join(f"{variant_label(n)} {100 * m['auroc']:.1f} / {100 * m['f1']:.1f}"
                          for n, m in chosen["candidates"].items())
        parts += [f"**The verdict: {variant_label(chosen['name'])}.** The check chooses which "
                  f"modalities the shipped verdict fuses: {chosen['rule']}. Candidates, pooled "
                  f"AUROC / F1 in percent: {gains}. This is a choice made on the check reported "
                  "here, so its numbers are optimistic by that one choice. The table below is "
                  "the verdict's, fold by fold.", ""]
    if len(real):
        parts.append(_markdown(real))
    pairs = contrast_table(predictions, transfer_verdict(transfer)) \
        if predictions is not None else pd.DataFrame()
    if len(pairs):
        parts += ["", "The same folds, each held-out source against each source of its contrast "
                  "group separately (the verdict; a fold's AUROC above mixes them): "
                  "\"contrast files right\" is the share of that source's files on the right "
                  "side of the fold model's threshold. A pair with one contrast file has no "
                  "AUROC.", "", _markdown(pairs)]
    if len(variants):
        parts += ["", "Every variant on the same folds: each modality alone, the fused model "
                  "without one modality, a late fusion of the modalities' own logits fitted on "
                  "the other folds' held-out predictions (excluding this fold's people) and a "
                  "gradient-boosted tree on the concatenated invariant vectors (expression "
                  "features, face-network and blendshape asymmetry, landmark mirror asymmetry) "
                  "trained on the same files:", "", _markdown(variants)]
    if len(synthetic):
        parts += ["", "Synthetic one-sided palsy made from each held-out source's healthy "
                  "faces, against their severity-0 controls, scored by the fold model's verdict "
                  f"({variant_label(transfer_verdict(transfer))}):",
                  "", _markdown(synthetic)]
    for source, why in transfer.get("skipped", {}).items():
        parts += ["", f"`{source}` was not held out: {why}."]
    parts += ["", "### Targets on the transfer check", *transfer_targets(transfer)]
    return parts


def _movement_text(meta: dict) -> str:
    """The card's words for the share of synthetic samples shown in a movement (older models
    did not record it)."""
    share = (meta.get("synthetic") or {}).get("movement")
    if not share:
        return ""
    return (f"{share:.0%} of the warps and of the controls shown in a voluntary movement (smile, "
            "brow raise, eye closure, nose wrinkle or pucker; the palsy side moving less, a "
            "control's two sides alike: `palsy_core.face.synth.random_movement`); ")


def render(model_path: Path, cv_dir: Path) -> str:
    loaded = load_model(model_path)
    meta = loaded.meta
    transfer = cv_dir / "transfer.json"
    cv = json.loads((cv_dir / "metrics.json").read_text())
    chosen = loaded.verdict_name
    names = verdict_first(cv["overall"], chosen)
    wtxt = ", ".join(f"{m} {w:.2f}" for m, w in loaded.fusion_weights().items())
    tc = meta.get("train_config", {})
    parts = [
        "# Model card: `models/default.pt`",
        "",
        f"> {DISCLAIMER} These numbers come from a small public photo collection and say "
        "little about clinical use.",
        "",
        "## What it is",
        f"- Fused network over {', '.join(loaded.modalities)}. Every branch sees only what "
        "differs between the aligned face and its mirror image: "
        f"{tc.get('depth')} image branches on the RGB and line-segment images minus their flips "
        f"({tc.get('image_size')} px), feed-forward branches on the landmarks' mirror asymmetry, "
        "the expression features, the face-network asymmetry (MediaPipe's frozen face network "
        "on the face minus on its mirror) and the blendshape asymmetry (MediaPipe's landmark and "
        "blendshape networks from `face_landmarker.task`, run on the face and on its mirror so "
        "their own side bias cancels). Palsy and affected-side heads; trained with modality "
        "dropout, so every subset of modalities is a true ablation. Every frame is scored as "
        "seen and mirrored and the two are averaged, so a face and its mirror image get the "
        "same P(palsy).",
        f"- Learned fusion weights (all modalities on): {wtxt}.",
        f"- The verdict: {variant_label(chosen)} "
        f"({', '.join(loaded.verdict_modalities)}), chosen on the transfer check below "
        "(`meta[\"verdict_modalities\"]`); the other subsets are ablations. Its decision "
        f"threshold {loaded.threshold(loaded.verdict_modalities):.3f} was chosen on a "
        "subject-grouped validation split of the training data (maximum balanced accuracy, "
        "mirror-averaged scores, on its real files; every sample, synthetic ones included, "
        f"only where a class has fewer than {MIN_THRESHOLD_FILES} real files there); one "
        "threshold per modality subset is stored.",
        "",
        "## Data",
        f"- `{meta.get('manifest')}`: {meta.get('files')} files, "
        f"{meta.get('files_with_face')} with a detected face, {meta.get('real_frames')} face "
        f"frames. See that folder's README for sources; none of its files are in this "
        "repository.",
        "- Drawn-on green boxes and dots (both classes of the web photos) are inpainted before "
        "detection (`palsy_core/face/marks.py`).",
        f"- Augmentation: {meta.get('synthetic_samples')} synthetic samples made from the "
        "healthy training faces (`palsy_core.face.synth`: one-sided brow ptosis, wider fissure, "
        "drooping corner, reduced smile, flattened fold; alternating sides) plus matched "
        "severity-0 controls that go through the same resampling; "
        f"{_movement_text(meta)}random mirror flips of every sample. Synthetic faces never enter "
        "an evaluation fold.",
        "",
        "## Training",
        "- Command: `make train` (= `python -m palsy_core train --manifest "
        "../shared/data/dev/manifest.csv --out models/default.pt --cv groupkfold:5 --transfer "
        "--transfer-group droop-web,droop-web2 --transfer-repeats 2`, then `python -m "
        "palsy_core card`).",
        f"- Wall time on the 2-core CPU (extraction, CV with baselines, "
        f"{'the leave-one-source-out models, ' if transfer.is_file() else ''}final model): "
        f"{meta.get('total_seconds', 0) / 60:.1f} min.",
        f"- Config: `{json.dumps(tc)}`.",
        "",
        f"## Subject-grouped cross-validation ({cv.get('cv')}), inside the collection",
        "Out-of-fold predictions on real files only; each fold trains on the other subjects "
        "(threshold from its own validation split). This check shares sources "
        "between training and test, so it flatters style-bound cues; it is kept beside the "
        "transfer check, not used to choose. A video's score is the mean P(palsy) over its "
        "good-quality face frames. Numbers in percent. \"<modality> only\" rows are the fused "
        "model with the other modalities switched off; \"Unimodal network\" rows are trained on "
        "one modality alone.",
        "",
        table(cv["overall"], names, chosen),
        "",
        "### Accuracy per source",
        "Palsy-only sources: accuracy = recall; healthy-only sources: accuracy = specificity. "
        "Full per-source metrics and confusion matrices "
        "are in `models/default_cv/metrics.json`.",
        "",
        source_table(cv["per_source"], names, chosen),
        "",
        "### Targets inside the collection", *target_lines(cv, chosen)]
    if transfer.is_file():
        # The card leads with the check we choose on: right after what the model is.
        at = parts.index("## Data")
        scored = cv_dir / "transfer_predictions.csv"
        predictions = pd.read_csv(scored) if scored.is_file() else None
        parts[at:at] = [*transfer_section(json.loads(transfer.read_text()), predictions), ""]
    if cv.get("no_face"):
        parts += ["", f"Files with no face found (not scored): {', '.join(cv['no_face'])}."]
    if cv.get("inconclusive"):
        parts += ["", f"{len(cv['inconclusive'])} files got an inconclusive verdict in "
                  "cross-validation and are left out of its metrics (listed under "
                  "`inconclusive` in `models/default_cv/metrics.json`)."]
    notes = model_path.parent / "card_notes.md"
    if notes.is_file():
        parts += ["", notes.read_text(encoding="utf-8").strip()]
    return "\n".join(parts) + "\n"
