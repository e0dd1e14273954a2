"""The training recipe: cached-feature head training, gradual unfreezing, temperature scaling.

Phase 1 fits the new head on a frozen backbone. The backbone runs in eval
mode (BatchNorm statistics frozen) exactly once per cached view, and the
head is solved as a logistic regression with L-BFGS on those features; its
L2 strength and temperature come from k-fold cross-validation, and it is
then refitted on every labelled image. Phase 2 (only with a val split)
unfreezes layer groups from the top down, ``unfreeze_per_epoch`` per epoch,
with layer-wise learning rates ``lr / lr_decay**depth`` (depth 0 =
classifier); BatchNorm statistics stay frozen. It starts from a head fitted
on the train split alone and is kept only if an epoch beats that start on
calibrated val loss; its temperature is then fitted on the val split.
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import json
import logging
import math
import os
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from tqdm import tqdm

from classifier.preprocess import PreprocessSpec, to_array
from training import data
from training.config import TrainConfig
from training.export import export_model, update_metrics
from training.metrics import classification_report, ece, fit_temperature, nll, nll_per_sample, softmax
from training.model import ARCHITECTURE, NormalizedLinear, create_model, layer_groups, weights_sha256
from training.openset import OpenSet, fit_open_set

log = logging.getLogger("training")
HEAD_L2_CHOICES = (1e-4, 1e-3, 1e-2)  # head L2 strengths phase 1 cross-validates


@dataclass
class Split:
    train: list[data.Sample]
    val: list[data.Sample]
    holdout: list[data.Sample]


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
class Trained:
    model: nn.Module
    calibration: Calibration
    history: list[dict] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # wall-clock per phase
    open_set: OpenSet | None = None  # the "unknown" score's bank and threshold (training.openset)


def spec_for(config: TrainConfig) -> PreprocessSpec:
    return PreprocessSpec(input_size=config.image_size, resize_size=config.resize_size, interpolation=config.interpolation)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    choices = ("auto", "cpu", "cuda")
    if name not in choices:
        raise ValueError(f"unknown device {name!r}; choose {', '.join(choices)}")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def split_samples(samples: Sequence[data.Sample], config: TrainConfig) -> Split:
    """Holdout first (manifest ``holdout`` rows + ``holdout_per_class`` seeded by ``split_seed``), then the rest.

    Only what is left after the holdout is sampled (``per_class``) and split
    into train/val (manifest ``val`` rows, else ``val_fraction`` of each class).
    """
    holdout = [s for s in samples if s.split == "holdout"]
    pool = [s for s in samples if s.split != "holdout"]
    if config.holdout_per_class:
        extra, pool = data.stratified_take(pool, per_class=config.holdout_per_class, seed=config.split_seed)
        holdout += extra
    if config.per_class is not None:
        pool, _ = data.stratified_take(pool, per_class=config.per_class, seed=config.seed)
    val = [s for s in pool if s.split == "val"]
    train = [s for s in pool if s.split != "val"]
    smallest = min(Counter(s.label for s in train).values(), default=0)
    if not val and config.val_fraction > 0 and smallest >= config.min_val_per_class:
        val, train = data.stratified_take(train, fraction=config.val_fraction, seed=config.seed)
    as_split = lambda items, name: [dataclasses.replace(s, split=name) for s in items]  # noqa: E731
    return Split(as_split(train, "train"), as_split(val, "val"), as_split(holdout, "holdout"))


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
    its fitted temperature, the L2, the temperature and the out-of-fold logits."""
    y = labels.cpu().numpy()
    fold_of = torch.from_numpy(data.stratified_folds(y, folds, seed)).to(labels.device)
    trials = []
    for l2 in HEAD_L2_CHOICES:
        oof = np.zeros((len(y), head.out_features), np.float32)
        for fold in range(folds):
            held = fold_of == fold
            fit_head(head, feats, labels, ~held, l2=l2, max_iter=max_iter, weights=weights)
            with torch.no_grad():
                oof[held.cpu().numpy()] = head(feats[0, held]).cpu().numpy()
        temperature = fit_temperature(oof, y)
        trials.append((nll(oof, y, temperature), l2, temperature, oof))
    return min(trials, key=lambda t: t[0])


def paired_gain_z(before: np.ndarray, after: np.ndarray) -> float:
    """How many standard errors the mean per-photo loss fell from ``before`` to ``after`` (same photos).

    On a few hundred validation photos the calibrated NLL moves by 0.01-0.03
    from one phase 2 epoch to the next (docs/TRAINING.md), so "lower" alone
    lets noise replace a model fitted on every photo by one fitted on 80 %.
    """
    gain = before - after
    if len(gain) < 2:
        return 0.0
    se = gain.std(ddof=1) / math.sqrt(len(gain))
    return float(gain.mean() / se) if se > 0 else (math.inf if gain.mean() > 0 else 0.0)


def _batches(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


class Images:
    """Training/validation images: labels, sources and SHA-256 at once; the decoded pixels (kept 8-bit: the
    serving transform's centre crops, made into network input a batch at a time, and small copies for
    augmentation) only when first needed, so a run whose features are all cached decodes nothing."""

    def __init__(self, samples: Sequence[data.Sample], spec: PreprocessSpec, classes: list[str], desc: str):
        self.samples, self.spec, self.desc = list(samples), spec, desc
        self.labels = np.array([classes.index(s.label) for s in samples], dtype=np.int64)
        self.local = np.array([s.source == "local" for s in samples], dtype=bool)
        self._decoded: dict[int, tuple[Image.Image, Image.Image]] = {}

    def __len__(self) -> int:
        return len(self.samples)

    @functools.cached_property
    def sha256(self) -> list[str]:
        return [hashlib.sha256(Path(s.path).read_bytes()).hexdigest() for s in self.samples]

    def decoded(self, idx: Sequence[int] | slice) -> list[tuple[Image.Image, Image.Image]]:
        """(centre crop, small copy) of the images ``idx``, each photo decoded once, when first asked for:
        a retrain whose features are cached but for a few new photos decodes only those."""
        idx = range(len(self.samples))[idx] if isinstance(idx, slice) else idx
        missing = [i for i in dict.fromkeys(idx) if i not in self._decoded]
        if missing:
            with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
                loaded = pool.map(lambda i: data.load_for_training(self.samples[i].path, self.spec), missing)
                for i, pair in zip(missing, tqdm(loaded, total=len(missing), desc=f"decode {self.desc}", leave=False)):
                    self._decoded[i] = pair
        return [self._decoded[i] for i in idx]

    def small(self, idx: Sequence[int]) -> list[Image.Image]:
        """The copies shrunk to ``resize_size`` that augmentation starts from."""
        return [img for _, img in self.decoded(idx)]

    def eval_arrays(self, idx: Sequence[int] | slice) -> np.ndarray:
        """Network input for the images ``idx``: exactly what serving feeds the model."""
        return np.stack([to_array(crop, self.spec) for crop, _ in self.decoded(idx)])


class FeatureCache:
    """Pooled backbone features per photo and view, one ``.npy`` each under ``root``, reused across runs.

    The key is the photo's SHA-256, the view, and ``model_key`` (architecture, feature levels, the
    ImageNet weights' SHA-256, preprocessing, augmentation and, for augmented views, the seed), so a
    nightly retrain encodes only photos it has not seen, and a new backbone or new weights miss.
    """

    def __init__(self, root: Path, model_key: str):
        self.root, self.model_key = Path(root), model_key

    def _path(self, sha256: str, view: str) -> Path:
        key = hashlib.sha256(f"{self.model_key}|{view}|{sha256}".encode()).hexdigest()
        return self.root / key[:2] / f"{key}.npy"

    def get(self, sha256: str, view: str) -> np.ndarray | None:
        try:
            return np.load(self._path(sha256, view))
        except (FileNotFoundError, ValueError, OSError):  # missing, or half-written by a killed run
            return None

    def put(self, sha256: str, view: str, features: np.ndarray) -> None:
        path = self._path(sha256, view)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        with tmp.open("wb") as f:
            np.save(f, features)
        tmp.replace(path)  # atomic: a reader sees the whole file or none


class Recipe:
    """Runs the two phases on decoded images; see the module docstring."""

    def __init__(self, config: TrainConfig, classes: list[str], device: torch.device):
        self.config, self.classes, self.device = config, classes, device
        self.spec = spec_for(config)
        self.augment = data.Augment()
        self.rng = np.random.default_rng(config.seed)
        self.amp = device.type == "cuda"
        self.cache = None
        if config.feature_cache and config.pretrained:  # random weights give features worth nothing next run
            model_key = json.dumps({"architecture": ARCHITECTURE, "stage_features": config.stage_features,
                                    "weights": weights_sha256(), "preprocess": self.spec.to_dict(),
                                    "augment": repr(self.augment), "dtype": "bf16" if self.amp else "fp32"})
            self.cache = FeatureCache(Path(config.feature_cache), model_key)

    def _autocast(self):
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.amp)

    @torch.no_grad()
    def forward_batches(self, fn, n: int, batch: Callable[[slice], np.ndarray], desc: str) -> torch.Tensor:
        """``fn`` over ``batch(sl)`` for consecutive slices of ``range(n)``, concatenated on the CPU.

        Batches are made as they are needed, not held whole: for phase 1's
        feature views that took peak RSS for 1,347 photos from 6.0 to 4.5 GB.
        """
        out = []
        for sl in tqdm(list(_batches(n, self.config.batch_size * 2)), desc=desc, leave=False):
            with self._autocast():
                out.append(fn(torch.from_numpy(batch(sl)).to(self.device)).float().cpu())
        return torch.cat(out) if out else torch.zeros(0)

    def logits(self, model: nn.Module, images: Images) -> torch.Tensor:
        """The model's logits for the eval crops of ``images``."""
        return self.forward_batches(model, len(images.labels), images.eval_arrays, "logits")

    def view_arrays(self, images: Images, v: int, idx: Sequence[int]) -> np.ndarray:
        """Network input of view ``v`` for the images ``idx``: the eval crop, its mirror image (the
        augmentation that never loses the subject), then random augmentations, seeded per photo and
        view so that a cached view equals a recomputed one."""
        if v == 0:
            return images.eval_arrays(idx)
        if v == 1:
            return np.ascontiguousarray(images.eval_arrays(idx)[..., ::-1])
        return np.stack([self.augment(img, self.spec,
                                      np.random.default_rng([self.config.seed, v, int(images.sha256[i][:15], 16)]))
                         for i, img in zip(idx, images.small(idx))])

    def feature_views(self, model: nn.Module, images: Images, n_views: int) -> torch.Tensor:
        """``[n_views, N, D]`` features of :meth:`view_arrays`, from the feature cache where it has them."""
        views = []
        for v in range(n_views):
            name = f"view{v}" if v < 2 else f"view{v}-seed{self.config.seed}"
            cached = [self.cache.get(h, name) for h in images.sha256] if self.cache else [None] * len(images)
            todo = [i for i, f in enumerate(cached) if f is None]
            if todo:
                fresh = self.forward_batches(model.features, len(todo),
                                             lambda sl: self.view_arrays(images, v, todo[sl]),
                                             f"features {v + 1}/{n_views}").numpy()
                for i, f in zip(todo, fresh):
                    cached[i] = f
                    if self.cache:
                        self.cache.put(images.sha256[i], name, f)
            if self.cache:
                log.info("features view %d: %d of %d photos from the cache", v, len(images) - len(todo), len(images))
            views.append(torch.from_numpy(np.stack(cached)) if len(images) else torch.zeros(0))
        return torch.stack(views).to(self.device)

    def phase1(self, model: nn.Module, train: Images, val: Images) -> tuple[list[dict], Calibration, dict | None]:
        """Fit the new head on cached features of a frozen, eval-mode backbone, on every labelled image.

        With the backbone frozen, the head is a multinomial logistic
        regression on fixed features: a convex problem, solved to convergence
        with full-batch L-BFGS (class-balanced, L2-regularised) in seconds,
        where minibatch epochs on a few dozen rows barely move it. Stratified
        k-fold cross-validation over train and val together (an image's views
        stay in one fold; the eval crop is scored) picks the L2 strength by
        calibrated NLL and fits the temperature on the out-of-fold logits;
        then the head is refitted on all of them, so no label is spent on
        validation. The linear probe caches the eval crop only.

        Leaves the head fitted on train + val, and returns the history, its
        calibration and, when there is a val split, the head's state fitted
        on train alone: phase 2's start and the bar phase 2 must clear on val.
        """
        cfg = self.config
        model.eval()
        model.requires_grad_(False)
        n_views = 1 if cfg.linear_probe else cfg.cache_views
        parts = [p for p in (train, val) if len(p.labels)]
        feats = torch.cat([self.feature_views(model, p, n_views) for p in parts], dim=1)  # [views, images, D]
        y = np.concatenate([p.labels for p in parts])
        labels = torch.from_numpy(y).to(self.device)
        weights = torch.from_numpy(sample_weights(y, np.concatenate([p.local for p in parts]), cfg.local_share))
        weights = weights.to(self.device)
        head = model.get_classifier()
        k = min(cfg.cv_folds, int(np.bincount(y).min()))
        if k >= 2:
            cv_nll, l2, temperature, oof = cross_validate_head(head, feats, labels, folds=k, seed=cfg.seed,
                                                               max_iter=cfg.head_max_iter, weights=weights)
            calibration = Calibration.measure(oof, y, temperature, self.classes, f"{k}-fold cross-validation")
        else:  # a class with one image: nothing to cross-validate on
            cv_nll, l2, calibration = float("nan"), cfg.head_l2, Calibration()
        train_head = None
        if len(val.labels):
            fit_head(head, feats, labels, torch.arange(len(train.labels), device=self.device), l2=l2,
                     max_iter=cfg.head_max_iter, weights=weights)
            train_head = copy.deepcopy(head.state_dict())
        fit_head(head, feats, labels, torch.arange(len(y), device=self.device), l2=l2, max_iter=cfg.head_max_iter,
                 weights=weights)
        log.info("phase 1: head fitted on %d images x %d views, L2 %g (%d-fold CV NLL %.4f), temperature %.3f",
                 len(y), len(feats), l2, k, cv_nll, calibration.temperature)
        history = [{"phase": 1, "images": len(y), "views": len(feats), "cv_folds": k, "head_l2": l2, "cv_nll": cv_nll,
                    "temperature": calibration.temperature}]
        self.eval_features = feats[0]  # the open set's bank, unless phase 2 changes the backbone
        return history, calibration, train_head

    def phase2(self, model: nn.Module, train: Images, val: Images, *, pretrained: bool) -> tuple[list[dict], bool]:
        """Fine-tune with gradual unfreezing and layer-wise LRs (all layers, uniform LR, BN training from scratch).

        Keeps the epoch with the lowest calibrated val loss, but only if it beats the start by at least
        ``phase2_min_z`` standard errors of the per-photo difference (:func:`paired_gain_z`); otherwise the
        start. Returns the history and whether an epoch was kept.
        """
        cfg = self.config
        n_groups = len(layer_groups(model))
        decay = cfg.lr_decay if pretrained else 1.0
        optimizer = torch.optim.AdamW(param_groups(model, cfg.lr, decay, cfg.weight_decay))
        steps_per_epoch = math.ceil(cfg.epoch_images / cfg.batch_size)
        total = max(1, steps_per_epoch * cfg.epochs)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
        model.eval()
        start = self._val_losses(self.logits(model, val), val.labels) if (pretrained and len(val.labels)) else None
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
            order = self.rng.choice(len(train.labels), size=cfg.epoch_images, replace=True, p=draw / draw.sum())
            bar = tqdm(list(_batches(len(order), cfg.batch_size)), desc=f"phase 2 epoch {epoch + 1}", leave=False)
            for sl in bar:
                idx = order[sl]
                x = torch.from_numpy(np.stack([self.augment(img, self.spec, self.rng) for img in train.small(idx)]))
                y = torch.from_numpy(train.labels[idx])
                with self._autocast():
                    loss = F.cross_entropy(model(x.to(self.device)).float(), y.to(self.device), label_smoothing=cfg.label_smoothing)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                bar.set_postfix(loss=f"{loss.item():.3f}")
            model.eval()
            losses = self._val_losses(self.logits(model, val), val.labels) if len(val.labels) else None
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
        return history, improved

    @staticmethod
    def _val_losses(logits: torch.Tensor, labels: np.ndarray) -> np.ndarray:
        """Per-photo validation NLL at the best temperature, so models trained with and without label
        smoothing (phase 2 and phase 1) are compared fairly: both get calibrated before serving."""
        z = logits.float().cpu().numpy()
        return nll_per_sample(z, labels, fit_temperature(z, labels))

    def fit(self, train_samples: Sequence[data.Sample], val_samples: Sequence[data.Sample]) -> Trained:
        cfg = self.config
        seconds: dict[str, float] = {}
        start = time.perf_counter()
        train = Images(train_samples, self.spec, self.classes, "train")
        val = Images(val_samples, self.spec, self.classes, "val")
        seconds["decode"] = time.perf_counter() - start
        model = create_model(len(self.classes), pretrained=cfg.pretrained, stage_features=cfg.stage_features)
        model = model.to(self.device)
        history, calibration, train_head = [], Calibration(), None
        if cfg.pretrained:
            start = time.perf_counter()
            history, calibration, train_head = self.phase1(model, train, val)
            seconds["phase1"] = time.perf_counter() - start
        if not cfg.linear_probe and (len(val.labels) or not cfg.pretrained):
            head = model.get_classifier()
            phase1_head = copy.deepcopy(head.state_dict())
            if train_head is not None:
                head.load_state_dict(train_head)
            start = time.perf_counter()
            phase2_history, improved = self.phase2(model, train, val, pretrained=cfg.pretrained)
            history += phase2_history
            seconds["phase2"] = time.perf_counter() - start
            start = time.perf_counter()
            if improved and len(val.labels):
                logits = self.logits(model, val).numpy()
                calibration = Calibration.measure(logits, val.labels, fit_temperature(logits, val.labels),
                                                  self.classes, "validation split")
            elif improved:  # from scratch without a val split: nothing to calibrate on
                calibration = Calibration()
            else:  # the backbone is phase 2's start, untouched: back to the head fitted on every image
                head.load_state_dict(phase1_head)
                log.info("phase 2 did not beat phase 1 on val; keeping phase 1's head, fitted on train + val")
            seconds["calibrate"] = time.perf_counter() - start
        elif not cfg.linear_probe:
            log.info("phase 2 skipped: fewer than %d images in a class, nothing to stop fine-tuning early on",
                     cfg.min_val_per_class)
        model.eval()
        open_set = None
        if cfg.open_set and cfg.pretrained:
            start = time.perf_counter()
            kept_phase2 = any(h.get("kept") for h in history)
            parts = [p for p in (train, val) if len(p)]
            feats = (torch.cat([self.forward_batches(model.features, len(p), p.eval_arrays, "open-set bank")
                                for p in parts]) if kept_phase2 else self.eval_features)
            open_set = fit_open_set(feats.cpu(), np.concatenate([p.labels for p in parts]),
                                    model.get_classifier().chunks, k=cfg.open_set_k,
                                    quantile=cfg.open_set_quantile, seed=cfg.seed)
            seconds["open_set"] = time.perf_counter() - start
            log.info("open set: %d-NN cosine distance, threshold %.4f (%.0f %% of held-out known photos below)",
                     open_set.k, open_set.threshold, 100 * open_set.quantile)
        return Trained(model.cpu(), calibration, history, seconds, open_set)


def run(config: TrainConfig) -> Path:
    """Split, train, calibrate, export and (with a holdout) evaluate; returns the model directory.

    The directory gets ``model.onnx`` and ``metadata.json`` (the model) and,
    beside them, ``config.json`` (resolved config), ``split.jsonl`` (which
    image went where), ``history.json`` and, with a holdout, the evaluation.
    """
    from training.evaluate import evaluate_model  # evaluate imports matplotlib: only when needed

    wall = time.perf_counter()
    if config.threads:
        torch.set_num_threads(config.threads)
    seed_everything(config.seed)
    device = resolve_device(config.device)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")

    samples = data.load_samples(Path(config.data))
    if config.local:
        samples += [dataclasses.replace(s, source="local") for s in data.load_samples(Path(config.local))]
    classes = data.class_names(samples)
    if len(classes) < 2:
        raise ValueError(f"need at least two classes, found {classes}")
    split = split_samples(samples, config)
    data.write_manifest(split.train + split.val + split.holdout, out / "split.jsonl")
    log.info("classes %s; train %d, val %d, holdout %d on %s", classes, len(split.train), len(split.val), len(split.holdout), device)

    trained = Recipe(config, classes, device).fit(split.train, split.val)
    start = time.perf_counter()
    calibration = trained.calibration
    metrics = {"val": calibration.metrics, "seconds": trained.seconds}
    if calibration.metrics:
        metrics |= {"ece_before": calibration.metrics["ece_before"], "ece_after": calibration.metrics["ece_after"]}
    export_model(
        trained.model,
        classes=classes,
        out_dir=out,
        preprocess=spec_for(config),
        temperature=calibration.temperature,
        version=config.version,
        metrics=metrics,
        training_data=data.summary(split.train + split.val, config.data),
        parent_version=config.parent_version,
        open_set=trained.open_set,
    )
    trained.seconds["export"] = time.perf_counter() - start
    if split.holdout:
        start = time.perf_counter()
        holdout = evaluate_model(out, split.holdout)
        (out / "evaluation.json").write_text(json.dumps(holdout, indent=2) + "\n")
        metrics |= {k: holdout[k] for k in ("accuracy", "macro_f1", "ece", "ece_uncalibrated", "ece_floor", "n_images")}
        metrics["evaluated_on"] = "holdout"
        trained.seconds["evaluate"] = time.perf_counter() - start
    trained.seconds["total"] = time.perf_counter() - wall
    update_metrics(out, metrics)
    (out / "history.json").write_text(json.dumps(trained.history, indent=2) + "\n")
    log.info("wrote %s in %.0f s (%s)", out, trained.seconds["total"], {k: round(v, 1) for k, v in trained.seconds.items()})
    return out

