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
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from training.data import stratified_folds

K_NEAREST = 1  # the nearest photo's distance: as good as the 10th by AUROC and cheaper in auto-triage (BENCHMARKS)
QUANTILE = 0.95  # of held-out known photos' scores: the threshold; ~5 % of ordinary photos go to review


def normalise(feats: torch.Tensor, chunks: tuple[int, ...]) -> torch.Tensor:
    """Each feature level to unit length, the levels together to unit length (the head's own view)."""
    parts = [nn.functional.normalize(p, dim=-1) for p in feats.split(chunks, dim=-1)]
    return torch.cat(parts, dim=-1) / len(parts) ** 0.5


def knn_score(bank: torch.Tensor, queries: torch.Tensor, k: int = K_NEAREST) -> torch.Tensor:
    """Cosine distance from each (normalised) query to its k-th nearest (normalised) bank row."""
    sims = queries @ bank.T
    k = min(k, bank.shape[0])
    return 1 - sims.topk(k, dim=1).values[:, -1]


@dataclass(frozen=True)
class OpenSet:
    bank: torch.Tensor  # [N, D] normalised features of the training photos (eval crop)
    threshold: float  # score at or above which a photo is "unknown"
    k: int
    quantile: float
    held_out_scores: np.ndarray  # the known photos' out-of-fold scores the threshold came from

    def to_metadata(self) -> dict:
        """The ``open_set`` block of metadata.json (docs/MODEL_FORMAT.md)."""
        return {"method": "knn_cosine", "k": self.k, "threshold": self.threshold, "quantile": self.quantile,
                "bank_size": int(self.bank.shape[0]), "n_held_out": int(len(self.held_out_scores)),
                "output": "unknown_score"}


def fit_open_set(feats: torch.Tensor, labels: np.ndarray, chunks: tuple[int, ...], *, k: int = K_NEAREST,
                 quantile: float = QUANTILE, folds: int = 5, seed: int = 0) -> OpenSet:
    """The bank (every photo's eval-crop features) and a threshold set on photos held out of it.

    Each fold's photos are scored against a bank of the other folds, so the
    threshold comes from photos the bank has not seen, as served photos are.
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
    return OpenSet(bank=bank, threshold=threshold, k=k, quantile=quantile, held_out_scores=scores)


class KnnScore(nn.Module):
    """The exported graph's second output: ``unknown_score`` from the pooled features, bank built in."""

    def __init__(self, bank: torch.Tensor, chunks: tuple[int, ...], k: int):
        super().__init__()
        self.register_buffer("bank_t", bank.T.contiguous().clone())
        self.chunks, self.k = tuple(chunks), min(k, bank.shape[0])

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        sims = normalise(feats, self.chunks) @ self.bank_t
        return 1 - sims.topk(self.k, dim=1).values[:, -1]
