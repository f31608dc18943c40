"""Command-line interface: ``python -m palsy_core <command>``."""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from palsy_core.engine import ADDRESS_ENV, ENGINES, EngineOptions, open_engine
from palsy_core.extraction.pipeline import Settings
from palsy_core.face.style import STYLED_SHARE
from palsy_core.io.manifest import ManifestError, read_manifest
from palsy_core.settings import DEFAULT_MODEL, DISCLAIMER, __version__, artifacts_dir


def _add_video_args(p: argparse.ArgumentParser) -> None:
    d = Settings()
    p.add_argument("--sample-fps", type=float, default=d.sample_fps,
                   help=f"frames per second sampled from videos; 0 = every frame (default "
                        f"{d.sample_fps})")
    p.add_argument("--max-frames", type=int, default=d.max_frames,
                   help=f"at most this many frames per video; 0 = no cap (default {d.max_frames})")
    p.add_argument("--size", type=int, default=d.size, help="aligned image size in pixels")
    p.add_argument("--keep-marks", action="store_true",
                   help="do not inpaint saturated green annotation marks before detection")
    p.add_argument("--task-model", metavar="FILE",
                   help="MediaPipe face_landmarker.task file: detect landmarks with the Tasks "
                        "FaceLandmarker instead of Face Mesh (the blendshape modality is "
                        "computed either way)")


def _add_engine_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("engine", "where the per-file work runs (README: Batch engines)")
    g.add_argument("--engine", choices=ENGINES, default="local",
                   help="local: this process, file after file (default); ray: a pool of Ray "
                        "actors on this machine's cores or on a running cluster")
    g.add_argument("--address", metavar="HOST:PORT",
                   help=f"Ray: join this cluster (default ${ADDRESS_ENV}; else start a local one)")
    g.add_argument("--workers", type=int, metavar="N",
                   help="Ray: actors in the pool (default: the cluster's CPUs / --cpus-per-worker)")
    g.add_argument("--cpus-per-worker", type=float, default=1.0, metavar="C",
                   help="Ray: CPUs reserved by each actor, its threads capped to them (default 1)")


def engine_from_args(args: argparse.Namespace, progress: bool = True) -> EngineOptions:
    try:
        return EngineOptions(engine=args.engine, address=args.address, workers=args.workers,
                             cpus_per_worker=args.cpus_per_worker, progress=progress)
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from exc


def _print_stats(stats) -> None:
    if stats.engine == "ray":
        print(f"ray: {stats.workers} worker(s) on {len(stats.per_node)} node(s), "
              f"{stats.files_per_second:.2f} files/s after {stats.startup_seconds:.1f} s of "
              f"set-up; {stats.failed} failed, {stats.retried} resubmitted after a worker died",
              file=sys.stderr)


def settings_from_args(args: argparse.Namespace) -> Settings:
    if args.sample_fps < 0 or args.max_frames < 0 or args.size < 32:
        raise SystemExit("error: --sample-fps and --max-frames must be >= 0 and --size >= 32")
    return Settings(size=args.size, sample_fps=args.sample_fps, max_frames=args.max_frames,
                    clean_marks=not args.keep_marks, task_model=args.task_model)


def cmd_extract(args: argparse.Namespace) -> int:
    from palsy_core.extraction.extract import ExtractJob

    rows = read_manifest(args.manifest, check_files=False)  # a missing file fails alone
    settings = settings_from_args(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    index = out / "index.csv"
    done = hits = 0
    no_face, capped, errors = [], [], []
    # Each file's row is written as it finishes (in manifest order): an interrupted run keeps
    # what it did, and a rerun takes it from the cache.
    with open_engine(engine_from_args(args)) as engine, \
            open(index, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label", "subject", "side", "source", "frames", "face_frames",
                    "flags", "error"])
        for i, rec in engine.map(ExtractJob(settings, out / "cache"), [r.path for r in rows],
                                 desc="extract"):
            r = rows[i]
            w.writerow([r.rel, r.label, r.subject, r.side or "", r.source, rec.get("frames", 0),
                        rec.get("face_frames", 0), ";".join(rec.get("flags", [])),
                        rec["error"]])
            fh.flush()
            if rec["error"]:
                errors.append((r.path, rec["error"]))
                continue
            done += 1
            hits += rec["cache_hit"]
            if not rec["face_frames"]:
                no_face.append(r.rel)
            if rec["frame_cap_reached"]:
                capped.append(r.rel)
        _print_stats(engine.stats)
    print(f"extracted {done}/{len(rows)} files ({hits} from cache) into {out}; index: {index}")
    if no_face:
        print(f"no face found in {len(no_face)} file(s): " + ", ".join(no_face))
    if capped:
        print(f"stopped at the frame cap (--max-frames {settings.max_frames}) in {len(capped)} "
              "video(s); their later frames were not analysed: " + ", ".join(capped))
    for path, err in errors:
        print(f"FAILED {path}: {err}", file=sys.stderr)
    return 1 if errors and args.strict else 0


def _extract_rows(rows, settings, cache: str | None, engine: EngineOptions | None = None):
    """Every row's analysis in memory (training needs them all). With the Ray engine the cluster
    extracts into the cache first, and this process then reads the cache."""
    from palsy_core.extraction.extract import ExtractJob, extract_paths

    cache_dir = Path(cache) if cache else None
    if engine is not None and engine.engine == "ray":
        with open_engine(engine) as pool:
            for _ in pool.map(ExtractJob(settings, cache_dir), [r.path for r in rows],
                              desc="extract (ray)"):
                pass
            _print_stats(pool.stats)
    report = extract_paths([r.path for r in rows], settings, cache_dir=cache_dir)
    for path, err in report.errors.items():
        print(f"FAILED {path}: {err}", file=sys.stderr)
    return report


def _at_least_one(value: str) -> int:
    """An argparse type: a whole number >= 1, or a clear message before anything runs."""
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def cmd_train(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from palsy_core.evaluation.evaluate import write_artifacts
    from palsy_core.extraction.extract import file_digest
    from palsy_core.model.checkpoint import save_checkpoint
    from palsy_core.training.crossval import cross_validate, variant_names
    from palsy_core.training.dataset import (
        MOVEMENT_SHARE,
        SampleSet,
        real_samples,
        synthetic_samples,
    )
    from palsy_core.training.train import TrainConfig, fit
    from palsy_core.training.transfer import leave_one_source_out, write_transfer

    start = time.time()
    rows = read_manifest(args.manifest)
    settings = settings_from_args(args)
    config = TrainConfig()
    config = replace(
        config,
        modalities=tuple(args.modalities or config.modalities),
        epochs=args.epochs or config.epochs,
        patience=args.patience or config.patience,
        image_size=args.image_size or config.image_size,
        depth=args.depth or config.depth,
        seed=args.seed,
        backbone_weights=args.backbone_weights,
    )
    movement = MOVEMENT_SHARE if args.movement is None else args.movement
    report = _extract_rows(rows, settings, args.cache, engine_from_args(args))
    analyses = report.results
    real = real_samples(rows, analyses, config.image_size)
    synthetic = synthetic_samples(rows, analyses, config.image_size,
                                  variants=args.synth_variants, seed=args.seed,
                                  styled=args.styled, movement=movement)
    out = Path(args.out)
    extra = {"manifest": str(args.manifest), "files": len(rows),
             "files_with_face": int(sum(analyses[r.path].has_face.any() for r in rows
                                        if r.path in analyses)),
             "train_digests": sorted(file_digest(r.path) for r in rows if r.path in analyses),
             "real_frames": len(real), "synthetic_samples": len(synthetic),
             "synthetic": {"variants": args.synth_variants, "styled": args.styled,
                           "movement": movement},
             "train_config": config.to_dict(), "extraction": settings.__dict__}
    cv_metrics = None
    cv_dir = Path(args.cv_out) if args.cv_out else artifacts_dir(out)
    if args.cv != "none":
        df = cross_validate(rows, analyses, real, synthetic, config, args.cv,
                            baselines=not args.no_baselines, unimodal=args.unimodal)
        names = variant_names(config.modalities, not args.no_baselines, args.unimodal)
        cv_metrics = write_artifacts(df, names, cv_dir, {"cv": args.cv, **extra})
        print(f"cross-validation ({args.cv}) written to {cv_dir}")
    transfer = None
    if args.transfer:
        groups = [g.split(",") for g in args.transfer_group or []]
        transfer = leave_one_source_out(rows, analyses, real, synthetic, config, groups,
                                        repeats=args.transfer_repeats)
        verdict = write_transfer(transfer, cv_dir, config.modalities).get("verdict")
        print(f"transfer check (leave one source out) written to {cv_dir / 'transfer.json'}")
        if verdict:
            print(f"verdict: {verdict['name']} ({', '.join(verdict['modalities'])}), chosen on "
                  f"the transfer check: {verdict['rule']}")
            extra["verdict_modalities"] = verdict["modalities"]
            if cv_metrics is not None:  # the CV table marks the same variant
                cv_metrics["verdict"] = verdict["name"]
                (cv_dir / "metrics.json").write_text(json.dumps(cv_metrics, indent=2,
                                                                default=float))
    trained = fit(SampleSet.concat(real, synthetic), config)
    extra["total_seconds"] = time.time() - start
    meta = {**trained.meta, **extra, "cv": args.cv,
            "cv_overall": cv_metrics["overall"] if cv_metrics else None}
    save_checkpoint(out, trained.model, meta)
    print(f"saved {out} ({out.stat().st_size / 1e6:.1f} MB) in {extra['total_seconds']:.0f} s")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    import pandas as pd

    from palsy_core.evaluation.evaluate import (
        EvaluateJob,
        seen_in_training,
        variant_names,
        write_artifacts,
    )
    from palsy_core.inference.scoring import load_model
    from palsy_core.model.fusion import variant_label

    loaded = load_model(args.model)
    rows = read_manifest(args.manifest, check_files=False)  # a missing file fails alone
    options = engine_from_args(args)
    # Locally the loaded model is used as it is; Ray workers each load the checkpoint once.
    job = EvaluateJob(loaded if options.engine == "local" else args.model,
                      settings_from_args(args), Path(args.cache) if args.cache else None)
    with open_engine(options) as engine:
        records = [rec for _, rec in engine.map(job, rows, desc="evaluate")]
        _print_stats(engine.stats)
    failed = [(r.path, rec["error"]) for r, rec in zip(rows, records, strict=True)
              if rec.get("error")]
    for path, err in failed:
        print(f"FAILED {path}: {err}", file=sys.stderr)
    errors = len(failed)
    df, names = pd.DataFrame.from_records(records), variant_names(loaded)
    seen = seen_in_training(loaded.meta, rows)
    metrics = write_artifacts(df, names, Path(args.out),
                              {"model": str(args.model), "seen_in_training": seen,
                               "verdict": loaded.verdict_name})
    if seen:
        print(f"warning: {len(seen)} of these {len(rows)} files were in the model's training "
              "data; metrics on them measure memory, not screening", file=sys.stderr)
    verdict = metrics["overall"].get(loaded.verdict_name, {})
    no_face = len(metrics["no_face"]) - errors  # "no_face" lists unreadable files too
    print(f"evaluated {len(rows)} files -> {args.out}: verdict "
          f"({variant_label(loaded.verdict_name)}) F1 {verdict.get('f1', float('nan')):.3f}"
          f", AUROC {verdict.get('auroc') or float('nan'):.3f}; no face in {no_face}"
          f"; inconclusive (left out of the metrics) {len(metrics['inconclusive'])}"
          f"; unreadable {errors}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from palsy_core.inference.screen import ScreenJob

    settings = settings_from_args(args)
    status = 0
    # The bar goes to stderr only when the records do not go to the same terminal.
    options = engine_from_args(args, progress=len(args.files) > 1 and not sys.stdout.isatty())
    with open_engine(options) as engine:
        for _, record in engine.map(ScreenJob(args.model, settings), args.files, desc="predict"):
            name = record["path"]
            if record.get("error"):
                status = 1
                if args.json:
                    print(json.dumps({"path": name, "error": record["error"]}), flush=True)
                else:
                    print(f"{name}: ERROR {record['error']}", flush=True)
                continue
            if args.json:
                print(json.dumps(record), flush=True)
            else:
                p = record["p_palsy"]
                side = f", affected side: {record['side']}" if record["side"] else ""
                prob = f" (P(palsy) = {p:.2f})" if p is not None else ""
                quality = ", ".join(f"{k}: {v}" for k, v in record["quality"].items()) or "ok"
                cap = (f" (stopped at the frame cap, --max-frames {settings.max_frames}: later "
                       "frames not analysed)" if record["frame_cap_reached"] else "")
                note = record["reason"] or record["caution"]
                why = f" ({note})" if note else ""
                print(f"{name}: {record['verdict']}{why}{prob}{side}; "
                      f"{record['face_frames']}/{record['frames_analysed']} frames with a face"
                      f"{cap}; quality flags: {quality}", flush=True)
        _print_stats(engine.stats)
    return status


def cmd_progress(args: argparse.Namespace) -> int:
    from contextlib import ExitStack

    from palsy_core.inference.progress import (
        ProgressJob,
        collect_media,
        read_dates,
        records_csv,
        trend,
    )

    settings = settings_from_args(args)
    try:
        dates = read_dates(Path(args.dates)) if args.dates else {}
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from exc
    with ExitStack() as stack:
        try:
            files = collect_media(args.inputs, stack)
        except ValueError as exc:
            raise SystemExit(f"error: {exc}") from exc
        if not files:
            raise SystemExit("error: no photo or video found in " + ", ".join(args.inputs))
        options = engine_from_args(args, progress=not sys.stdout.isatty())
        with open_engine(options) as engine:
            records = [rec for _, rec in engine.map(ProgressJob(args.model, settings, dates),
                                                    files, desc="progress")]
            _print_stats(engine.stats)
    # Date order (undated files last, in the order given), one record per file.
    records.sort(key=lambda r: (r["date"] is None, r["date"] or ""))
    if args.json:
        for rec in records:
            print(json.dumps(rec), flush=True)
    else:
        sys.stdout.write(records_csv(records))
    summary = trend(records)
    undated = [r["path"] for r in records if not r["date"] and not r.get("error")]
    failed = [r for r in records if r.get("error")]
    lines = [f"trend over {summary['n']} dated, scored files"]
    if summary["n"]:
        lines[0] += f" ({summary['points'][0]['date']} to {summary['points'][-1]['date']})"
        rho = summary["spearman_rho"]
        lines.append("Spearman rho (date, P(palsy)): " + ("n/a" if rho is None else f"{rho:.2f}"))
        first = summary["first_day_under_threshold"]
        lines.append(f"smoothed P(palsy) stays under the threshold {summary['threshold']:.2f} "
                     + (f"from {first}" if first else "on no day yet"))
        regions = summary["regions"]
        if regions:
            lines.append("smoothed at-rest scores (0-100, first to last date): " + ", ".join(
                f"{r} {pts[0]['score_trend']:.0f} -> {pts[-1]['score_trend']:.0f}"
                for r, pts in regions.items()))
    if undated:
        lines.append(f"no date found for {len(undated)} file(s) (give --dates CSV): "
                     + ", ".join(undated))
    for rec in failed:
        lines.append(f"FAILED {rec['path']}: {rec['error']}")
    print("\n".join(lines), file=sys.stderr)
    return 1 if failed else 0


def cmd_exam(args: argparse.Namespace) -> int:
    from palsy_core.inference.exam import PROTOCOL, examine
    from palsy_core.inference.exam_report import exam_html, exam_pdf, summary_rows
    from palsy_core.inference.screen import Screener
    from palsy_core.io.media import MediaError

    settings = settings_from_args(args)
    try:
        with Screener(args.model, settings) as screener:
            result = screener.analyse(args.video)
        exam, found = examine(result.scored)
    except (MediaError, ValueError) as exc:
        raise SystemExit(f"error: {args.video}: {exc}") from exc
    title = f"Guided exam: {Path(args.video).name}"
    if args.html:
        Path(args.html).write_text(exam_html(exam, result.scored, title), encoding="utf-8")
    if args.pdf:
        Path(args.pdf).write_bytes(exam_pdf(exam, result.scored, title))
    if args.json:
        record = {"path": args.video, **exam.to_dict(),
                  "segments_found": {k: [round(a, 2), round(b, 2)] for k, (a, b) in
                                     found.times(result.analysis.timestamps).items()},
                  "not_clearly_seen": list(found.unsure)}
        print(json.dumps(record))
    else:
        print(title)
        for label, value in summary_rows(exam):
            print(f"  {label}: {value}")
        for m in exam.movements:
            span = "not found" if m.start_s is None else f"{m.start_s:.1f}-{m.end_s:.1f} s"
            p = "n/a" if m.p is None else f"{m.p:.2f}"
            print(f"  {m.movement.name}: {span}, P(palsy) {p}")
        for s in exam.items:
            score = "n/a" if s.score is None else f"{s.score:.0f}"
            print(f"    {s.item.name}: {score}" + (f" ({s.note})" if s.note else ""))
        if found.unsure:
            names = ", ".join(m.name.lower() for m in PROTOCOL if m.key in found.unsure)
            print(f"  not clearly seen: {names} (check the Exam page's timeline)")
    for path in (args.html, args.pdf):
        if path:
            print(f"wrote {path}", file=sys.stderr)
    return 0


def cmd_card(args: argparse.Namespace) -> int:
    from palsy_core.evaluation.model_card import render

    model = Path(args.model)
    cv_dir = Path(args.cv) if args.cv else artifacts_dir(model)
    Path(args.out).write_text(render(model, cv_dir), encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m palsy_core",
        description=f"palsy-fusion: multimodal facial palsy screening. {DISCLAIMER}",
    )
    parser.add_argument("--version", action="version", version=f"palsy-fusion {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("extract", help="compute and cache the modalities of every manifest file")
    p.add_argument("--manifest", required=True, help="CSV with path,label,subject[,side,source]")
    p.add_argument("--out", required=True, help="output folder (cache + index.csv)")
    p.add_argument("--strict", action="store_true", help="exit with status 1 if any file failed")
    _add_video_args(p)
    _add_engine_args(p)
    p.set_defaults(func=cmd_extract)

    from palsy_core.registry import MODALITY_KEYS

    p = sub.add_parser("train", help="train the fused model (with subject-grouped CV)")
    p.add_argument("--manifest", required=True)
    p.add_argument("--out", required=True, help="checkpoint path, e.g. models/NAME.pt")
    p.add_argument("--cv", default="groupkfold:5",
                   help="lopo | groupkfold:K | none (default groupkfold:5)")
    p.add_argument("--cv-out", help="folder for CV metrics.json/predictions.csv "
                                    "(default: next to --out, NAME_cv/)")
    p.add_argument("--modalities", nargs="+", choices=MODALITY_KEYS,
                   help="modalities to train (default: all six)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--patience", type=int,
                   help="epochs without a better validation loss before training stops "
                        "(default 4)")
    p.add_argument("--image-size", type=int, help="side of the image-branch inputs (default 64)")
    p.add_argument("--depth", choices=["resnet10", "resnet18", "resnet34", "resnet50"])
    p.add_argument("--backbone-weights", help="imagenet | PATH to a ResNet state dict "
                                              "(default: random initialisation)")
    p.add_argument("--synth-variants", type=int, default=2,
                   help="synthetic one-sided palsy variants per healthy file (default 2)")
    p.add_argument("--styled", type=float, default=STYLED_SHARE, metavar="SHARE",
                   help="share of the synthetic controls (and as many warps) shown in a random "
                        "photo style: resolution, blur, noise, JPEG, colour, lighting direction "
                        f"(default {STYLED_SHARE}: off; see models/README.md for why)")
    p.add_argument("--movement", type=float, metavar="SHARE",
                   help="share of the synthetic warps (and of the controls) shown in a voluntary "
                        "movement: smile, brow raise, eye closure, nose wrinkle or pucker, the "
                        "palsy side moving less, a control's sides equally (default: "
                        "palsy_core.training.dataset.MOVEMENT_SHARE; see models/README.md)")
    p.add_argument("--no-baselines", action="store_true",
                   help="skip the logistic-regression baseline in CV")
    p.add_argument("--unimodal", action="store_true",
                   help="also train one network per modality in every CV fold (slow)")
    p.add_argument("--transfer", action="store_true",
                   help="also hold out each source in turn (one more fused model per source) "
                        "and write transfer.json into the CV folder: each held-out source "
                        "against held-out people of the other class, synthetic palsy of its "
                        "healthy faces, every modality subset and two baselines")
    p.add_argument("--transfer-group", action="append", metavar="SRC,SRC",
                   help="sources held out together (one pool, e.g. droop-web,droop-web2); "
                        "repeatable")
    p.add_argument("--transfer-repeats", type=_at_least_one, default=1, metavar="N",
                   help="run the transfer check N times with other training seeds and report "
                        "the means (default 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache", help="extraction cache folder (default ~/.cache/palsy-fusion)")
    _add_video_args(p)
    _add_engine_args(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="score a labelled manifest: metrics.json, predictions.csv")
    p.add_argument("--manifest", required=True)
    p.add_argument("--model", default=str(DEFAULT_MODEL))
    p.add_argument("--out", required=True)
    p.add_argument("--cache")
    _add_video_args(p)
    _add_engine_args(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="verdict, probability, side and quality per file")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--model", default=str(DEFAULT_MODEL))
    p.add_argument("--json", action="store_true", help="one JSON object per line per file")
    _add_video_args(p)
    _add_engine_args(p)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("progress", help="recovery over time: dated photos or videos of one "
                                        "person, P(palsy) and regional measures per date, trend")
    p.add_argument("inputs", nargs="+", metavar="FILES|DIR|ZIP")
    p.add_argument("--model", default=str(DEFAULT_MODEL))
    p.add_argument("--dates", metavar="CSV",
                   help="name,date rows (ISO dates) for files whose date is in neither their "
                        "EXIF/metadata nor their name; they take precedence")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="one JSON object per file")
    fmt.add_argument("--csv", action="store_true", help="one CSV row per file (the default)")
    _add_video_args(p)
    _add_engine_args(p)
    p.set_defaults(func=cmd_progress)

    p = sub.add_parser("exam", help="grade a video of the guided exam (seven movements in "
                                    "order): regional eFACE-style scores, HTML/PDF report")
    p.add_argument("video", metavar="VIDEO")
    p.add_argument("--model", default=str(DEFAULT_MODEL))
    p.add_argument("--json", action="store_true", help="print the exam as one JSON object")
    p.add_argument("--html", metavar="FILE", help="write the self-contained HTML report")
    p.add_argument("--pdf", metavar="FILE", help="write the printable PDF report")
    _add_video_args(p)
    p.set_defaults(func=cmd_exam)

    p = sub.add_parser("card", help="write the model card from a checkpoint and its CV results")
    p.add_argument("--model", default=str(DEFAULT_MODEL))
    p.add_argument("--cv", help="CV folder (default: NAME_cv next to the model)")
    p.add_argument("--out", default=str(DEFAULT_MODEL.parent / "README.md"))
    p.set_defaults(func=cmd_card)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; bad input ends with a one-line reason on stderr, never a traceback."""
    for stream in (sys.stdout, sys.stderr):  # a non-UTF-8 terminal still gets every file name
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    parser = build_parser()
    args = parser.parse_args(argv)
    from palsy_core.engine.cluster import EngineUnavailable
    from palsy_core.model.checkpoint import CheckpointError

    try:
        return args.func(args)
    # OSError: e.g. an unwritable --out
    except (ManifestError, CheckpointError, EngineUnavailable, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
