"""Training the fused model with modality dropout, mirror augmentation and early stopping.

Every split is by subject: the early-stopping validation set is a subject-grouped slice of the
training data, and the decision thresholds are chosen on it, so nothing about the test subjects
ever shapes the model.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from palsy_core.inference.scoring import LoadedModel, network_scores
from palsy_core.metrics import MIN_THRESHOLD_FILES, best_threshold
from palsy_core.modalities import features as feats
from palsy_core.model.batches import FrameArrays, Normaliser, mirror_arrays, to_inputs
from palsy_core.model.fusion import all_subsets, subset_key
from palsy_core.model.network import FusionModel, ModelConfig, sample_modality_mask
from palsy_core.model.novelty import MIN_FRAMES, Novelty
from palsy_core.training.dataset import SampleSet

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig(ModelConfig):
    """The one config: the architecture (``ModelConfig``'s fields) plus how to train it."""

    epochs: int = 8
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-2
    p_keep: float = 0.5
    val_fraction: float = 0.2
    patience: int = 4
    seed: int = 0
    side_loss_weight: float = 0.5
    backbone_weights: str | None = None
    # Each source's files count in proportion to 1/sqrt(its size): a large one-style source (news
    # photos, one web pool) cannot teach "this photo style means this class" by sheer number.
    source_balance: bool = True

    def model_config(self) -> ModelConfig:
        """The architecture part, as stored in checkpoints."""
        return ModelConfig(**{f.name: getattr(self, f.name) for f in fields(ModelConfig)})


def grouped_split(subjects: np.ndarray, y: np.ndarray, fraction: float, seed: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks (train, val) with whole subjects on one side, both classes in val."""
    rng = np.random.default_rng(seed)
    val_subjects: set = set()
    for label in (0, 1):
        subs = np.unique(subjects[y == label])
        subs = subs[~np.isin(subs, list(val_subjects))]
        n = max(1, round(fraction * len(subs))) if len(subs) > 1 else 0
        val_subjects.update(rng.choice(subs, size=n, replace=False).tolist())
    val = np.isin(subjects, list(val_subjects))
    return ~val, val


def subset_probs(model: FusionModel, normaliser: Normaliser, arrays: FrameArrays,
                 subsets: Sequence[Sequence[str]], batch_size: int = 64
                 ) -> dict[str, np.ndarray]:
    """P(palsy) per frame for each modality subset; every encoder runs once, subsets re-fuse."""
    needed = [m for m in model.config.modalities if any(m in s for s in subsets)]
    device = next(model.parameters()).device
    model.eval()
    chunks: dict[str, list[torch.Tensor]] = {m: [] for m in needed}
    with torch.no_grad():
        for start in range(0, len(arrays), batch_size):
            part = arrays.take(np.arange(start, min(start + batch_size, len(arrays))))
            for m, e in model.encode(to_inputs(part, normaliser, needed, device), needed).items():
                chunks[m].append(e)
        emb = {m: torch.cat(c) for m, c in chunks.items() if c}
        if not emb:
            return {}
        return {subset_key(s): torch.sigmoid(model.fuse({m: emb[m] for m in s}, list(s))
                                             .palsy_logit).cpu().numpy() for s in subsets}


def subset_scores(model: FusionModel, normaliser: Normaliser, arrays: FrameArrays,
                  subsets: Sequence[Sequence[str]], batch_size: int = 64
                  ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per-frame (palsy logit, P(left)) of the network's fusion of each subset, mirror-averaged
    exactly as scoring does (``scoring.network_scores``); subset key -> two (N,) arrays. Every
    encoder runs once per view; subsets only re-fuse."""
    keys = [m for m in model.config.modalities if any(m in s for s in subsets)]
    model.eval().cpu()
    out: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {subset_key(s): [] for s in subsets}
    with torch.no_grad():
        for start in range(0, len(arrays), batch_size):
            part = arrays.take(np.arange(start, min(start + batch_size, len(arrays))))
            own = model.encode(to_inputs(part, normaliser, keys), keys)
            mir = model.encode(to_inputs(mirror_arrays(part), normaliser, keys), keys)
            for s in subsets:
                out[subset_key(s)].append(network_scores(model, own, mir, s))
    return {k: (np.concatenate([z for z, _ in v]), np.concatenate([p for _, p in v]))
            for k, v in out.items()}


def source_weights(data: SampleSet) -> np.ndarray:
    """Per-sample factor 1/sqrt(real files in the sample's source), mean 1 over sources."""
    sources = np.array([data.rows[i].source for i in data.file_id], dtype=object)
    real_files: dict[str, set] = {}
    for src, fid, syn in zip(sources, data.file_id, data.synthetic, strict=True):
        real_files.setdefault(src, set())
        if not syn:
            real_files[src].add(int(fid))
    factor = {s: 1.0 / np.sqrt(max(len(f), 1)) for s, f in real_files.items()}
    mean = float(np.mean(list(factor.values())))
    return np.array([factor[s] / mean for s in sources])


def threshold_units(val: SampleSet) -> SampleSet:
    """The validation samples a threshold is chosen on: the real files, unless either class has
    fewer than ``MIN_THRESHOLD_FILES`` of them; then every sample, synthetic ones included."""
    real = val.take(np.flatnonzero(~val.synthetic))
    files = [len(np.unique(real.file_id[real.y == label])) for label in (0, 1)]
    return real if min(files) >= MIN_THRESHOLD_FILES else val


def unit_threshold(units: SampleSet, p: np.ndarray) -> float:
    """The threshold (``best_threshold``) on ``threshold_units``' samples scored ``p`` per frame:
    a real file's frames form one unit (mean P), each synthetic sample is its own."""
    unit = np.where(units.synthetic, -1 - np.arange(len(units)), units.file_id)
    ids = np.unique(unit)
    return best_threshold(np.array([units.y[unit == i][0] for i in ids]),
                          np.array([p[unit == i].mean() for i in ids]))


def _mirror_some(batch: SampleSet, w: np.ndarray, flip: np.ndarray):
    """Mirror the flagged rows of a batch (flipped rows move to the end); their side swaps."""
    keep, fl = np.flatnonzero(~flip), np.flatnonzero(flip)
    order = np.concatenate([keep, fl])
    arrays = batch.arrays
    if len(fl):
        arrays = FrameArrays.concat([arrays.take(keep), mirror_arrays(arrays.take(fl))])
    side = batch.side[order].astype(np.int64)
    tail = side[len(keep):]
    side[len(keep):] = np.where(tail >= 0, 1 - tail, -1)
    return arrays, batch.y[order], side, w[order]


def fit(data: SampleSet, config: TrainConfig, progress: bool = True,
        device: str | None = None) -> LoadedModel:
    """Train one model on ``data`` (real and synthetic samples of the training subjects).

    Thresholds are chosen on the validation subjects' real files, or on all their samples
    (synthetic included) where the real files hold fewer than ``MIN_THRESHOLD_FILES`` of a class
    (a held-out source that holds nearly all the real palsy): see ``threshold_units``.
    """
    start = time.time()
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)

    subjects = data.subjects
    tr_mask, va_mask = grouped_split(subjects, data.y.astype(int), config.val_fraction,
                                     config.seed)
    train, val = data.take(np.flatnonzero(tr_mask)), data.take(np.flatnonzero(va_mask))
    normaliser = Normaliser.fit(train.arrays.features)
    mcfg = replace(config.model_config(), n_features=len(feats.FRAME_FEATURES))
    model = FusionModel(mcfg, backbone_weights=config.backbone_weights).to(device)
    keys = mcfg.modalities
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps = config.epochs * int(np.ceil(len(train) / config.batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=max(steps, 1))
    bce = nn.BCEWithLogitsLoss(reduction="none")

    # Class-balanced sample weights: each class carries half of the total weight.
    w = train.weight.astype(np.float64).copy()
    if config.source_balance:
        w *= source_weights(train)
    for label in (0, 1):
        sel = train.y == label
        if sel.any():
            w[sel] *= 0.5 / w[sel].sum()
    w = w / w.mean()

    best, best_loss, bad, history = None, np.inf, 0, []
    epochs = tqdm(range(config.epochs), desc="train", unit="epoch", disable=not progress)
    for epoch in epochs:
        model.train()
        order = rng.permutation(len(train))
        total = 0.0
        for b in range(0, len(order), config.batch_size):
            idx = order[b:b + config.batch_size]
            if len(idx) < 2:
                continue
            batch = train.take(idx)
            arrays, yb, side, wb = _mirror_some(batch, w[idx], rng.random(len(idx)) < 0.5)
            inputs = to_inputs(arrays, normaliser, keys, device)
            mask = (sample_modality_mask(len(yb), keys, config.p_keep, gen).to(device)
                    if len(keys) > 1 else None)
            out = model(inputs, mask=mask)
            yt = torch.from_numpy(yb).to(device)
            wt = torch.from_numpy(wb.astype(np.float32)).to(device)
            loss = (bce(out.palsy_logit, yt) * wt).mean()
            st = torch.from_numpy(side).to(device)
            has_side = st >= 0
            if has_side.any():
                side_loss = bce(out.side_logit[has_side], st[has_side].float()).mean()
                loss = loss + config.side_loss_weight * side_loss
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        val_loss = _val_loss(model, normaliser, val, keys) if len(val) else float("nan")
        history.append({"epoch": epoch + 1, "train_loss": total / max(len(train), 1),
                        "val_loss": val_loss})
        epochs.set_postfix(train=f"{history[-1]['train_loss']:.3f}", val=f"{val_loss:.3f}")
        if not np.isfinite(val_loss) or val_loss < best_loss - 1e-4:
            best_loss = val_loss if np.isfinite(val_loss) else best_loss
            best = {k: v.detach().clone() for k, v in model.state_dict().items()}
            bad = 0
        else:
            bad += 1
            if bad >= config.patience:
                break
    if best is not None:
        model.load_state_dict(best)
    model.eval()

    thr_val = threshold_units(val)
    subsets = all_subsets(keys)
    if len(thr_val):
        scores = subset_scores(model, normaliser, thr_val.arrays, subsets)
        thresholds = {key: unit_threshold(thr_val, 1 / (1 + np.exp(-logit)))
                      for key, (logit, _) in scores.items()}
    else:
        thresholds = {subset_key(s): 0.5 for s in subsets}
    real = data.arrays.take(np.flatnonzero(~data.synthetic))
    novelty = Novelty.fit(real) if len(real) >= MIN_FRAMES else None
    meta = {"normaliser": normaliser.to_dict(), "thresholds": thresholds,
            "threshold": thresholds[subset_key(keys)],
            "novelty": novelty.to_dict() if novelty else None,
            "history": history, "train_seconds": time.time() - start}
    return LoadedModel(model.cpu(), normaliser, thresholds, meta, novelty)


def _val_loss(model: FusionModel, normaliser: Normaliser, val: SampleSet,
              keys: Sequence[str]) -> float:
    p = np.clip(subset_probs(model, normaliser, val.arrays, [keys])[subset_key(keys)], 1e-6,
                1 - 1e-6)
    w = val.weight.astype(np.float64).copy()
    for label in (0, 1):
        sel = val.y == label
        if sel.any():
            w[sel] *= 0.5 / w[sel].sum()
    ll = -(val.y * np.log(p) + (1 - val.y) * np.log(1 - p))
    return float((ll * w).sum() / w.sum())

