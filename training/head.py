"""Phase 1: the new head on a frozen backbone's features, solved as a weighted logistic regression.

With the backbone frozen, the head is a multinomial logistic regression on
fixed features: a convex problem, solved to convergence with full-batch
L-BFGS (class-balanced, L2-regularised), where minibatch epochs on a few
dozen rows barely move it. Stratified k-fold cross-validation over train and
val together (an image's views stay in one fold; the eval crop is scored)
picks the L2 strength by calibrated NLL and fits the temperature on the
out-of-fold logits; then the head is refitted on all of them, so no label is
spent on validation.
"""
from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from training import data
from training.config import TrainConfig
from training.metrics import classification_report, ece, fit_temperature, nll_per_sample, softmax
from training.model import NormalizedLinear

log = logging.getLogger("training")
HEAD_L2_CHOICES = (1e-4, 1e-3, 1e-2)  # head L2 strengths phase 1 cross-validates


@dataclass
class Calibration:
    """The temperature served with a model, and how it scored on the held-out predictions it was fitted on."""

    temperature: float = 1.0
    metrics: dict = field(default_factory=dict)  # classification report at that temperature, ece_before/after, method

    @classmethod
    def measure(cls, logits: np.ndarray, labels: np.ndarray, temperature: float, classes: list[str], method: str):
        metrics = classification_report(labels, softmax(logits, temperature), classes)
        metrics |= {"ece_before": ece(softmax(logits), labels), "ece_after": metrics["ece"], "method": method}
        return cls(temperature, metrics)


@dataclass
class HeadFit:
    """What phase 1 leaves besides the head it fitted on every image."""

    history: dict  # phase 1's entry in history.json
    calibration: Calibration  # cross-validated (T = 1 when a class has a single image)
    train_only: dict | None  # the head's state fitted on the train split alone (None without a val split)
    eval_features: torch.Tensor  # [N, D] eval-crop features of train + val: the open set's bank
    oof_logits: np.ndarray | None = None  # cross-validation's out-of-fold logits (same rows): the energy rule's


def sample_weights(labels: np.ndarray, local: np.ndarray, local_share: float) -> np.ndarray:
    """Per-image training weight, mean 1: every class weighs the same in total (class balance), and in a
    class with both local and bootstrap photos the local ones together carry ``local_share`` of it.

    With ``local_share`` 0 every photo of a class weighs the same, whatever its source: a council's first
    20 verified photos of a class next to 600 public ones then carry 3 % of their class's weight.
    benchmarks/local_bench.py measures the trade (docs/BENCHMARKS.md): weighting local photos up calls
    fewer clean containers fly-tipping and finds somewhat less fly-tipping.
    """
    labels, local = np.asarray(labels), np.asarray(local, dtype=bool)
    weights = np.zeros(len(labels), np.float64)
    classes = np.unique(labels)
    for c in classes:
        members = labels == c
        mine, theirs = members & local, members & ~local
        if local_share > 0 and mine.any() and theirs.any():
            weights[mine] = local_share / mine.sum()
            weights[theirs] = (1 - local_share) / theirs.sum()
        else:
            weights[members] = 1 / members.sum()
    return (weights * len(labels) / len(classes)).astype(np.float32)


def fit_head(head: nn.Linear, feats: torch.Tensor, labels: torch.Tensor, rows: torch.Tensor, *, l2: float,
             max_iter: int, weights: torch.Tensor | None = None) -> None:
    """L2-regularised multinomial logistic regression on the images ``rows`` of ``feats`` (``[views,
    images, D]``: every view of an image is a training row), solved with full-batch L-BFGS. Rows are
    weighted by ``weights`` (per image, :func:`sample_weights`), by default class-balanced."""
    x, y = feats[:, rows].flatten(0, 1), labels[rows].repeat(len(feats))
    if isinstance(head, NormalizedLinear):  # the features are fixed: normalise them once, not at every step
        x = head.normalize(x)
    if weights is None:
        counts = torch.bincount(y, minlength=head.out_features).float().clamp_min(1)
        w = (counts.sum() / (head.out_features * counts))[y]
    else:
        w = weights[rows].repeat(len(feats))
    w = w / w.sum()
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    head.requires_grad_(True)
    optimizer = torch.optim.LBFGS(head.parameters(), lr=1, max_iter=max_iter, tolerance_grad=1e-6,
                                  line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad(set_to_none=True)
        logits = F.linear(x, head.weight, head.bias)
        loss = (F.cross_entropy(logits, y, reduction="none") * w).sum() + l2 * head.weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    head.requires_grad_(False)


def cross_validate_head(head: nn.Linear, feats: torch.Tensor, labels: torch.Tensor, *, folds: int, seed: int,
                        max_iter: int, weights: torch.Tensor | None = None) -> tuple[float, float, float, np.ndarray]:
    """Stratified ``folds``-fold cross-validation of :func:`fit_head` over ``HEAD_L2_CHOICES``: an image's
    views stay in one fold and its eval crop (view 0) is scored. Returns the best L2's out-of-fold NLL at
    its fitted temperature, the L2, the temperature and the out-of-fold logits.

    The L2 is chosen by the NLL under the same ``weights`` the head is fitted with (class balance, and
    the council's own photos' share): a mean over photos let the big classes choose it, so a new class's
    first 15 photos or a council's first local labels barely counted (docs/BENCHMARKS.md, "A new
    category from its first 15 verified photos"). The temperature is still fitted on every photo alike."""
    y = labels.cpu().numpy()
    fold_of = torch.from_numpy(data.stratified_folds(y, folds, seed)).to(labels.device)
    w = None if weights is None else weights.cpu().numpy().astype(np.float64)
    trials = []
    for l2 in HEAD_L2_CHOICES:
        oof = np.zeros((len(y), head.out_features), np.float32)
        for fold in range(folds):
            held = fold_of == fold
            fit_head(head, feats, labels, ~held, l2=l2, max_iter=max_iter, weights=weights)
            with torch.no_grad():
                oof[held.cpu().numpy()] = head(feats[0, held]).cpu().numpy()
        temperature = fit_temperature(oof, y)
        per_photo = nll_per_sample(oof, y, temperature)
        loss = float(per_photo.mean() if w is None else (w * per_photo).sum() / w.sum())
        trials.append((loss, l2, temperature, oof))
    return min(trials, key=lambda t: t[0])


def fit_phase1(head: nn.Linear, feats: torch.Tensor, labels: np.ndarray, local: np.ndarray, *, n_train: int,
               config: TrainConfig, classes: list[str]) -> HeadFit:
    """Cross-validate and fit ``head`` on ``feats`` (``[views, images, D]``, the first ``n_train`` images
    the train split, the rest val), leaving it fitted on every image.

    With a val split it is also fitted on the train split alone first: phase 2's start, and the bar
    phase 2 must clear on val.
    """
    device = feats.device
    y = torch.from_numpy(labels).to(device)
    weights = torch.from_numpy(sample_weights(labels, local, config.local_share)).to(device)
    k = min(config.cv_folds, int(np.bincount(labels).min()))
    if k >= 2:
        cv_nll, l2, temperature, oof = cross_validate_head(head, feats, y, folds=k, seed=config.seed,
                                                           max_iter=config.head_max_iter, weights=weights)
        calibration = Calibration.measure(oof, labels, temperature, classes, f"{k}-fold cross-validation")
    else:  # a class with one image: nothing to cross-validate on
        cv_nll, l2, calibration, oof = float("nan"), config.head_l2, Calibration(), None
    train_only = None
    if n_train < len(labels):
        fit_head(head, feats, y, torch.arange(n_train, device=device), l2=l2, max_iter=config.head_max_iter,
                 weights=weights)
        train_only = copy.deepcopy(head.state_dict())
    fit_head(head, feats, y, torch.arange(len(labels), device=device), l2=l2, max_iter=config.head_max_iter,
             weights=weights)
    log.info("phase 1: head fitted on %d images x %d views, L2 %g (%d-fold CV weighted NLL %.4f), temperature %.3f",
             len(labels), len(feats), l2, k, cv_nll, calibration.temperature)
    history = {"phase": 1, "images": len(labels), "views": len(feats), "cv_folds": k, "head_l2": l2,
               "cv_nll": cv_nll, "temperature": calibration.temperature}
    return HeadFit(history, calibration, train_only, feats[0], oof)
