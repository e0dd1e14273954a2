"""Phase 2: fine-tuning with gradual unfreezing and layer-wise learning rates, gated against val noise.

Pretrained, it unfreezes layer groups from the top down,
``unfreeze_per_epoch`` per epoch, with learning rates ``lr / lr_decay**depth``
(depth 0 = classifier) and BatchNorm statistics frozen; it starts from the
model as given (phase 1's head fitted on the train split) and keeps its best
epoch only if that beats the start on calibrated val loss by
``phase2_min_z`` standard errors. From scratch it trains every layer at one
learning rate with BatchNorm in training mode, and keeps its best epoch.
"""
from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from training.config import TrainConfig
from training.features import Encoder, Images, batches
from training.head import sample_weights
from training.metrics import fit_temperature, nll_per_sample
from training.model import layer_groups

log = logging.getLogger("training")


@dataclass
class FineTune:
    history: list[dict]  # phase 2's entries in history.json: the start, each epoch, the gate's verdict
    kept: bool  # an epoch replaced the start; otherwise the model is back to the start


def set_trainable(model: nn.Module, top_groups: int, *, train_bn: bool) -> None:
    """Train only the ``top_groups`` highest layer groups; BatchNorm layers stay in eval mode unless ``train_bn``."""
    groups = layer_groups(model)
    for i, (_, modules) in enumerate(groups):
        trainable = i >= len(groups) - top_groups
        for module in modules:
            module.requires_grad_(trainable)
    model.train()
    if not train_bn:
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()


def param_groups(model: nn.Module, lr: float, lr_decay: float, weight_decay: float) -> list[dict]:
    """One optimizer group per layer group; the classifier gets ``lr``, each group below it ``/ lr_decay`` more."""
    groups = layer_groups(model)
    return [
        {"name": name, "params": [p for m in modules for p in m.parameters()],
         "lr": lr / lr_decay ** (len(groups) - 1 - i), "weight_decay": weight_decay}
        for i, (name, modules) in enumerate(groups)
    ]


def paired_gain_z(before: np.ndarray, after: np.ndarray) -> float:
    """How many standard errors the mean per-photo loss fell from ``before`` to ``after`` (same photos).

    On a few hundred validation photos the calibrated NLL moves from one
    phase 2 epoch to the next by more than the gains it is asked to judge
    (docs/TRAINING.md), so "lower" alone lets noise replace a model fitted on
    every photo by one fitted on the train split.
    """
    gain = before - after
    if len(gain) < 2:
        return 0.0
    se = gain.std(ddof=1) / math.sqrt(len(gain))
    return float(gain.mean() / se) if se > 0 else (math.inf if gain.mean() > 0 else 0.0)


def val_losses(logits: torch.Tensor, labels: np.ndarray) -> np.ndarray:
    """Per-photo validation NLL at the best temperature, so models trained with and without label
    smoothing (phase 2 and phase 1) are compared fairly: both get calibrated before serving."""
    z = logits.float().cpu().numpy()
    return nll_per_sample(z, labels, fit_temperature(z, labels))


def fine_tune(model: nn.Module, train: Images, val: Images, *, config: TrainConfig, encoder: Encoder,
              rng: np.random.Generator, pretrained: bool) -> FineTune:
    """Fine-tune ``model`` (gradual unfreezing and layer-wise LRs, or every layer at one LR from scratch).

    Keeps the epoch with the lowest calibrated val loss, but, pretrained, only if it beats the start by at
    least ``phase2_min_z`` standard errors of the per-photo difference (:func:`paired_gain_z`); otherwise
    the start. Without a val split (from scratch only) the last epoch counts as the best.
    """
    cfg = config
    n_groups = len(layer_groups(model))
    decay = cfg.lr_decay if pretrained else 1.0
    optimizer = torch.optim.AdamW(param_groups(model, cfg.lr, decay, cfg.weight_decay))
    steps_per_epoch = math.ceil(cfg.epoch_images / cfg.batch_size)
    total = max(1, steps_per_epoch * cfg.epochs)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    model.eval()
    start = val_losses(encoder.logits(model, val), val.labels) if (pretrained and len(val.labels)) else None
    start_loss = float(start.mean()) if start is not None else math.inf
    history = [{"phase": 2, "epoch": 0, "unfrozen_groups": 0, "val_loss": start_loss}] if start is not None else []
    best, stale, improved = (start_loss, copy.deepcopy(model.state_dict()), start), 0, False
    start_state = best[1]
    if history:
        log.info("phase 2 start: val loss %.4f", start_loss)
    for epoch in range(cfg.epochs):
        top = min(n_groups, 1 + cfg.unfreeze_per_epoch * (epoch + 1)) if pretrained else n_groups
        set_trainable(model, top, train_bn=not pretrained)
        draw = sample_weights(train.labels, train.local, cfg.local_share).astype(np.float64)
        order = rng.choice(len(train.labels), size=cfg.epoch_images, replace=True, p=draw / draw.sum())
        bar = tqdm(list(batches(len(order), cfg.batch_size)), desc=f"phase 2 epoch {epoch + 1}", leave=False)
        for sl in bar:
            idx = order[sl]
            x = torch.from_numpy(np.stack([encoder.augment(img, encoder.spec, rng) for img in train.small(idx)]))
            y = torch.from_numpy(train.labels[idx])
            with encoder.autocast():
                loss = F.cross_entropy(model(x.to(encoder.device)).float(), y.to(encoder.device),
                                       label_smoothing=cfg.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            bar.set_postfix(loss=f"{loss.item():.3f}")
        model.eval()
        losses = val_losses(encoder.logits(model, val), val.labels) if len(val.labels) else None
        val_loss = float(losses.mean()) if losses is not None else -epoch
        history.append({"phase": 2, "epoch": epoch + 1, "unfrozen_groups": top, "train_loss": loss.item(), "val_loss": val_loss})
        log.info("phase 2 epoch %d: %d groups trainable, val loss %.4f", epoch + 1, top, val_loss)
        if val_loss < best[0]:
            best, stale, improved = (val_loss, copy.deepcopy(model.state_dict()), losses), 0, True
        else:
            stale += 1
            if stale >= cfg.patience:
                break
    if improved and start is not None:
        z = paired_gain_z(start, best[2])
        improved = z >= cfg.phase2_min_z
        history.append({"phase": 2, "best_val_loss": best[0], "gain_z": z, "kept": improved})
        log.info("phase 2 best epoch: val loss %.4f -> %.4f, %.1f standard errors (keep at >= %.1f): %s",
                 start_loss, best[0], z, cfg.phase2_min_z, "kept" if improved else "noise, rejected")
    model.load_state_dict(best[1] if improved else start_state)
    model.eval()
    return FineTune(history, improved)
