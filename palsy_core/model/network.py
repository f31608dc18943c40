"""The fused multimodal palsy model: one encoder per modality, learned weighted fusion, two heads.

Encoders see *mirror comparisons only*, never appearance: each image encoder gets the difference
between the aligned image and its horizontal flip, the landmark encoder the coordinates' reflection
asymmetry, and the face-network and blendshape encoders their own face-minus-mirror vectors. The
aligned frame puts the facial midline on the image's vertical centre line, so these comparisons
cancel identity, lighting and photo style and keep one-sided change: on faces from sources the
model never saw, the raw-appearance branches fell to chance while the mirror-based ones carried
over (the leave-one-source-out check in the model card).

Modalities are fused by a softmax over one learned logit per modality, taken over the modalities
enabled for a call (or per sample, through a mask), so the same model runs on any non-empty subset;
modality-dropout training (:func:`sample_modality_mask`) teaches it to.
"""

from __future__ import annotations

import pickle
import socket
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torchvision.models import ResNet, ResNet18_Weights, ResNet34_Weights, ResNet50_Weights
from torchvision.models.resnet import BasicBlock, Bottleneck

from palsy_core.face.topology import N_LANDMARKS, mirror_index
from palsy_core.modalities import specs
from palsy_core.registry import DEFAULT_MODALITIES, FRAME_FEATURES, MODALITY_KEYS

DOWNLOAD_TIMEOUT_S = 30.0  # bounds a download attempt on a machine whose network drops packets

# depth -> (block, blocks per stage, ImageNet weights). resnet10 takes the first block of each
# resnet18 stage, the usual way to give the shallow variant pretrained filters.
_BACKBONES = {
    "resnet10": (BasicBlock, (1, 1, 1, 1), ResNet18_Weights.DEFAULT),
    "resnet18": (BasicBlock, (2, 2, 2, 2), ResNet18_Weights.DEFAULT),
    "resnet34": (BasicBlock, (3, 4, 6, 3), ResNet34_Weights.DEFAULT),
    "resnet50": (Bottleneck, (3, 4, 6, 3), ResNet50_Weights.DEFAULT),
}
DEPTHS: tuple[str, ...] = tuple(_BACKBONES)


class PretrainedWeightsWarning(UserWarning):
    """ImageNet backbone weights could not be obtained; encoders start from random weights."""


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild the architecture; stored in checkpoints as a plain dict.

    ``modalities`` is kept in registry order; that order is the column order of fusion masks.
    ``image_size`` is the side the caller resizes image inputs to (the encoders accept any size).
    """

    modalities: tuple[str, ...] = DEFAULT_MODALITIES
    n_features: int = len(FRAME_FEATURES)
    image_size: int = 64
    depth: str = "resnet10"
    embed_dim: int = 64
    hidden_dim: int = 128
    mlp_layers: int = 2
    dropout: float = 0.3

    def __post_init__(self) -> None:
        unknown = [k for k in self.modalities if k not in MODALITY_KEYS]
        if unknown:
            raise ValueError(f"unknown modalities {unknown}; choose from {list(MODALITY_KEYS)}")
        if len(set(self.modalities)) != len(self.modalities):
            raise ValueError(f"duplicate modalities in {list(self.modalities)}")
        object.__setattr__(
            self, "modalities", tuple(k for k in MODALITY_KEYS if k in self.modalities)
        )
        if not self.modalities:
            raise ValueError("a model needs at least one modality")
        if "features" in self.modalities and self.n_features < 1:
            raise ValueError("the 'features' modality needs n_features >= 1")
        if self.depth not in _BACKBONES:
            raise ValueError(f"unknown depth {self.depth!r}; choose from {list(DEPTHS)}")
        if self.image_size < 32:
            raise ValueError(f"image_size must be at least 32 px, got {self.image_size}")
        if min(self.embed_dim, self.hidden_dim, self.mlp_layers) < 1:
            raise ValueError("embed_dim, hidden_dim and mlp_layers must be positive")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    def to_dict(self) -> dict[str, Any]:
        """Plain-typed dict (lists, not tuples) for checkpoints and JSON."""
        data = asdict(self)
        data["modalities"] = list(self.modalities)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error, missing keys take defaults."""
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        values = dict(data)
        if "modalities" in values:
            values["modalities"] = tuple(values["modalities"])
        return cls(**values)


@dataclass
class FusionOutput:
    """Per-sample results of one forward pass.

    ``weights`` and ``embeddings`` hold only the modalities that were computed; a modality masked
    out for some rows has weight 0 in those rows.
    """

    palsy_logit: Tensor  # (B,) logit of P(palsy)
    side_logit: Tensor  # (B,) logit of P(affected side = subject's left)
    weights: dict[str, Tensor]  # modality -> (B,) fusion weight
    embeddings: dict[str, Tensor]  # modality -> (B, embed_dim)
    fused: Tensor  # (B, embed_dim) weighted sum of the embeddings


def mirror_difference(images: Tensor) -> Tensor:
    """(B, 3, H, W): the image minus its horizontal flip (zero for a symmetric face)."""
    return images - images.flip(-1)


def landmark_asymmetry(coords: Tensor) -> Tensor:
    """Coordinates minus their reflection across the midline x = 0, re-indexed with
    :func:`~palsy_core.face.topology.mirror_index` so index ``i`` keeps its anatomical meaning.

    ``coords`` is (..., 478, 3) centred on the eye midpoint; a perfectly symmetric face gives 0.
    """
    index = torch.as_tensor(mirror_index(), device=coords.device)
    return coords - coords[..., index, :] * coords.new_tensor([-1.0, 1.0, 1.0])


def sample_modality_mask(
    batch: int,
    modalities: Sequence[str],
    p_keep: float = 0.5,
    generator: torch.Generator | None = None,
    p_full: float = 0.25,
) -> Tensor:
    """Random non-empty modality subsets, one per row, for modality-dropout training.

    A row keeps every modality with probability ``p_full`` (inference mostly sees the full set);
    otherwise each modality independently with probability ``p_keep``, and a row left empty keeps
    one modality drawn uniformly, which makes single-modality rows common too.
    Returns a (batch, len(modalities)) bool tensor on the CPU, columns in ``modalities`` order.
    """
    m = len(modalities)
    if m < 1:
        raise ValueError("sample_modality_mask needs at least one modality")
    if not (0.0 < p_keep <= 1.0 and 0.0 <= p_full <= 1.0):
        raise ValueError(f"need 0 < p_keep <= 1 and 0 <= p_full <= 1, got {p_keep}, {p_full}")
    keep = torch.rand(batch, m, generator=generator) < p_keep
    keep |= torch.rand(batch, 1, generator=generator) < p_full
    pick = torch.randint(m, (batch,), generator=generator)
    empty = ~keep.any(dim=1)
    keep[empty, pick[empty]] = True
    return keep


# --- Backbone weights ---------------------------------------------------------------------------

@contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    """torchvision's download sets no timeout; bound it so an offline start never hangs."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def pretrained_backbone(depth: str, weights: str | Path | None) -> dict[str, Tensor] | None:
    """Backbone state dict for ``weights``: ``"imagenet"``, a local state-dict file, or None.

    ImageNet weights come through torchvision's weights API (torch hub cache, else download). When
    neither works, a :class:`PretrainedWeightsWarning` says so and None (random init) is returned.
    """
    if weights is None:
        return None
    if depth not in _BACKBONES:
        raise ValueError(f"unknown depth {depth!r}; choose from {list(DEPTHS)}")
    if weights == "imagenet":
        enum = _BACKBONES[depth][2]
        try:
            with _socket_timeout(DOWNLOAD_TIMEOUT_S):
                return enum.get_state_dict(progress=False, check_hash=True)
        # URLError and socket timeouts are OSErrors; a bad hash or broken cache file RuntimeError.
        except (OSError, RuntimeError) as err:
            filename = enum.url.rsplit("/", 1)[-1]
            warnings.warn(
                f"ImageNet weights for {depth} are unavailable ({err}); the image encoders start "
                f"from random initialisation. To use them offline, put {filename} in "
                f"{Path(torch.hub.get_dir()) / 'checkpoints'}.",
                PretrainedWeightsWarning,
                stacklevel=3,
            )
            return None
    path = Path(weights)
    if not path.is_file():
        raise FileNotFoundError(f"backbone weights file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, OSError, EOFError, KeyError) as err:
        raise ValueError(f"cannot read backbone weights {path} as a state dict: {err}") from err
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"backbone weights {path} are not a state dict (name -> tensor)")
    return dict(state)


def _load_backbone(net: ResNet, source: Mapping[str, Tensor], depth: str) -> None:
    """Load a torchvision ResNet state dict into a backbone (its fc is not used).

    The backbone reads mirror-difference images, so pretrained filters start it from edge and
    texture detectors applied to the asymmetry, not to the face's appearance.
    """
    state = {k: v for k, v in source.items() if not k.startswith("fc.")}
    own = {k for k in net.state_dict() if not k.startswith("fc.")}
    missing = sorted(own - state.keys())
    unexpected = [] if depth == "resnet10" else sorted(state.keys() - own)
    if missing or unexpected:
        raise ValueError(
            f"backbone weights do not fit a {depth}: {len(missing)} missing keys {missing[:4]}, "
            f"{len(unexpected)} unexpected keys {unexpected[:4]}"
        )
    try:
        net.load_state_dict({k: state[k] for k in own}, strict=False)
    except RuntimeError as err:
        raise ValueError(f"backbone weights do not fit a {depth}: {err}") from err


# --- Encoders -----------------------------------------------------------------------------------

class ImageEncoder(nn.Module):
    """ResNet over an image's mirror difference (image minus its flip), projected to
    ``embed_dim``."""

    def __init__(self, depth: str, embed_dim: int, pretrained: Mapping[str, Tensor] | None) -> None:
        super().__init__()
        block, layers, _ = _BACKBONES[depth]
        net = ResNet(block, list(layers))
        if pretrained is not None:
            _load_backbone(net, pretrained, depth)
        net.fc = nn.Sequential(nn.Linear(net.fc.in_features, embed_dim), nn.LayerNorm(embed_dim))
        self.backbone = net

    def forward(self, images: Tensor) -> Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"image input must be (B, 3, H, W), got {tuple(images.shape)}")
        return self.backbone(mirror_difference(images))


class VectorEncoder(nn.Module):
    """MLP of Linear-LayerNorm-GELU-Dropout blocks, then a normalised projection to ``embed_dim``.

    Every encoder ends in a LayerNorm so embeddings share a scale and fusion weights are comparable.
    """

    def __init__(self, in_dim: int, config: ModelConfig) -> None:
        super().__init__()
        self.in_dim = in_dim
        blocks: list[nn.Module] = []
        width = in_dim
        for _ in range(config.mlp_layers):
            blocks += [nn.Linear(width, config.hidden_dim), nn.LayerNorm(config.hidden_dim),
                       nn.GELU(), nn.Dropout(config.dropout)]
            width = config.hidden_dim
        blocks += [nn.Linear(width, config.embed_dim), nn.LayerNorm(config.embed_dim)]
        self.net = nn.Sequential(*blocks)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 2 or x.shape[1] != self.in_dim:
            raise ValueError(f"vector input must be (B, {self.in_dim}), got {tuple(x.shape)}")
        return self.net(x)


class ScaledEncoder(VectorEncoder):
    """MLP over a vector standardised per value on the training data.

    The standardisation is a non-affine BatchNorm: its running statistics, fitted while training,
    live in the state dict, and unlike a LayerNorm it keeps the overall size of an asymmetry
    vector, which is the signal.
    """

    def __init__(self, in_dim: int, config: ModelConfig) -> None:
        super().__init__(in_dim, config)
        self.scale = nn.BatchNorm1d(in_dim, affine=False)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 2 or x.shape[1] != self.in_dim:
            raise ValueError(f"vector input must be (B, {self.in_dim}), got {tuple(x.shape)}")
        return super().forward(self.scale(x))


class LandmarkEncoder(ScaledEncoder):
    """MLP over the landmarks' mirror asymmetry (coordinates minus their reflection)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(N_LANDMARKS * 3, config)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 3 or x.shape[1:] != (N_LANDMARKS, 3):
            raise ValueError(f"landmarks must be (B, {N_LANDMARKS}, 3), got {tuple(x.shape)}")
        return super().forward(landmark_asymmetry(x).flatten(1))


def _build_encoder(
    key: str, config: ModelConfig, pretrained: Mapping[str, Tensor] | None
) -> nn.Module:
    """The encoder a modality's spec asks for (``modalities.base.ModalitySpec.encoder``)."""
    spec = specs()[key]
    if spec.encoder == "image":
        return ImageEncoder(config.depth, config.embed_dim, pretrained)
    if spec.encoder == "landmark":
        return LandmarkEncoder(config)
    width = spec.input_dim(config.n_features)
    return (VectorEncoder if spec.encoder == "vector" else ScaledEncoder)(width, config)


def _head(width: int, dropout: float) -> nn.Module:
    return nn.Sequential(
        nn.Linear(width, width), nn.GELU(), nn.Dropout(dropout), nn.Linear(width, 1)
    )


# --- The fused model ----------------------------------------------------------------------------

class FusionModel(nn.Module):
    """Per-modality encoders, softmax-weighted fusion and palsy / affected-side heads.

    ``backbone_weights``: ``"imagenet"``, a local torchvision ResNet state-dict file, or None
    (random). It only initialises a new model; checkpoints restore everything.
    """

    def __init__(self, config: ModelConfig, backbone_weights: str | Path | None = None) -> None:
        super().__init__()
        self.config = config
        has_images = any(specs()[k].encoder == "image" for k in config.modalities)
        pretrained = pretrained_backbone(config.depth, backbone_weights) if has_images else None
        self.encoders = nn.ModuleDict(
            {key: _build_encoder(key, config, pretrained) for key in config.modalities}
        )
        self.fusion_logits = nn.Parameter(torch.zeros(len(config.modalities)))
        self.palsy_head = _head(config.embed_dim, config.dropout)
        self.side_head = _head(config.embed_dim, config.dropout)

    def forward(
        self,
        inputs: Mapping[str, Tensor],
        enabled: Sequence[str] | None = None,
        mask: Tensor | None = None,
    ) -> FusionOutput:
        """Fuse the ``enabled`` modalities (default: all of the model's).

        Only enabled inputs are read, so the others may be left out of ``inputs``. ``mask`` (B, M)
        bool, columns in ``config.modalities`` order, further restricts modalities per row (each row
        needs one); masked-out rows are still encoded, so they must hold finite placeholders.
        """
        keys = self.config.modalities
        active = self._enabled(enabled)
        rows = torch.tensor([k in active for k in keys], device=self.fusion_logits.device)[None]
        if mask is not None:
            if mask.dtype != torch.bool or mask.ndim != 2 or mask.shape[1] != len(keys):
                raise ValueError(
                    f"mask must be a bool tensor (B, {len(keys)}) with columns {list(keys)}, "
                    f"got {mask.dtype} {tuple(mask.shape)}"
                )
            rows = mask.to(rows.device) & rows
            if not rows.any(dim=1).all():
                raise ValueError("every mask row must enable at least one enabled modality")
            used = rows.any(dim=0).tolist()
            active = tuple(k for k, u in zip(keys, used, strict=True) if u)
        return self._fuse(self.encode(inputs, active), rows)

    def encode(self, inputs: Mapping[str, Tensor], keys: Sequence[str]) -> dict[str, Tensor]:
        """Embeddings of the named modalities only (the others' inputs are not read)."""
        return {key: self.encoders[key](_read(inputs, key)) for key in self._enabled(keys)}

    def fuse(self, embeddings: Mapping[str, Tensor], enabled: Sequence[str] | None = None
             ) -> FusionOutput:
        """Fuse precomputed embeddings: switching modalities on and off needs no encoder pass."""
        active = self._enabled(enabled if enabled is not None else list(embeddings))
        rows = torch.tensor([k in active for k in self.config.modalities],
                            device=self.fusion_logits.device)[None]
        return self._fuse({k: embeddings[k] for k in active}, rows)

    def _fuse(self, embeddings: Mapping[str, Tensor], rows: Tensor) -> FusionOutput:
        keys = self.config.modalities
        active = tuple(embeddings)
        sizes = {key: int(e.shape[0]) for key, e in embeddings.items()}
        if rows.shape[0] > 1:
            sizes["mask"] = int(rows.shape[0])
        if len(set(sizes.values())) > 1:
            raise ValueError(f"inputs have different batch sizes: {sizes}")
        batch = next(iter(embeddings.values())).shape[0]
        weights = torch.softmax(self.fusion_logits.masked_fill(~rows, float("-inf")), dim=-1)
        weights = weights.expand(batch, -1)
        columns = {key: weights[:, keys.index(key)] for key in active}
        fused = sum(columns[key][:, None] * embeddings[key] for key in active)
        return FusionOutput(
            palsy_logit=self.palsy_head(fused).squeeze(-1),
            side_logit=self.side_head(fused).squeeze(-1),
            weights=columns,
            embeddings=dict(embeddings),
            fused=fused,
        )

    def cam_layer(self, key: str) -> nn.Module:
        """The last convolutional block of an image encoder, the usual Grad-CAM target."""
        encoder = dict(self.encoders.items()).get(key)
        if not isinstance(encoder, ImageEncoder):
            images = [k for k, e in self.encoders.items() if isinstance(e, ImageEncoder)]
            raise ValueError(f"Grad-CAM needs one of this model's image modalities {images}, "
                             f"got {key!r}")
        return encoder.backbone.layer4

    def _enabled(self, enabled: Sequence[str] | None) -> tuple[str, ...]:
        keys = self.config.modalities
        if enabled is None:
            return keys
        if isinstance(enabled, str):
            raise TypeError(f"enabled must be a sequence of modality keys, not the string "
                            f"{enabled!r}")
        unknown = [k for k in enabled if k not in keys]
        if unknown:
            raise ValueError(f"modalities {unknown} are not part of this model {list(keys)}")
        active = tuple(k for k in keys if k in enabled)
        if not active:
            raise ValueError("enable at least one modality")
        return active


def _read(inputs: Mapping[str, Tensor], key: str) -> Tensor:
    try:
        return inputs[key]
    except KeyError:
        raise KeyError(f"no input for enabled modality {key!r}; pass it or leave it out of "
                       f"`enabled`") from None
