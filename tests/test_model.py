"""The fused model, modality dropout masks, backbone weights and checkpoints."""

from __future__ import annotations

import datetime
import os
import pickle
import socket
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from palsy_core.face.alignment import INTEROCULAR, align, warp
from palsy_core.face.topology import LEFT_IRIS, RIGHT_IRIS, mirror_index
from palsy_core.modalities.blendshapes import DIM as BLENDSHAPES_DIM
from palsy_core.modalities.blendshapes import shared_blendshape_net
from palsy_core.modalities.face_net import DIM as FACE_ASYM_DIM
from palsy_core.modalities.face_net import shared_face_net
from palsy_core.model.checkpoint import (
    FORMAT_VERSION,
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
)
from palsy_core.model.network import (
    FusionModel,
    ImageEncoder,
    ModelConfig,
    PretrainedWeightsWarning,
    landmark_asymmetry,
    mirror_difference,
    sample_modality_mask,
)
from palsy_core.registry import MODALITY_KEYS

SIZE = 64
N_FEATURES = 8
ALL = MODALITY_KEYS
IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225])[:, None, None]


def small_config(**overrides) -> ModelConfig:
    values = dict(modalities=ALL, n_features=N_FEATURES, image_size=SIZE, depth="resnet10",
                  embed_dim=16, hidden_dim=32, mlp_layers=1, dropout=0.0)
    values.update(overrides)
    return ModelConfig(**values)


def small_model(seed: int = 0, **overrides) -> FusionModel:
    torch.manual_seed(seed)
    return FusionModel(small_config(**overrides)).eval()


def normalised_landmarks(points: np.ndarray) -> np.ndarray:
    """Aligned landmarks centred on the eye midpoint, in interocular units (the model's input)."""
    return (points - (points[RIGHT_IRIS] + points[LEFT_IRIS]) / 2) / (INTEROCULAR * SIZE)


@pytest.fixture(scope="module")
def real_face(face_rgb, detector) -> dict[str, np.ndarray]:
    """The sample face and its mirror image, aligned: crops and normalised landmarks."""
    out = {}
    for name, rgb in (("face", face_rgb), ("mirrored", np.ascontiguousarray(face_rgb[:, ::-1]))):
        det = detector.detect(rgb)
        assert det is not None
        al = align(det.points, size=SIZE)
        out[f"{name}_crop"] = warp(rgb, al)
        out[f"{name}_landmarks"] = normalised_landmarks(al.points)
        out[f"{name}_blendshapes"] = shared_blendshape_net().asymmetry(rgb, al.points, al.matrix)
    return out


@pytest.fixture(scope="module")
def real_batch(real_face) -> dict[str, torch.Tensor]:
    """A batch of two real faces (the photo and its mirror image) in every modality."""
    crops = np.stack([real_face["face_crop"], real_face["mirrored_crop"]])
    rgb = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255.0
    edges = np.stack([cv2.Canny(cv2.cvtColor(c, cv2.COLOR_RGB2GRAY), 50, 150) for c in crops])
    gen = torch.Generator().manual_seed(1)
    return {
        "rgb": (rgb - IMAGENET_MEAN) / IMAGENET_STD,
        "lines": torch.from_numpy(edges).float().div(255.0)[:, None].expand(-1, 3, -1, -1),
        "landmarks": torch.from_numpy(
            np.stack([real_face["face_landmarks"], real_face["mirrored_landmarks"]])),
        "features": torch.randn(2, N_FEATURES, generator=gen),
        "face_asym": torch.from_numpy(np.stack([shared_face_net().asymmetry(c) for c in crops])),
        "blendshapes": torch.from_numpy(np.stack([real_face["face_blendshapes"],
                                                  real_face["mirrored_blendshapes"]])),
    }


def random_batch(batch: int, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {
        "rgb": torch.randn(batch, 3, SIZE, SIZE, generator=gen),
        "lines": torch.rand(batch, 3, SIZE, SIZE, generator=gen),
        "landmarks": torch.randn(batch, 478, 3, generator=gen),
        "features": torch.randn(batch, N_FEATURES, generator=gen),
        "face_asym": torch.randn(batch, FACE_ASYM_DIM, generator=gen),
        "blendshapes": torch.randn(batch, BLENDSHAPES_DIM, generator=gen),
    }


# --- Mirror-comparison inputs -------------------------------------------------------------------

def test_mirror_difference_of_symmetric_face_is_zero(real_face):
    crop = torch.from_numpy(real_face["face_crop"]).permute(2, 0, 1).float()[None] / 255.0
    half = crop[..., : SIZE // 2]
    symmetric = torch.cat([half, half.flip(-1)], dim=-1)
    diff = mirror_difference(symmetric)
    assert diff.shape == (1, 3, SIZE, SIZE)
    assert torch.count_nonzero(diff) == 0

    # A real face is not perfectly symmetric; its difference is antisymmetric, and flipping the
    # face negates it.
    diff = mirror_difference(crop)
    assert diff.abs().mean() > 0.01
    assert torch.equal(diff.flip(-1), -diff)
    assert torch.equal(mirror_difference(crop.flip(-1)), -diff)


def test_image_branch_sees_no_appearance(real_face):
    """Two faces with the same asymmetry but different brightness and colour embed the same: the
    image encoder reads only the mirror difference."""
    model = small_model()
    crop = torch.from_numpy(real_face["face_crop"]).permute(2, 0, 1).float()[None] / 255.0
    tinted = crop * torch.tensor([0.6, 0.9, 1.0])[:, None, None] + 0.2
    # Adding any left-right symmetric image leaves the mirror difference unchanged.
    symmetric = (tinted + tinted.flip(-1)) / 2
    with torch.no_grad():
        a = model.encoders["rgb"](crop)
        b = model.encoders["rgb"](crop + symmetric)
    assert torch.allclose(a, b, atol=1e-5)


def test_landmark_asymmetry_of_real_face(real_face):
    coords = torch.from_numpy(real_face["face_landmarks"])
    asym = landmark_asymmetry(coords)
    assert asym.shape == (478, 3)
    assert asym.abs().max() > 0.01  # real faces are not perfectly symmetric

    # Symmetrising the face (average with its re-indexed reflection) removes all asymmetry.
    reflect = torch.tensor([-1.0, 1.0, 1.0])
    symmetric = (coords + coords[mirror_index()] * reflect) / 2
    assert landmark_asymmetry(symmetric).abs().max() < 1e-6

    # Mirroring the photo negates the asymmetry at every index, up to detector noise.
    mirrored = landmark_asymmetry(torch.from_numpy(real_face["mirrored_landmarks"]))
    assert torch.linalg.norm(mirrored + asym) < 0.4 * torch.linalg.norm(asym)
    assert torch.corrcoef(torch.stack([mirrored.flatten(), -asym.flatten()]))[0, 1] > 0.9


# --- Forward pass and fusion --------------------------------------------------------------------

def test_output_shapes(real_batch):
    model = small_model()
    out = model(real_batch)
    assert out.palsy_logit.shape == (2,) and out.side_logit.shape == (2,)
    assert out.fused.shape == (2, 16)
    assert set(out.weights) == set(ALL) == set(out.embeddings)
    assert all(e.shape == (2, 16) for e in out.embeddings.values())
    assert all(w.shape == (2,) for w in out.weights.values())
    assert torch.isfinite(out.palsy_logit).all() and torch.isfinite(out.side_logit).all()


def test_fusion_weights_are_softmax_over_enabled(real_batch):
    model = small_model()
    logits = torch.tensor([0.3, -1.2, 0.8, 0.0, -0.5, 2.0])
    with torch.no_grad():
        model.fusion_logits.copy_(logits)
    ratios = []
    for enabled in (ALL, ("rgb", "landmarks"), ("rgb", "landmarks", "blendshapes"),
                    ("rgb", "lines", "landmarks"), ("features", "face_asym"), ("features",)):
        out = model(real_batch, enabled=enabled)
        assert set(out.weights) == set(enabled) == set(out.embeddings)
        idx = [ALL.index(k) for k in enabled]
        expected = torch.softmax(logits[idx], dim=0)
        got = torch.stack([out.weights[k] for k in ALL if k in enabled], dim=1)
        assert torch.allclose(got, expected.expand(2, -1), atol=1e-6)
        assert torch.allclose(got.sum(1), torch.ones(2))
        fused = sum(out.weights[k][:, None] * out.embeddings[k] for k in enabled)
        assert torch.allclose(out.fused, fused, atol=1e-6)
        if {"rgb", "landmarks"} <= set(enabled):
            ratios.append(out.weights["rgb"] / out.weights["landmarks"])
    assert all(torch.allclose(r, torch.exp(logits[0] - logits[2]).expand(2)) for r in ratios)


def test_disabling_a_modality_changes_the_output(real_batch):
    model = small_model()
    full = model(real_batch)
    for key in ALL:
        rest = [k for k in ALL if k != key]
        out = model(real_batch, enabled=rest)
        assert not torch.allclose(out.fused, full.fused, atol=1e-4)
        assert not torch.allclose(out.palsy_logit, full.palsy_logit, atol=1e-5)
        # The remaining embeddings are unchanged: modalities are encoded independently.
        for k in rest:
            assert torch.equal(out.embeddings[k], full.embeddings[k])


class Poison:
    """Stands in for a disabled modality's tensor: any use at all raises."""

    def __getattribute__(self, name):
        raise AssertionError(f"disabled input was touched ({name})")


class StrictInputs(dict):
    """Inputs that raise when a key outside ``allowed`` is read or the dict is iterated."""

    def __init__(self, data, allowed):
        super().__init__(data)
        self.allowed = set(allowed)

    def __getitem__(self, key):
        if key not in self.allowed:
            raise AssertionError(f"disabled input {key!r} was read")
        return super().__getitem__(key)

    def get(self, key, default=None):
        try:
            return self[key]
        except KeyError:
            return default

    def __iter__(self):
        raise AssertionError("inputs were iterated")

    def items(self):
        raise AssertionError("inputs were iterated")

    def values(self):
        raise AssertionError("inputs were iterated")


def test_disabled_inputs_are_never_read(real_batch):
    model = small_model()
    enabled = ("lines", "features")
    expected = model(real_batch, enabled=enabled)
    poisoned = {k: (v if k in enabled else Poison()) for k, v in real_batch.items()}
    out = model(StrictInputs(poisoned, enabled), enabled=enabled)
    assert torch.equal(out.palsy_logit, expected.palsy_logit)
    # Disabled keys may be absent altogether; an enabled one may not.
    out = model({k: real_batch[k] for k in enabled}, enabled=enabled)
    assert torch.equal(out.side_logit, expected.side_logit)
    with pytest.raises(KeyError, match="no input for enabled modality 'rgb'"):
        model({k: real_batch[k] for k in enabled}, enabled=("rgb", "lines"))

    # With a mask, a modality masked out in every row is not read either.
    mask = torch.tensor([[k in ("lines", "features") for k in ALL], [k == "lines" for k in ALL]])
    out = model(StrictInputs(poisoned, enabled), mask=mask)
    assert set(out.weights) == set(enabled)


def test_mask_forward_equals_enabled_forward():
    model = small_model()
    batch = random_batch(4)
    subsets = [ALL, ("rgb",), ("lines", "landmarks", "blendshapes"), ("rgb", "features")]
    mask = torch.tensor([[k in s for k in ALL] for s in subsets])
    masked = model(batch, mask=mask)
    for row, subset in enumerate(subsets):
        ref = model(batch, enabled=subset)
        assert torch.allclose(masked.palsy_logit[row], ref.palsy_logit[row], atol=1e-6)
        assert torch.allclose(masked.side_logit[row], ref.side_logit[row], atol=1e-6)
        assert torch.allclose(masked.fused[row], ref.fused[row], atol=1e-6)
        for k in ALL:
            expected = ref.weights[k][row] if k in subset else torch.tensor(0.0)
            assert torch.allclose(masked.weights[k][row], expected, atol=1e-7)


def test_mask_and_enabled_validation():
    model = small_model()
    batch = random_batch(2)
    with pytest.raises(ValueError, match="at least one"):
        model(batch, mask=torch.tensor([[True] * len(ALL), [False] * len(ALL)]))
    with pytest.raises(ValueError, match="at least one"):  # the row's only modality is disabled
        model(batch, enabled=("rgb",),
              mask=torch.tensor([[True] * len(ALL), [k == "lines" for k in ALL]]))
    with pytest.raises(ValueError, match="bool tensor"):
        model(batch, mask=torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="not part of this model"):
        small_model(modalities=("rgb", "landmarks"))(batch, enabled=("features",))
    with pytest.raises(ValueError, match=r"landmarks must be \(B, 478, 3\)"):
        model({**batch, "landmarks": torch.zeros(2, 468, 3)})
    with pytest.raises(ValueError, match="different batch sizes"):
        model({**batch, "features": torch.zeros(3, N_FEATURES)})
    with pytest.raises(ValueError, match="different batch sizes"):
        model(batch, mask=torch.ones(3, len(ALL), dtype=torch.bool))


def test_training_step_reduces_loss_through_every_branch():
    model = small_model().train()
    batch = random_batch(8, seed=3)
    gen = torch.Generator().manual_seed(0)
    palsy = torch.randint(0, 2, (8,), generator=gen).float()
    side = torch.randint(0, 2, (8,), generator=gen).float()
    mask = sample_modality_mask(8, ALL, generator=gen)
    mask[0] = True  # a full row, so every fusion logit is in play
    bce = nn.functional.binary_cross_entropy_with_logits

    def loss() -> torch.Tensor:
        out = model(batch, mask=mask)
        return bce(out.palsy_logit, palsy) + bce(out.side_logit, side)

    opt = torch.optim.SGD(model.parameters(), lr=0.02)
    before = loss()
    before.backward()
    for key, encoder in model.encoders.items():
        grads = [p.grad for p in encoder.parameters() if p.grad is not None]
        assert grads and sum(g.abs().sum() for g in grads) > 0, key
    assert (model.fusion_logits.grad != 0).all()
    opt.step()
    assert loss().item() < before.item()


def test_sample_modality_mask_frequencies():
    n = 4000
    mask = sample_modality_mask(n, ALL[:4], generator=torch.Generator().manual_seed(0))
    again = sample_modality_mask(n, ALL[:4], generator=torch.Generator().manual_seed(0))
    assert mask.dtype == torch.bool and mask.shape == (n, 4)
    assert torch.equal(mask, again)
    kept = mask.sum(1)
    assert (kept >= 1).all()
    assert (kept == 4).float().mean() > 0.2  # full sets: what inference mostly sees
    assert (kept == 1).float().mean() > 0.15  # singletons: each modality must work alone
    assert ((kept == 2) | (kept == 3)).float().mean() > 0.3
    per_modality = mask.float().mean(0)
    assert ((per_modality > 0.55) & (per_modality < 0.75)).all()
    assert sample_modality_mask(50, ["rgb"]).all()


def test_cam_layer_is_last_conv_block(real_batch):
    model = small_model()
    layer = model.cam_layer("rgb")
    assert layer is model.encoders["rgb"].backbone.layer4
    seen = {}
    handle = layer.register_forward_hook(lambda _m, _i, out: seen.update(act=out))
    try:
        out = model(real_batch)
        grad = torch.autograd.grad(out.palsy_logit.sum(), seen["act"])[0]
    finally:
        handle.remove()
    assert seen["act"].shape == (2, 512, SIZE // 32, SIZE // 32)
    assert grad.abs().sum() > 0
    with pytest.raises(ValueError, match="image modalities"):
        model.cam_layer("landmarks")


def test_config_round_trip_and_validation():
    config = small_config(modalities=("features", "rgb", "landmarks"))
    assert config.modalities == ("rgb", "landmarks", "features")  # registry order = mask columns
    data = config.to_dict()
    assert data["modalities"] == ["rgb", "landmarks", "features"]
    assert ModelConfig.from_dict(data) == config
    with pytest.raises(ValueError, match="unknown model config keys"):
        ModelConfig.from_dict({**data, "colour": "blue"})
    with pytest.raises(ValueError, match="unknown modalities"):
        ModelConfig(modalities=("rgb", "audio"))
    with pytest.raises(ValueError, match="n_features"):
        ModelConfig(modalities=("features",), n_features=0)
    with pytest.raises(ValueError, match="unknown depth"):
        ModelConfig(modalities=("rgb",), depth="resnet7")


# --- Backbone weights ---------------------------------------------------------------------------

def test_imagenet_offline_falls_back_to_random_init(tmp_path, monkeypatch):
    def offline(*_args, **_kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty hub cache
    monkeypatch.setattr(socket, "getaddrinfo", offline)
    with pytest.warns(PretrainedWeightsWarning, match="random initialisation") as record:
        model = FusionModel(small_config(depth="resnet18"), backbone_weights="imagenet").eval()
    assert "resnet18-f37072fd.pth" in str(record[0].message)
    assert len(record) == 1  # looked up once for both image encoders
    out = model(random_batch(2))
    assert torch.isfinite(out.palsy_logit).all()


def test_pretrained_weights_widen_conv1(monkeypatch):
    source = torchvision.models.resnet18().state_dict()
    monkeypatch.setattr(torchvision.models.ResNet18_Weights, "get_state_dict",
                        lambda self, **_kw: source)
    for depth, shared in (("resnet18", "layer3.1.conv2.weight"), ("resnet10", "layer3.0.bn1.bias")):
        model = FusionModel(small_config(depth=depth), backbone_weights="imagenet")
        for key in ("rgb", "lines"):
            net = model.encoders[key].backbone
            assert torch.equal(net.conv1.weight[:, :3], source["conv1.weight"])
            assert torch.count_nonzero(net.conv1.weight[:, 3:]) == 0
            assert torch.equal(net.state_dict()[shared], source[shared])


def test_backbone_weights_from_file(tmp_path):
    source = torchvision.models.resnet18().state_dict()
    good = tmp_path / "r18.pt"
    torch.save(source, good)
    model = FusionModel(small_config(depth="resnet18"), backbone_weights=good)
    net = model.encoders["rgb"].backbone
    assert torch.equal(net.layer4[1].conv2.weight, source["layer4.1.conv2.weight"])
    assert torch.equal(net.conv1.weight[:, :3], source["conv1.weight"])

    wrong = tmp_path / "r34.pt"
    torch.save(torchvision.models.resnet34().state_dict(), wrong)
    with pytest.raises(ValueError, match="do not fit a resnet18"):
        FusionModel(small_config(depth="resnet18"), backbone_weights=wrong)
    with pytest.raises(FileNotFoundError, match="backbone weights file not found"):
        FusionModel(small_config(), backbone_weights=tmp_path / "absent.pt")


# --- Checkpoints --------------------------------------------------------------------------------

META = {"feature_mean": [0.1] * N_FEATURES, "feature_std": [1.5] * N_FEATURES,
        "threshold": 0.42, "training": {"epochs": 3, "seed": 7, "sources": ["a", "b"]}}


def test_checkpoint_round_trip_is_exact(tmp_path, real_batch):
    model = small_model(seed=5)
    with torch.no_grad():
        model.fusion_logits.copy_(torch.tensor([0.5, -0.5, 1.0, 0.0, -0.3, 0.2]))
    meta = {**META, "threshold": np.float64(0.42), "auc": np.array([0.9, 0.8])}
    path = save_checkpoint(tmp_path / "sub" / "model.pt", model, meta, precision="float32")
    loaded, loaded_meta = load_checkpoint(path)
    assert not loaded.training
    assert loaded.config == model.config
    assert loaded_meta == {**META, "auc": [0.9, 0.8]}
    assert type(loaded_meta["threshold"]) is float
    for enabled in (None, ("landmarks", "features")):
        a, b = model(real_batch, enabled=enabled), loaded(real_batch, enabled=enabled)
        assert torch.equal(a.palsy_logit, b.palsy_logit)
        assert torch.equal(a.side_logit, b.side_logit)
        assert all(torch.equal(a.weights[k], b.weights[k]) for k in a.weights)

    payload = torch.load(path, weights_only=True)
    assert payload["format_version"] == FORMAT_VERSION
    assert payload["versions"]["torch"] == str(torch.__version__)


def test_float16_checkpoint_restores_float32(tmp_path, real_batch):
    model = small_model(seed=6)
    path32 = save_checkpoint(tmp_path / "m32.pt", model, META, precision="float32")
    path16 = save_checkpoint(tmp_path / "m16.pt", model, META, precision="float16")
    assert path16.stat().st_size < 0.6 * path32.stat().st_size
    loaded, _ = load_checkpoint(path16)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    a, b = model(real_batch), loaded(real_batch)
    assert torch.allclose(a.palsy_logit, b.palsy_logit, atol=0.05)
    assert not torch.equal(a.palsy_logit, b.palsy_logit)


def test_a_resnet18_checkpoint_at_112_px_is_under_50_mb(tmp_path):
    config = ModelConfig(n_features=40, depth="resnet18", image_size=112, embed_dim=128,
                         hidden_dim=256)
    assert {"rgb", "lines"} <= set(config.modalities)
    path = save_checkpoint(tmp_path / "default.pt", FusionModel(config), META)
    assert path.stat().st_size <= 50_000_000
    payload = torch.load(path, weights_only=True)
    assert payload["state_dict"]["encoders.rgb.backbone.conv1.weight"].dtype == torch.float16
    loaded, _ = load_checkpoint(path)
    assert loaded.config == config


def test_broken_checkpoints_raise_checkpoint_error(tmp_path):
    model = small_model()
    good = save_checkpoint(tmp_path / "good.pt", model, META)
    data = good.read_bytes()

    def expect(name: str, match: str) -> None:
        with pytest.raises(CheckpointError, match=match):
            load_checkpoint(tmp_path / name)

    expect("absent.pt", "checkpoint not found")
    (tmp_path / "truncated.pt").write_bytes(data[: len(data) // 2])
    expect("truncated.pt", "corrupt or truncated")
    (tmp_path / "empty.pt").write_bytes(b"")
    expect("empty.pt", "corrupt or truncated")
    (tmp_path / "text.pt").write_text("not a checkpoint at all")
    expect("text.pt", "not a")
    (tmp_path / "noise.pt").write_bytes(np.random.default_rng(0).bytes(4096))
    expect("noise.pt", "not a palsy-fusion checkpoint")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    expect("list.pt", "not a dict")

    payload = torch.load(good, weights_only=True)
    torch.save({**payload, "format_version": FORMAT_VERSION + 1}, tmp_path / "future.pt")
    expect("future.pt", f"format version {FORMAT_VERSION + 1}")
    torch.save({k: v for k, v in payload.items() if k != "meta"}, tmp_path / "nometa.pt")
    expect("nometa.pt", r"missing keys \['meta'\]")
    torch.save({**payload, "config": {**payload["config"], "embed_dim": 32}},
               tmp_path / "mismatch.pt")
    expect("mismatch.pt", "do not match the stored config")
    torch.save({**payload, "config": {**payload["config"], "depth": "resnet7"}},
               tmp_path / "badconfig.pt")
    expect("badconfig.pt", "invalid model config")


def test_malicious_checkpoint_is_refused(tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    payload = {"format_version": FORMAT_VERSION, "config": {}, "state_dict": {},
               "meta": {"x": Exploit()}, "versions": {}}
    torch.save(payload, tmp_path / "evil.pt")
    with (tmp_path / "evil_raw.pt").open("wb") as fh:
        pickle.dump(payload, fh, protocol=2)
    for name in ("evil.pt", "evil_raw.pt"):
        with pytest.raises(CheckpointError, match="could run code"):
            load_checkpoint(tmp_path / name)
    assert not marker.exists()


def test_meta_must_be_plain(tmp_path):
    with pytest.raises(TypeError, match=r"meta\.when: datetime"):
        save_checkpoint(tmp_path / "m.pt", small_model(), {"when": datetime.datetime.now()})
    assert not list(Path(tmp_path).iterdir())


def test_image_encoder_accepts_other_sizes():
    encoder = ImageEncoder("resnet10", 8, None).eval()
    assert encoder(torch.rand(1, 3, 96, 96)).shape == (1, 8)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        encoder(torch.rand(1, 1, 96, 96))
