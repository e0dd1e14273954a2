"""Open set: is a photo unlike every training photo? Scores on the features the head reads.

A council has more categories than the model has classes. The softmax
always picks one of the classes it knows, so the model's own probability
cannot say "none of the above". The score here is the distance from a
photo's features to its k-th (by default the 1st) nearest training photo (Sun et al. 2022,
"Out-of-distribution detection with deep nearest neighbors"), on the
features exactly as the head normalises them (each level to unit length,
cosine distance). Its threshold is the ``quantile`` of the same score for
known photos held out of the bank (k-fold), so about ``1 - quantile`` of
photos like the training ones are flagged. ``benchmarks/openset_bench.py``
chose it over the maximum softmax probability and a class-conditional
Mahalanobis distance by leave-one-class-out AUROC: mean 0.94 against 0.85
and 0.91 (docs/BENCHMARKS.md).

Given out-of-fold logits, a second rule joins it: the head's energy,
``-logsumexp(logits / T)`` (Liu et al. 2020, "Energy-based out-of-distribution
detection"), flags photos whose logits are all low, which the distance
misses when an unknown class sits between known ones (web fly-tipping heaps
near potholes and graffiti walls). A photo is unknown when either score is
beyond its own threshold (the distance's 95th held-out percentile, the
energy's 93rd, from out-of-fold logits); the served ``unknown_score`` is that OR as one number,
the larger of the two scores' margins over their thresholds in units of their
held-out spread, with threshold 0. By leave-one-class-out this brings
fly-tipping left out from 0.205 still auto-triaged to 0.091 and ``no_issue``
from 0.447 to 0.190, for at most 5.0 points of known photos' auto-triage; it
flags about 11 % of held-out known photos, not 5 % (docs/BENCHMARKS.md).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from training.config import TrainConfig
from training.data import stratified_folds

# The recipe's defaults (training.config), so a benchmark calling fit_open_set without them measures the served rule.
K_NEAREST = TrainConfig.open_set_k  # 1, the nearest photo: as good as the 10th by AUROC, cheaper in auto-triage
QUANTILE = TrainConfig.open_set_quantile  # 0.95: the distance's threshold; ~5 % of ordinary photos go to review
ENERGY_QUANTILE = TrainConfig.open_set_energy_quantile  # 0.93: together the two flag about 11 % of held-out photos


def normalise(feats: torch.Tensor, chunks: tuple[int, ...]) -> torch.Tensor:
    """Each feature level to unit length, the levels together to unit length (the head's own view)."""
    parts = [nn.functional.normalize(p, dim=-1) for p in feats.split(chunks, dim=-1)]
    return torch.cat(parts, dim=-1) / len(parts) ** 0.5


def knn_score(bank: torch.Tensor, queries: torch.Tensor, k: int = K_NEAREST) -> torch.Tensor:
    """Cosine distance from each (normalised) query to its k-th nearest (normalised) bank row."""
    sims = queries @ bank.T
    k = min(k, bank.shape[0])
    return 1 - sims.topk(k, dim=1).values[:, -1]


def energy(logits: torch.Tensor | np.ndarray, temperature: float) -> torch.Tensor:
    """``-logsumexp(logits / T)``: higher when no class's logit is high (an unfamiliar photo)."""
    return -torch.logsumexp(torch.as_tensor(logits, dtype=torch.float32) / temperature, dim=-1)


@dataclass(frozen=True)
class Rule:
    """One score's threshold (a quantile of known photos' held-out scores) and their spread, the unit its
    margin is measured in when two rules make one ``unknown_score``."""

    threshold: float
    scale: float
    quantile: float

    @classmethod
    def of(cls, held_out: np.ndarray, quantile: float) -> Rule:
        spread = float(np.std(held_out))
        return cls(float(np.quantile(held_out, quantile)), spread if spread > 0 else 1.0, quantile)

    def to_metadata(self) -> dict:
        return {"threshold": self.threshold, "scale": self.scale, "quantile": self.quantile}


@dataclass(frozen=True)
class OpenSet:
    bank: torch.Tensor  # [N, D] normalised features of the training photos (eval crop)
    threshold: float  # served score at or above which a photo is "unknown" (0 with the energy rule)
    k: int
    quantile: float
    held_out_scores: np.ndarray  # the known photos' out-of-fold k-NN distances the distance threshold came from
    knn: Rule | None = None  # with ``energy``: the distance's rule
    energy: Rule | None = None  # the energy rule; None = the score is the k-NN distance alone
    temperature: float = 1.0  # the served temperature the energy is computed at

    def to_metadata(self) -> dict:
        """The ``open_set`` block of metadata.json (docs/MODEL_FORMAT.md)."""
        block = {"method": "knn_cosine", "k": self.k, "threshold": self.threshold, "quantile": self.quantile,
                 "bank_size": int(self.bank.shape[0]), "n_held_out": int(len(self.held_out_scores)),
                 "output": "unknown_score"}
        if self.energy is not None:
            block |= {"method": "knn_cosine_or_energy", "knn": self.knn.to_metadata(),
                      "energy": self.energy.to_metadata() | {"temperature": self.temperature}}
        return block

    def scorer(self, chunks: tuple[int, ...]) -> nn.Module:
        """The graph module computing ``unknown_score`` from the pooled features and the logits."""
        knn = KnnScore(self.bank, chunks, self.k)
        return knn if self.energy is None else KnnOrEnergyScore(knn, self.knn, self.energy, self.temperature)


def fit_open_set(feats: torch.Tensor, labels: np.ndarray, chunks: tuple[int, ...], *, k: int = K_NEAREST,
                 quantile: float = QUANTILE, folds: int = 5, seed: int = 0, held_out_logits: np.ndarray | None = None,
                 temperature: float = 1.0, energy_quantile: float = ENERGY_QUANTILE) -> OpenSet:
    """The bank (every photo's eval-crop features) and a threshold set on photos held out of it.

    Each fold's photos are scored against a bank of the other folds, so the
    threshold comes from photos the bank has not seen, as served photos are.
    With ``held_out_logits`` (logits of known photos from heads not trained on
    them: phase 1's out-of-fold ones, or the val split's) and ``energy_quantile``
    > 0, the energy rule joins the distance's (module docstring).
    """
    bank = normalise(feats.float(), chunks)
    folds = max(2, min(folds, len(labels)))
    fold_of = stratified_folds(labels, folds, seed)
    scores = np.empty(len(labels), np.float32)
    for f in range(folds):
        held = fold_of == f
        if held.all() or not held.any():
            continue
        scores[held] = knn_score(bank[~held], bank[held], k).numpy()
    threshold = float(np.quantile(scores, quantile))
    if held_out_logits is None or not len(held_out_logits) or energy_quantile <= 0:
        return OpenSet(bank=bank, threshold=threshold, k=k, quantile=quantile, held_out_scores=scores)
    knn = Rule.of(scores, quantile)
    rule = Rule.of(energy(held_out_logits, temperature).numpy(), energy_quantile)
    return OpenSet(bank=bank, threshold=0.0, k=k, quantile=quantile, held_out_scores=scores, knn=knn, energy=rule,
                   temperature=temperature)


class KnnScore(nn.Module):
    """The exported graph's second output: ``unknown_score`` from the pooled features, bank built in."""

    def __init__(self, bank: torch.Tensor, chunks: tuple[int, ...], k: int):
        super().__init__()
        self.register_buffer("bank_t", bank.T.contiguous().clone())
        self.chunks, self.k = tuple(chunks), min(k, bank.shape[0])

    def forward(self, feats: torch.Tensor, logits: torch.Tensor | None = None) -> torch.Tensor:
        sims = normalise(feats, self.chunks) @ self.bank_t
        return 1 - sims.topk(self.k, dim=1).values[:, -1]


class KnnOrEnergyScore(nn.Module):
    """``unknown_score`` = max over the two rules of (score - threshold) / spread: >= 0 when either flags."""

    def __init__(self, knn: KnnScore, knn_rule: Rule, energy_rule: Rule, temperature: float):
        super().__init__()
        self.knn, self.temperature = knn, float(temperature)
        self.rules = ((knn_rule.threshold, knn_rule.scale), (energy_rule.threshold, energy_rule.scale))

    def forward(self, feats: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        (tk, sk), (te, se) = self.rules
        distance = (self.knn(feats) - tk) / sk
        unfamiliar = (-torch.logsumexp(logits / self.temperature, dim=1) - te) / se
        return torch.maximum(distance, unfamiliar)
