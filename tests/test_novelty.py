"""The "unlike any training face" check (``palsy_core.model.novelty``) on real faces.

Ordinary frontal photos, their mirror images and recoloured copies are familiar to the shipped
model (photo style cancels in the mirror-invariant views); the same faces with one half hidden
behind a grey card are not, and get "inconclusive" with the reason in every output: the scored
file, ``predict --json``, the HTML report and the live page's scorer.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import make_test_model
from PIL import Image

from palsy_core.extraction.pipeline import Settings, analyse_frame, analyse_media
from palsy_core.inference.live import LiveScorer
from palsy_core.inference.report import frame_table, html_report
from palsy_core.inference.scoring import ScoredMedia, load_model, summary
from palsy_core.metrics import FLAG_NAMES, INCONCLUSIVE, retake_hint
from palsy_core.model.batches import FrameArrays, frame_arrays, mirror_arrays
from palsy_core.model.novelty import MIN_FRAMES, UNFAMILIAR, Novelty

ROOT = Path(__file__).resolve().parents[1]
FRONTAL = ("single_face.jpg", "0-f1-su-ph.jpg", "0-f15-hao-ph.jpg", "15-f13-anc-ph.jpg")


@pytest.fixture(scope="module")
def shipped():
    loaded = load_model(ROOT / "models" / "default.pt")
    assert loaded.novelty is not None, "the shipped model carries no novelty check: retrain it"
    return loaded


def _photo(pyfeat_dir: Path, name: str) -> np.ndarray:
    return np.asarray(Image.open(pyfeat_dir / name).convert("RGB"))


def _half_hidden(rgb: np.ndarray) -> np.ndarray:
    """The subject's left half of the picture behind a flat grey card."""
    out = rgb.copy()
    out[:, : rgb.shape[1] // 2] = 128
    return out


def _ratio(shipped, rgb: np.ndarray, detector) -> float:
    frame = analyse_frame(rgb, detector, Settings())
    assert frame.has_face
    return float(shipped.novelty.ratio(frame_arrays(frame, 64))[0])


@pytest.mark.parametrize("name", FRONTAL)
def test_ordinary_faces_and_their_restyled_copies_are_familiar(pyfeat_dir, detector, shipped,
                                                               name):
    rgb = _photo(pyfeat_dir, name)
    own = _ratio(shipped, rgb, detector)
    mirrored = _ratio(shipped, np.ascontiguousarray(rgb[:, ::-1]), detector)
    inverted = _ratio(shipped, 255 - rgb, detector)  # a photo style never seen in training
    swapped = _ratio(shipped, np.ascontiguousarray(rgb[..., ::-1]), detector)
    assert max(own, mirrored, inverted, swapped) < 0.8, (own, mirrored, inverted, swapped)
    # A face and its mirror image are equally familiar (fitted on both views).
    assert mirrored == pytest.approx(own, abs=0.1)


@pytest.mark.parametrize("name", FRONTAL)
def test_a_half_hidden_face_is_unfamiliar(pyfeat_dir, detector, shipped, name):
    rgb = _photo(pyfeat_dir, name)
    assert _ratio(shipped, _half_hidden(rgb), detector) > 1.2
    assert _ratio(shipped, rgb, detector) < 0.8


def test_unfamiliar_face_is_inconclusive_in_every_output(pyfeat_dir, shipped, tmp_path):
    path = tmp_path / "half_hidden.png"
    Image.fromarray(_half_hidden(_photo(pyfeat_dir, "single_face.jpg"))).save(path)
    analysis = analyse_media(path, path.name, Settings())
    assert analysis.has_face.all() and UNFAMILIAR not in analysis.flags[0]  # the model's flag
    scored = ScoredMedia(shipped, analysis)
    assert scored.frame_flags[0][-1] == UNFAMILIAR
    score = scored.score()
    assert score.verdict == INCONCLUSIVE and score.side is None and score.palsy is None
    assert FLAG_NAMES[UNFAMILIAR] in score.inconclusive
    assert "clinician" in retake_hint(score.inconclusive)
    assert 0 <= score.p <= 1  # still shown, for reference
    record = summary(scored, [])
    assert record["quality"][UNFAMILIAR] == 1 and record["verdict"] == INCONCLUSIVE
    assert frame_table(scored, scored.modalities)["quality_flags"][0].endswith(UNFAMILIAR)
    page = html_report(scored, scored.modalities, "half hidden")
    assert FLAG_NAMES[UNFAMILIAR] in page and "clinician" in page
    out = subprocess.run([sys.executable, "-m", "palsy_core", "predict", str(path), "--json"],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    record = json.loads(out.stdout.strip().splitlines()[-1])
    assert record["verdict"] == INCONCLUSIVE and FLAG_NAMES[UNFAMILIAR] in record["reason"]
    # The untouched photo gets a verdict from the same model.
    plain = ScoredMedia(shipped, analyse_media(pyfeat_dir / "single_face.jpg", "single_face.jpg"))
    assert plain.score().inconclusive is None and UNFAMILIAR not in plain.frame_flags[0]


def test_live_scorer_flags_unfamiliar_frames(pyfeat_dir, shipped):
    rgb = _photo(pyfeat_dir, "single_face.jpg")
    # Every view computed on every frame: the second frame is another face entirely, not the
    # next moment of the same one (whose heavy views the live default may reuse for one frame).
    with LiveScorer(shipped, heavy_every=1) as scorer:
        _, result = scorer.process(_half_hidden(rgb), 0.0)
        assert UNFAMILIAR in result.flags
        assert result.inconclusive and FLAG_NAMES[UNFAMILIAR] in result.inconclusive
        _, result = scorer.process(rgb, 0.2)  # one good frame decides the window
        assert UNFAMILIAR not in result.flags and result.inconclusive is None


def test_novelty_round_trips_and_needs_enough_frames(pyfeat_dir, detector, shipped):
    nov = shipped.novelty
    again = Novelty.from_dict(json.loads(json.dumps(nov.to_dict())))
    frames = [analyse_frame(_photo(pyfeat_dir, n), detector, Settings()) for n in FRONTAL]
    arrays = FrameArrays.concat([frame_arrays(f, 64) for f in frames])
    np.testing.assert_allclose(again.ratio(arrays), nov.ratio(arrays))
    with pytest.raises(ValueError, match=f"at least {MIN_FRAMES}"):
        Novelty.fit(FrameArrays.concat([arrays, mirror_arrays(arrays)]))


def test_models_without_the_check_flag_nothing(pyfeat_dir, tmp_path):
    """A checkpoint saved before the check existed scores as before: no model flags."""
    loaded = load_model(make_test_model(tmp_path / "old.pt"))
    assert loaded.novelty is None
    analysis = analyse_media(pyfeat_dir / "single_face.jpg", "single_face.jpg")
    assert ScoredMedia(loaded, analysis).frame_flags == analysis.flags
