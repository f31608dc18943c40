"""The shipped model's outputs on real faces equal its goldens (``tests/goldens/shipped.py``).

Every scoring test elsewhere uses an untrained model; this one pins what the trained model says,
so a change to features, alignment, mark removal or scoring that shifts its verdicts fails here.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "goldens"))
import shipped

# MediaPipe's and torch's CPU kernels may round differently on another processor; a real change
# in what the model sees moves these numbers by far more.
P_TOL = 5e-3


@pytest.fixture(scope="module")
def goldens() -> dict:
    assert shipped.GOLDENS.is_file(), "no goldens: run `make goldens`"
    data = json.loads(shipped.GOLDENS.read_text())
    assert data["model_sha256"] == shipped.model_digest(), (
        "models/default.pt is not the model the goldens were made with: after retraining on "
        "purpose, run `make goldens` and commit the JSON with the model")
    return data


@pytest.fixture(scope="module")
def actual(goldens) -> dict:
    from palsy_core.inference.scoring import load_model

    loaded = load_model(shipped.MODEL)
    paths = shipped.media()
    return {name: shipped.record(paths[name], name, loaded) for name in goldens["files"]}


def test_goldens_cover_the_faces_and_every_modality(goldens):
    files = goldens["files"]
    assert set(files) == set(shipped.PHOTOS) | {shipped.VIDEO, "demo_healthy.mp4",
                                                 "demo_palsy_left.mp4"}
    for name, rec in files.items():
        assert rec["face_frames"] >= 1 and {"p_palsy", "p_blendshapes", "p_rgb"} <= set(rec), name
    # The demo pair tells healthy from palsy and finds the side, as the dashboard promises.
    healthy, palsy = files["demo_healthy.mp4"], files["demo_palsy_left.mp4"]
    assert healthy["verdict"] == "no palsy detected"
    assert palsy["verdict"] == "palsy suspected" and palsy["side"] == "left"


def test_shipped_model_gives_its_golden_outputs(goldens, actual):
    for name, want in goldens["files"].items():
        got = actual[name]
        for key in ("frames", "face_frames", "flags", "threshold", "variant"):
            assert got[key] == want[key], (name, key, got[key], want[key])
        for key, value in want.items():
            if key.startswith("p_"):
                assert got[key] == pytest.approx(value, abs=P_TOL), (name, key)
        if abs(want["p_palsy"] - want["threshold"]) > 2 * P_TOL:
            assert (got["verdict"], got["side"]) == (want["verdict"], want["side"]), name
