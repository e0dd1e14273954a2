"""The training recipe: split, then one of five outcomes, then calibrate, export and evaluate.

Stages live beside it: :mod:`training.features` (decoded images, feature
views, the feature cache), :mod:`training.head` (phase 1: the head on a
frozen backbone, cross-validated) and :mod:`training.finetune` (phase 2:
gradual unfreezing, gated on val). :meth:`Recipe.fit` chooses the
:class:`Outcome`, and ``history.json`` records it.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import enum
import json
import logging
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from training import data
from training.config import TrainConfig
from training.export import export_model, update_metrics
from training.features import Encoder, Images, spec_for
from training.finetune import FineTune, fine_tune
from training.head import Calibration, HeadFit, fit_phase1
from training.metrics import fit_temperature
from training.model import check_backbone, create_model
from training.openset import OpenSet, fit_open_set

log = logging.getLogger("training")


class Outcome(enum.StrEnum):
    """Which model a run ends with, and where its temperature comes from."""

    PROBE = "probe"  # --linear-probe: phase 1's head on the eval crop, cross-validated T
    PHASE1_ONLY = "phase1_only"  # no val split (a class below min_val_per_class), or phase 2 off (--phase2 off,
    # or auto without CUDA): phase 1's head on every image, cross-validated T
    PHASE2_KEPT = "phase2_kept"  # phase 2's best epoch cleared the gate on val: that model, T fitted on val
    PHASE2_REJECTED = "phase2_rejected"  # it did not: backbone untouched, phase 1's head on train + val, CV T
    SCRATCH = "scratch"  # --no-pretrained: phase 2 from random weights, every layer; T on val, or 1 without


@dataclass
class Split:
    train: list[data.Sample]
    val: list[data.Sample]
    holdout: list[data.Sample]


@dataclass
class Trained:
    model: nn.Module
    calibration: Calibration
    outcome: Outcome
    history: list[dict] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # wall-clock per phase
    open_set: OpenSet | None = None  # the "unknown" score's bank and threshold (training.openset)


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


PHASE2_CHOICES = ("auto", "on", "off")  # TrainConfig.phase2; auto = on with CUDA only


def check_config(config: TrainConfig) -> None:
    """Refuse a config no outcome fits, before anything is written."""
    if config.linear_probe and not config.pretrained:
        raise ValueError("--linear-probe fits a head on pretrained features: drop --no-pretrained or --linear-probe")
    check_backbone(config.backbone)
    if config.phase2 not in PHASE2_CHOICES:
        raise ValueError(f"unknown --phase2 {config.phase2!r}; choose {', '.join(PHASE2_CHOICES)}")


@contextlib.contextmanager
def _timed(seconds: dict[str, float], name: str):
    start = time.perf_counter()
    yield
    seconds[name] = time.perf_counter() - start


class Recipe:
    """Trains one model on decoded images; :meth:`fit` reads as the five :class:`Outcome` s."""

    def __init__(self, config: TrainConfig, classes: list[str], device: torch.device):
        check_config(config)
        self.config, self.classes, self.device = config, classes, device
        self.encoder = Encoder(config, device)
        self.spec = self.encoder.spec
        self.rng = np.random.default_rng(config.seed)  # phase 2's draws and augmentations

    def phase2_skipped(self, val: Images) -> str | None:
        """Why phase 2 will not run after phase 1 (None: it will)."""
        if self.config.linear_probe:
            return "linear probe"
        if not len(val.labels):
            return f"fewer than {self.config.min_val_per_class} images in a class, nothing to stop fine-tuning early on"
        if self.config.phase2 == "off" or (self.config.phase2 == "auto" and self.device.type != "cuda"):
            return f"--phase2 {self.config.phase2} on {self.device.type}"
        return None

    def phase1(self, model: nn.Module, train: Images, val: Images) -> HeadFit:
        """Fit the new head on features of a frozen, eval-mode backbone (:mod:`training.head`), on every
        labelled image: ``cache_views`` views each, the eval crop only for the linear probe. The head on the
        train split alone (phase 2's start) is fitted only when phase 2 will run."""
        model.eval()
        model.requires_grad_(False)
        n_views = 1 if self.config.linear_probe else self.config.cache_views
        parts = [p for p in (train, val) if len(p.labels)]
        feats = torch.cat([self.encoder.feature_views(model, p, n_views) for p in parts], dim=1)  # [views, images, D]
        labels = np.concatenate([p.labels for p in parts])
        n_train = len(labels) if self.phase2_skipped(val) else len(train.labels)
        return fit_phase1(model.get_classifier(), feats, labels, np.concatenate([p.local for p in parts]),
                          n_train=n_train, config=self.config, classes=self.classes)

    def phase2(self, model: nn.Module, train: Images, val: Images, *, pretrained: bool) -> FineTune:
        """Fine-tune ``model`` from where it is (:mod:`training.finetune`)."""
        return fine_tune(model, train, val, config=self.config, encoder=self.encoder, rng=self.rng,
                         pretrained=pretrained)

    def calibrate_on(self, model: nn.Module, val: Images) -> Calibration:
        logits = self.encoder.logits(model, val).numpy()
        return Calibration.measure(logits, val.labels, fit_temperature(logits, val.labels), self.classes,
                                   "validation split")

    def fit(self, train_samples: Sequence[data.Sample], val_samples: Sequence[data.Sample]) -> Trained:
        """From scratch, or phase 1 and then, with a val split and no probe, phase 2 against its gate."""
        cfg = self.config
        seconds: dict[str, float] = {}
        with _timed(seconds, "decode"):
            train = Images(train_samples, self.spec, self.classes, "train")
            val = Images(val_samples, self.spec, self.classes, "val")
        model = create_model(len(self.classes), pretrained=cfg.pretrained, stage_features=cfg.stage_features,
                             backbone=cfg.backbone)
        model = model.to(self.device)
        if not cfg.pretrained:
            return self._from_scratch(model, train, val, seconds)

        with _timed(seconds, "phase1"):
            phase1 = self.phase1(model, train, val)
        history, calibration = [phase1.history], phase1.calibration
        if cfg.linear_probe:
            outcome = Outcome.PROBE
        elif skipped := self.phase2_skipped(val):
            outcome = Outcome.PHASE1_ONLY
            log.info("phase 2 skipped: %s", skipped)
        else:
            head = model.get_classifier()
            every_image = copy.deepcopy(head.state_dict())
            head.load_state_dict(phase1.train_only)  # phase 2 starts from, and must beat, the train-only head
            with _timed(seconds, "phase2"):
                tuned = self.phase2(model, train, val, pretrained=True)
            history += tuned.history
            with _timed(seconds, "calibrate"):
                if tuned.kept:
                    outcome, calibration = Outcome.PHASE2_KEPT, self.calibrate_on(model, val)
                else:  # the backbone is phase 2's start, untouched: back to the head fitted on every image
                    outcome = Outcome.PHASE2_REJECTED
                    head.load_state_dict(every_image)
                    log.info("phase 2 did not beat phase 1 on val; keeping phase 1's head, fitted on train + val")
        model.eval()
        log.info("outcome: %s", outcome)

        open_set = None
        if cfg.open_set:
            with _timed(seconds, "open_set"):
                parts = [p for p in (train, val) if len(p)]
                kept = outcome is Outcome.PHASE2_KEPT
                feats = (torch.cat([self.encoder.eval_features(model, p) for p in parts])
                         if kept else phase1.eval_features)  # a new backbone, a new bank
                # logits of photos not trained on: the val split's under a kept phase 2, else phase 1's out-of-fold
                held_logits = self.encoder.logits(model, val).numpy() if kept else phase1.oof_logits
                open_set = fit_open_set(feats.cpu(), np.concatenate([p.labels for p in parts]),
                                        model.get_classifier().chunks, k=cfg.open_set_k,
                                        quantile=cfg.open_set_quantile, seed=cfg.seed, held_out_logits=held_logits,
                                        temperature=calibration.temperature,
                                        energy_quantile=cfg.open_set_energy_quantile)
            log.info("open set: %d-NN cosine distance above its %.0f %% held-out quantile%s",
                     open_set.k, 100 * open_set.quantile, "" if open_set.energy is None else
                     f" or energy above its {100 * open_set.energy.quantile:.0f} %")
        return Trained(model.cpu(), calibration, outcome, history, seconds, open_set)

    def _from_scratch(self, model: nn.Module, train: Images, val: Images, seconds: dict[str, float]) -> Trained:
        """Outcome.SCRATCH: phase 2 on every layer from random weights; no open set (its features mean nothing)."""
        with _timed(seconds, "phase2"):
            tuned = self.phase2(model, train, val, pretrained=False)
        with _timed(seconds, "calibrate"):
            calibration = self.calibrate_on(model, val) if tuned.kept and len(val.labels) else Calibration()
        model.eval()
        log.info("outcome: %s", Outcome.SCRATCH)
        return Trained(model.cpu(), calibration, Outcome.SCRATCH, tuned.history, seconds)


def run(config: TrainConfig) -> Path:
    """Split, train, calibrate, export and (with a holdout) evaluate; returns the model directory.

    The directory gets ``model.onnx`` and ``metadata.json`` (the model) and,
    beside them, ``config.json`` (resolved config), ``split.jsonl`` (which
    image went where), ``history.json`` (the :class:`Outcome` and each
    phase's and epoch's losses) and, with a holdout, the evaluation.
    """
    from training.evaluate import evaluate_model  # evaluate imports matplotlib: only when needed

    wall = time.perf_counter()
    check_config(config)
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
        backbone=config.backbone,
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
    history = {"outcome": trained.outcome.value, "steps": trained.history}
    (out / "history.json").write_text(json.dumps(history, indent=2) + "\n")
    log.info("wrote %s in %.0f s (%s)", out, trained.seconds["total"], {k: round(v, 1) for k, v in trained.seconds.items()})
    return out

