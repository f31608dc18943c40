"""Home and Evaluation pages on a small model trained on real faces and their synthetic palsy."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from palsy_core.extraction.pipeline import Settings, analyse_media
from palsy_core.inference.scoring import ScoredMedia, load_model
from palsy_core.model.fusion import variant_label

ROOT = Path(__file__).resolve().parents[1]
EVAL_PAGE = str(ROOT / "views" / "4_Evaluation.py")
PAGES = ("1_Analyse", "2_Live", "3_Ablation", "4_Evaluation", "5_Progress", "6_Exam")
DISCLAIMER = "not a diagnostic device"
TIMEOUT = 300


@pytest.fixture(scope="module")
def trained(tmp_path_factory, palsy_manifest) -> Path:
    """A quickly trained model with real subject-grouped CV artifacts next to it (``m_cv/``)."""
    out = tmp_path_factory.mktemp("model")
    run = subprocess.run(
        [sys.executable, "-m", "palsy_core", "train", "--manifest", str(palsy_manifest),
         "--out", str(out / "m.pt"), "--cv", "groupkfold:2", "--epochs", "1",
         "--image-size", "48", "--depth", "resnet10", "--synth-variants", "1",
         "--cache", str(out / "cache")],
        capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    return out / "m.pt"


@pytest.fixture
def env(trained, tmp_path, monkeypatch) -> Path:
    """The test model, a private extraction cache and a private temporary folder."""
    monkeypatch.setenv("PALSY_MODEL", str(trained))
    monkeypatch.setenv("PALSY_CACHE", str(tmp_path / "cache"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    return tmp_path


def _specs(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def _confusions(at: AppTest) -> list[tuple[str, list[list[int]]]]:
    """(title, [[TN, FP], [FN, TP]] as written in the cells) of every confusion heatmap (a long
    title is wrapped over lines; the metrics follow in a ``<sup>``)."""
    return [(" ".join(s["layout"]["title"]["text"].split("<sup>")[0].split("<br>")).strip(),
             [[int(t.split("<br>")[0].split()[1]) for t in row] for row in s["data"][0]["text"]])
            for s in _specs(at) if s["data"][0]["type"] == "heatmap"]


def _disclaimed(at: AppTest) -> bool:
    return any(DISCLAIMER in w.value for w in at.warning)


def _run_own(at: AppTest) -> AppTest:
    at.button(key="own_run").click().run()
    assert not at.exception, at.exception
    return at


def _home(folder: Path) -> AppTest:
    """The dashboard as ``streamlit run app.py`` opens it: the router runs Home."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    return at


def test_home_page_shows_the_model_card(env, trained, tmp_path):
    at = _home(tmp_path)
    assert _disclaimed(at)

    loaded = load_model(trained)
    weights = _specs(at)[0]["data"][0]
    assert weights["y"] == ["RGB face", "Line segments", "Landmark coordinates",
                            "Expression features", "Face-network asymmetry",
                            "Blendshape asymmetry"]
    expected = loaded.model.fusion_logits.detach().softmax(0).tolist()
    assert weights["x"] == pytest.approx(expected, abs=1e-6)
    assert sum(weights["x"]) == pytest.approx(1.0)

    fused = json.loads((trained.with_name("m_cv") / "metrics.json").read_text())["overall"]["fused"]
    shown = {m.label: m.value for m in at.metric}
    assert shown["Verdict F1"] == f"{fused['f1']:.3f}"  # no transfer check: every modality
    assert shown["Verdict accuracy"] == f"{fused['accuracy']:.3f}"
    unsure = json.loads((trained.with_name("m_cv") / "metrics.json").read_text())["inconclusive"]
    assert shown["Files scored"] == str(fused["n"]) == str(12 - len(unsure))
    assert [link.proto.page for link in at.get("page_link")] == [p[2:] for p in PAGES]


def test_evaluation_page_shows_the_cv_artifacts(env, trained):
    at = AppTest.from_file(EVAL_PAGE, default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    assert _disclaimed(at)
    cv_dir = trained.with_name("m_cv")
    cv = json.loads((cv_dir / "metrics.json").read_text())
    preds = pd.read_csv(cv_dir / "predictions.csv", dtype={"subject": str})

    # Four confusion matrices open by default (fused and the first single modalities); every
    # variant (fused, subsets and the logistic baseline) can be chosen.
    modalities = load_model(trained).modalities
    n = len(modalities)  # fused, n without-one, n single, logistic
    shown = dict(_confusions(at))
    assert list(shown) == [variant_label(v, "fused") for v in ("fused", *modalities[:3])]
    at.multiselect(key="cv_cm").set_value(list(cv["overall"])).run()
    shown = dict(_confusions(at))
    assert shown == {variant_label(v, "fused"): m["confusion"] for v, m in cv["overall"].items()}
    assert len(shown) == 1 + 2 * n + 1

    roc = next(s for s in _specs(at) if s["layout"]["title"]["text"] == "ROC")
    legend = [t["name"] for t in roc["data"] if t.get("showlegend", True)]
    assert f"Fused (all modalities) (AUROC {cv['overall']['fused']['auroc']:.2f})" in legend
    assert len(legend) == 2 + n  # chance line, fused and each single modality

    overall = at.dataframe[0].value
    assert overall.loc["Fused (all modalities) (the verdict)", "F1"] == round(
        cv["overall"]["fused"]["f1"], 3)
    sources = at.dataframe[1].value
    assert set(sources.index) == {"pyfeat", "synthetic"}
    # Both sources hold one class: no AUROC; the healthy one has no precision, recall or F1
    # (not a misleading 0) and shows the share of its files passed.
    assert sources["AUROC"].isna().all()
    healthy = cv["per_source"]["pyfeat"]["fused"]
    assert sources.loc["pyfeat", ["precision", "recall", "F1"]].isna().all()
    assert sources.loc["pyfeat", "files right"] == round(healthy["accuracy"], 3)
    assert sources.loc["synthetic", "recall"] == round(
        cv["per_source"]["synthetic"]["fused"]["recall"], 3)
    subjects = at.dataframe[2].value
    scored = preds[preds["reason"].fillna("") == ""] if "reason" in preds else preds
    assert set(subjects.index) == set(scored["subject"])
    assert subjects["files"].sum() == 12 - len(cv["inconclusive"]) == len(scored)
    # Files without a verdict are counted above the metrics they are left out of, and named
    # with their reason in an expander (a long list would bury the page).
    assert cv["inconclusive"], "the small manifest holds a turned head (45-m7-di-ph.jpg)"
    note = next(i.value for i in at.info if "inconclusive verdict" in i.value)
    assert note.startswith(f"{len(cv['inconclusive'])} file(s)")
    listed = next(e for e in at.expander if "inconclusive file" in e.label)
    names = "\n".join(m.value for m in listed.markdown)
    reasons = dict(zip(preds["path"], preds["reason"].fillna(""), strict=True))
    assert all(f"`{path}`: {reasons[path]}" in names for path in cv["inconclusive"])
    (tn, _), (_, tp) = cv["overall"]["fused"]["confusion"]
    assert subjects["correct"].sum() == tn + tp


def test_evaluation_page_shows_the_transfer_check(env, trained, transfer_run):
    from palsy_core.evaluation.evaluate import contrast_table, transfer_tables
    from palsy_core.training.transfer import write_transfer

    cv_dir = trained.with_name("m_cv")
    at = AppTest.from_file(EVAL_PAGE, default_timeout=TIMEOUT).run()
    assert any("--transfer" in i.value for i in at.info)  # none written yet: says how
    assert not any("never seen" in w.value for w in _home(env).warning)

    summary = write_transfer(transfer_run[1], cv_dir, ("landmarks", "features"))
    try:
        at = AppTest.from_file(EVAL_PAGE, default_timeout=TIMEOUT).run()
        assert not at.exception, at.exception
        real, synthetic, variants = transfer_tables(summary)
        tables = [d.value for d in at.dataframe
                  if {"held-out source", "pooled AUROC %"} & set(d.value.columns)
                  and "contrast source" not in d.value.columns]
        assert len(tables) == 3
        for shown, expected in zip(tables, (real, synthetic, variants), strict=True):
            pd.testing.assert_frame_equal(shown.reset_index(drop=True), expected)
        # Each held-out source against each contrast source, in its own expander.
        pairs = next(e for e in at.expander if "each contrast source" in e.label)
        pd.testing.assert_frame_equal(
            pairs.dataframe[0].value.reset_index(drop=True),
            contrast_table(transfer_run[1].files, summary["verdict"]["name"]))
        # Fused, each modality alone (with two modalities, leaving one out is the other), the
        # network's own fusion and the tree baseline.
        v = summary["verdict"]["name"]
        assert list(variants["model"])[:3] == [variant_label(n, v) for n in
                                               ("fused", "features", "landmarks")]
        assert "Baseline: gradient-boosted tree on the invariant vectors" in list(
            variants["model"])
        assert list(real["held-out source"]) == ["healthy-a", "healthy-b", "palsy-set"]
        pooled = summary["variants"]["pooled"][v]
        assert {m.label: m.value for m in at.metric}["Pooled F1"] == f"{100 * pooled['f1']:.1f}"
        # The home page puts the unseen-source numbers beside the cross-validated ones.
        home = _home(env)
        assert any(f"F1 {pooled['f1']:.3f}" in w.value and "never seen" in w.value
                   for w in home.warning)
    finally:
        for name in ("transfer.json", "transfer_predictions.csv", "transfer_synthetic.csv"):
            (cv_dir / name).unlink()


def test_evaluation_of_own_manifest_lists_bad_files_and_scores_the_rest(
        env, trained, palsy_manifest, detector):
    folder = palsy_manifest.parent
    (folder / "broken.mp4").write_text("not a video")
    manifest = folder / "with_problems.csv"
    manifest.write_text(palsy_manifest.read_text() + "broken.mp4,palsy,s7,,pyfeat\n"
                        "missing.jpg,healthy,s8,,pyfeat\n")
    at = AppTest.from_file(EVAL_PAGE, default_timeout=TIMEOUT).run()
    n_cv = len(_confusions(at))
    at.text_input(key="own_manifest").input(str(folder / "nope.csv"))
    _run_own(at)
    assert any("cannot read manifest" in e.value for e in at.error)
    assert "evaluation_own" not in at.session_state
    at.text_input(key="own_manifest").input(f"  '{manifest}' ")
    _run_own(at)

    result = at.session_state["evaluation_own"]
    assert set(result.errors) == {"broken.mp4", "missing.jpg"}
    assert "not a video or photo" in result.errors["broken.mp4"]
    assert result.errors["missing.jpg"] == "file not found"
    shown = next(d.value for d in at.dataframe if "reason" in d.value.columns)
    assert list(shown["file"]) == ["broken.mp4", "missing.jpg"]
    fused = result.metrics["overall"]["fused"]
    unsure = set(result.metrics["inconclusive"])  # every face frame unreliable: no verdict
    scored = result.predictions[~result.predictions["path"].isin(unsure)
                                & result.predictions["p_fused"].notna()]
    assert fused["n"] == 12 - len(unsure) == len(scored)
    assert fused["n_palsy"] == int(scored["y"].sum())

    # The page's score for a file is the one scoring that file directly gives.
    row = result.predictions.set_index("path").loc["palsy_0.png"]
    analysis = analyse_media(folder / "palsy_0.png", "palsy_0.png", Settings(), detector=detector)
    assert row["p_fused"] == pytest.approx(ScoredMedia(load_model(trained), analysis).score().p,
                                           abs=1e-5)
    n = len(load_model(trained).modalities)
    assert len(result.names) == 1 + 2 * n  # fused, n without-one, n single
    own = dict(_confusions(at)[n_cv:])
    assert len(own) == 4  # fused and the first single modalities open by default
    assert own[variant_label("fused", "fused")] == fused["confusion"]
    # The model was trained on these twelve files (its meta names the manifest): said plainly.
    assert sorted(result.seen_in_training) == sorted(
        line.split(",")[0] for line in palsy_manifest.read_text().splitlines()[1:])
    assert any("was trained on 12 of these files" in w.value for w in at.warning)


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_evaluation_of_uploaded_zip_is_confined_and_cleaned_up(env, palsy_manifest):
    folder = palsy_manifest.parent
    files = ("healthy_0.png", "palsy_0.png", "healthy_1.png", "palsy_1.png")
    text = "path,label,subject,source\n" + "".join(
        f"faces/{f},{f.split('_')[0]},s{f[-5]},mine\n" for f in files)
    outside = str(folder / "healthy_2.png")  # a real file on this machine, not in the zip
    text += f"{outside},healthy,s2,mine\n../../palsy_2.png,palsy,s2,mine\n"
    data = _zip({"study/manifest.csv": text.encode(),
                 **{f"study/faces/{f}": (folder / f).read_bytes() for f in files}})

    at = AppTest.from_file(EVAL_PAGE, default_timeout=TIMEOUT).run()
    at.radio(key="own_mode").set_value("A zip with a manifest and its media").run()
    at.file_uploader(key="own_zip").set_value(("mine.zip", data, "application/zip")).run()
    _run_own(at)
    result = at.session_state["evaluation_own"]
    assert "mine.zip" in result.title
    assert list(result.errors) == [outside, "../../palsy_2.png"]
    assert all("outside the uploaded zip" in why for why in result.errors.values())
    assert result.metrics["overall"]["fused"]["n"] == 4
    assert result.metrics["per_source"].keys() == {"mine"}
    # Neither the unpacked files nor their extraction cache outlive the evaluation.
    assert [p for p in (env / "tmp").iterdir() if p.name.startswith("palsy-")] == []
    assert not (env / "cache").exists()

    bad = _zip({"manifest.csv": text.encode(), "../evil.png": b"x"})
    at.file_uploader(key="own_zip").set_value(("bad.zip", bad, "application/zip")).run()
    _run_own(at)
    assert any("refused an unsafe zip" in e.value for e in at.error)
    assert "../evil.png: '..' in the path" in at.code[0].value
    assert "evaluation_own" not in at.session_state


def test_config_keeps_the_dashboard_local():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == config["browser"]["serverAddress"] == "localhost"
    assert config["server"]["enableXsrfProtection"] is True
    assert config["browser"]["gatherUsageStats"] is False
    assert 100 <= config["server"]["maxUploadSize"] <= 2000  # MB
    assert config["theme"]["base"] == "light"
