"""Scoring an analysed photo or video from cached per-frame embeddings.

Each encoder runs once per frame; every modality subset is then a re-weighting of the cached
embeddings (``FusionModel.fuse``), so toggling modalities re-scores a long video in milliseconds
without re-running detection or the image networks. The CLI, evaluation and the dashboard all
score through ``ScoredMedia``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from palsy_core.extraction.pipeline import MediaAnalysis
from palsy_core.metrics import Decided, file_score, inconclusive_reason, turn_caution
from palsy_core.model.batches import (
    FrameArrays,
    Normaliser,
    analysis_arrays,
    mirror_arrays,
    to_inputs,
)
from palsy_core.model.checkpoint import CheckpointError, load_checkpoint
from palsy_core.model.fusion import all_subsets, subset_key, variant_name
from palsy_core.model.network import FusionModel
from palsy_core.model.novelty import UNFAMILIAR, Novelty, views
from palsy_core.registry import FRAME_FEATURES

# Fusing cached embeddings is a few tiny matrix products: on one thread it takes about a
# millisecond for 1000 frames, while a second OpenMP thread only adds synchronisation, which costs
# tens of milliseconds when the other core is busy.
FUSE_THREADS = 1


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Temporarily cap torch's intra-op threads (None: leave them); per thread with OpenMP."""
    previous = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class ParallelEncoder:
    """Runs a model's modality encoders side by side, each on its own thread.

    The two image encoders cost the same, so two workers with one intra-op thread each keep two
    cores busy without OpenMP's barriers, which stall whenever another process holds a core
    (a per-layer split over threads can be several times slower than one thread then). Results
    are bit-identical to ``FusionModel.encode``. ``threads_each`` intra-op threads per worker
    (default: torch's threads shared out among the workers).
    """

    def __init__(self, model: FusionModel, workers: int = 2, threads_each: int | None = None):
        self.model = model.eval()
        self._threads = torch.get_num_threads()
        self.threads_each = threads_each or max(1, self._threads // workers)
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="palsy-encode")

    def _encode(self, inputs: Mapping[str, torch.Tensor], key: str) -> torch.Tensor:
        torch.set_num_threads(self.threads_each)
        try:
            with torch.inference_mode():
                return self.model.encode(inputs, (key,))[key]
        finally:
            # torch hands the last value set (by any thread) to threads created later: put back
            # the creator's, not whatever another worker left behind.
            torch.set_num_threads(self._threads)

    def submit(self, inputs: Mapping[str, torch.Tensor], keys: Sequence[str]
               ) -> dict[str, Future[torch.Tensor]]:
        """Start encoding ``keys`` (largest encoders first); collect with ``Future.result``."""
        order = sorted(keys, key=lambda k: -inputs[k].numel() if k in inputs else 0)
        return {k: self._pool.submit(self._encode, inputs, k) for k in order}

    def encode(self, inputs: Mapping[str, torch.Tensor], keys: Sequence[str]
               ) -> dict[str, torch.Tensor]:
        """Embeddings of ``keys`` (in ``keys`` order), like ``FusionModel.encode``."""
        futures = self.submit(inputs, keys)
        return {k: futures[k].result() for k in keys}

    def close(self) -> None:
        self._pool.shutdown()

    def __enter__(self) -> ParallelEncoder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass
class LoadedModel:
    """A trained model ready to score: network, feature normaliser, per-subset thresholds."""

    model: FusionModel
    normaliser: Normaliser
    thresholds: dict[str, float]
    meta: dict
    novelty: Novelty | None = None  # None for checkpoints saved before the check existed

    @property
    def modalities(self) -> tuple[str, ...]:
        return self.model.config.modalities

    @property
    def verdict_modalities(self) -> tuple[str, ...]:
        """The modalities the verdict fuses: chosen by ``make train`` on the transfer check
        (``meta["verdict_modalities"]``; every modality for a model saved without the choice).
        Any other subset can still be scored, as an ablation."""
        chosen = self.meta.get("verdict_modalities") or self.modalities
        return tuple(m for m in self.modalities if m in chosen)

    @property
    def verdict_name(self) -> str:
        """The verdict's variant name (``fused``, ``without_blendshapes``...)."""
        return variant_name(self.verdict_modalities, self.modalities)

    def unfamiliar(self, arrays: FrameArrays) -> np.ndarray:
        """(N,) True where a frame is unlike the model's training faces (``novelty``)."""
        if self.novelty is None or not len(arrays):
            return np.zeros(len(arrays), dtype=bool)
        return self.novelty.unfamiliar(arrays)

    def fusion_weights(self) -> dict[str, float]:
        """The learned fusion weights with every modality on (softmax of the fusion logits)."""
        weights = self.model.fusion_logits.detach().softmax(0).tolist()
        return dict(zip(self.modalities, weights, strict=True))

    def threshold(self, subset: Sequence[str]) -> float:
        return float(self.thresholds.get(subset_key(subset), self.meta.get("threshold", 0.5)))

    def predict_proba(self, analyses: Sequence[MediaAnalysis],
                      enabled: Sequence[str] | None = None) -> np.ndarray:
        """(N, 2) [P(no palsy), P(palsy)] per analysed file, scikit-learn style (the file
        score of :class:`ScoredMedia`; NaN for a file without a face). ``fit`` in
        ``palsy_core.training.train`` makes this object."""
        p = np.array([np.nan if (s := ScoredMedia(self, a).score(enabled).p) is None else s
                      for a in analyses], dtype=np.float64)
        return np.column_stack([1.0 - p, p])


def load_model(path: str | Path) -> LoadedModel:
    """A checkpoint ready to score; CheckpointError when its meta cannot drive the model."""
    model, meta = load_checkpoint(path)
    try:
        normaliser = Normaliser.from_dict(meta["normaliser"])
        thresholds = {str(k): float(v) for k, v in dict(meta.get("thresholds", {})).items()}
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: its meta lacks a usable feature normaliser or "
                              f"thresholds ({type(exc).__name__}: {exc})") from exc
    n = model.config.n_features
    if "features" in model.config.modalities and not (
            normaliser.mean.shape == normaliser.std.shape == (n,)):
        raise CheckpointError(f"{path}: its feature normaliser does not fit the model's {n} "
                              "features")
    if "features" in model.config.modalities and n != len(FRAME_FEATURES):
        raise CheckpointError(f"{path}: trained on {n} expression features, but this version "
                              f"computes {len(FRAME_FEATURES)}; retrain it with this version "
                              "(make train)")
    chosen = meta.get("verdict_modalities")
    if chosen is not None and (not isinstance(chosen, list) or not chosen
                               or not set(chosen) <= set(model.config.modalities)):
        raise CheckpointError(f"{path}: its verdict modalities {chosen!r} are not a non-empty "
                              f"subset of its modalities {list(model.config.modalities)}")
    try:
        novelty = Novelty.from_dict(meta["novelty"]) if meta.get("novelty") else None
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: its novelty check is unreadable "
                              f"({type(exc).__name__}: {exc})") from exc
    return LoadedModel(model, normaliser, thresholds, meta, novelty)


@dataclass(frozen=True)
class SubsetScore(Decided):
    """The result for one modality subset."""

    enabled: tuple[str, ...]
    name: str  # fused, a modality key, without_<m>, or a joined subset key
    p_frames: np.ndarray  # (T,) P(palsy) per frame, NaN where no face
    p_left_frames: np.ndarray  # (T,) P(affected side = subject's left), NaN where no face
    p: float | None  # file-level P(palsy) (metrics.file_score), None without a face
    p_left: float | None
    threshold: float
    weights: dict[str, float]
    inconclusive: str | None = None  # why no verdict can be given (metrics.inconclusive_reason)
    caution: str | None = None  # a verdict given on a turned head (metrics.turn_caution)

    def _decision_inputs(self):
        return self.p, self.p_left, self.threshold, "no face found", self.inconclusive


def encode_batches(model: FusionModel, batches: Iterable[Mapping[str, torch.Tensor]],
                   keys: Sequence[str], workers: int = 2) -> dict[str, torch.Tensor]:
    """Embeddings of ``keys`` over input batches, concatenated, encoders side by side.

    The next batch is drawn from ``batches`` (for a generator: prepared) while the previous one
    is encoded, and at most two batches are in flight, so memory does not grow with length.
    """
    out: dict[str, list[torch.Tensor]] = {k: [] for k in keys}
    pending: deque[dict[str, Future[torch.Tensor]]] = deque()

    def collect() -> None:
        for k, future in pending.popleft().items():
            out[k].append(future.result())

    with ParallelEncoder(model, workers=workers) as encoder:
        for inputs in batches:
            pending.append(encoder.submit(inputs, keys))
            if len(pending) > 1:
                collect()
        while pending:
            collect()
    return {k: torch.cat(v) for k, v in out.items() if v}


def network_scores(model: FusionModel, own: Mapping[str, torch.Tensor],
                   mirror: Mapping[str, torch.Tensor], enabled: Sequence[str]
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame (palsy logit, P(left)) of the network's own fusion of ``enabled``, averaged over
    the face and its mirror image (the mirror's side answer flipped back). The one place the
    two views are combined: scoring, live, thresholds and the transfer check all call it."""
    with torch.inference_mode(), torch_threads(FUSE_THREADS):
        a = model.fuse({m: own[m] for m in enabled}, enabled)
        b = model.fuse({m: mirror[m] for m in enabled}, enabled)
    logit = (a.palsy_logit.double() + b.palsy_logit.double()).numpy() / 2.0
    left = (torch.sigmoid(a.side_logit) + 1.0 - torch.sigmoid(b.side_logit)) / 2.0
    return logit, left.double().numpy()


def mirror_averaged(loaded: LoadedModel, own: Mapping[str, torch.Tensor],
                    mirror: Mapping[str, torch.Tensor], enabled: Sequence[str]
                    ) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """Per-frame P(palsy), P(left) and the fusion weights used, for one modality subset: the
    network's fusion, averaged over the face and its mirror image."""
    enabled = tuple(enabled)
    logit, left = network_scores(loaded.model, own, mirror, enabled)
    keys = loaded.modalities
    sel = torch.tensor([k in enabled for k in keys])
    w = torch.softmax(loaded.model.fusion_logits.detach().masked_fill(~sel, float("-inf")), 0)
    return 1.0 / (1.0 + np.exp(-logit)), left, {k: float(w[i]) for i, k in enumerate(keys)
                                                 if k in enabled}


class ScoredMedia:
    """An analysed file plus its cached embeddings, ready to score any modality subset.

    Every frame is encoded twice, as seen and mirrored (test-time mirror averaging): P(palsy) is
    the mean over both views and the side head's answer for the mirror is flipped back, so a face
    and its mirror image get the same P(palsy) and opposite sides.
    """

    def __init__(self, loaded: LoadedModel, analysis: MediaAnalysis, batch_size: int = 64):
        self.loaded = loaded
        self.analysis = analysis
        self.face_idx = np.flatnonzero(analysis.has_face)
        self.modalities = tuple(loaded.modalities)
        size, rows = loaded.model.config.image_size, self.face_idx

        def batches(mirrored: bool):
            for i in range(0, len(rows), batch_size):
                arrays = analysis_arrays(analysis, size, rows[i : i + batch_size])
                yield to_inputs(mirror_arrays(arrays) if mirrored else arrays,
                                loaded.normaliser, self.modalities)

        self.embeddings = encode_batches(loaded.model, batches(False), self.modalities)
        self.mirror_embeddings = encode_batches(loaded.model, batches(True), self.modalities)
        # The file's quality flags plus the model's own: frames unlike its training faces.
        self.frame_flags: list[tuple[str, ...]] = list(analysis.flags)
        if self.has_face and loaded.novelty is not None:
            odd = loaded.unfamiliar(views(analysis.values, rows))  # no images resized twice
            for t in rows[odd]:
                self.frame_flags[t] = (*self.frame_flags[t], UNFAMILIAR)
        self._flags = [self.frame_flags[t] for t in self.face_idx]
        self._logits: dict[str, np.ndarray] = {}
        self._scores: dict[tuple[str, ...], SubsetScore] = {}  # a page rerun asks again

    @property
    def has_face(self) -> bool:
        return len(self.face_idx) > 0

    def frame_logits(self, modality: str) -> np.ndarray:
        """Per-face-frame palsy logit of one modality alone (mirror-averaged), cached."""
        if modality not in self._logits:
            self._logits[modality] = network_scores(
                self.loaded.model, self.embeddings, self.mirror_embeddings, (modality,))[0]
        return self._logits[modality]

    def modality_logits(self) -> dict[str, float]:
        """File-level palsy logit of each modality alone (what a late fusion would combine)."""
        return {m: file_score(self.frame_logits(m), self._flags) for m in self.modalities}

    def score(self, enabled: Sequence[str] | None = None) -> SubsetScore:
        """Score with only the ``enabled`` modalities (default: the verdict's,
        ``LoadedModel.verdict_modalities``)."""
        enabled = self.loaded.verdict_modalities if enabled is None else tuple(
            m for m in self.modalities if m in enabled)
        if not enabled:
            raise ValueError(f"enable at least one of {list(self.modalities)}")
        if enabled not in self._scores:
            self._scores[enabled] = self._score(enabled)
        return self._scores[enabled]

    def _score(self, enabled: tuple[str, ...]) -> SubsetScore:
        t = self.analysis.n_frames
        p_frames = np.full(t, np.nan)
        p_left_frames = np.full(t, np.nan)
        weights: dict[str, float] = {}
        p = p_left = None
        if self.has_face:
            p_face, left, weights = mirror_averaged(self.loaded, self.embeddings,
                                                    self.mirror_embeddings, enabled)
            p_frames[self.face_idx] = p_face
            p_left_frames[self.face_idx] = left
            p = file_score(p_frames[self.face_idx], self._flags)
            p_left = file_score(p_left_frames[self.face_idx], self._flags)
        p_frames.flags.writeable = p_left_frames.flags.writeable = False  # cached, shared
        inconclusive = inconclusive_reason(self._flags)
        caution = None if inconclusive else turn_caution(
            self.analysis.pose[self.face_idx, 0], self._flags)
        return SubsetScore(enabled, variant_name(enabled, self.modalities), p_frames,
                           p_left_frames, p, p_left, self.loaded.threshold(enabled), weights,
                           inconclusive, caution)

    def all_subsets(self) -> list[SubsetScore]:
        """Every non-empty modality subset's result on this file."""
        return [self.score(s) for s in all_subsets(self.modalities)]


def summary(scored: ScoredMedia, subsets: Sequence[Sequence[str]]) -> dict:
    """The per-file record used by ``predict`` and ``evaluate`` (JSON-serialisable)."""
    a = scored.analysis
    quality: dict[str, int] = {}
    for fl in scored.frame_flags:
        for f in fl:
            quality[f] = quality.get(f, 0) + 1
    full = scored.score()
    out = {"frames_analysed": a.n_frames, "face_frames": len(scored.face_idx),
           "quality": quality, "verdict": full.verdict, "reason": full.inconclusive,
           "caution": full.caution,
           "side": full.side, "p_palsy": full.p, "variant": full.name,
           "modalities": list(full.enabled), "threshold": full.threshold, "p_left": full.p_left}
    for s in subsets:
        res = scored.score(s)
        out[f"p_{res.name}"] = res.p
    return out
