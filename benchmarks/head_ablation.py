"""Phase 1 ablation on cached features: what the head's design is worth, K x variant x seed.

    python benchmarks/head_ablation.py --data ../shared/datasets/civic-photos-dev --per-class 5 10 all --seeds 0 1 2

Features of every image are computed once (frozen ImageNet Lite0, eval mode)
for the eval crop, its mirror image and ``--views - 2`` random augmentations;
then each variant fits heads exactly as ``training.head`` does (class-balanced
L-BFGS) and is scored on the same 40-per-class holdout as
``benchmarks/train_bench.py`` (``split_seed`` 0). Variants:

- ``plain`` / ``norm``: a linear head on the raw pooled features, or on features
  L2-normalised to length ``HEAD_FEATURE_SCALE`` (``NormalizedLinear``).
- ``val``: the previous recipe. With >= 20 images a class, 20 % is a val split that
  picks the L2 and fits the temperature, and the head trains on the other 80 %;
  below that, every image trains, L2 1e-4, T = 1.
- ``cv``: the current recipe. k-fold CV over every image picks the L2 and fits the
  temperature, then the head is refitted on every image.
- ``vN``: feature views per training image (1 = the linear probe's eval crop).
"""
from __future__ import annotations

import argparse
import sys
from collections import Counter

import numpy as np
import torch

from training import data
from training.config import TrainConfig
from training.features import Encoder, Images
from training.head import HEAD_L2_CHOICES, cross_validate_head, fit_head
from training.metrics import classification_report, ece, fit_temperature, nll, softmax
from training.model import FEATURE_DIM, NormalizedLinear, create_model
from training.recipe import split_samples


def new_head(kind: str, n_classes: int) -> torch.nn.Linear:
    return NormalizedLinear(FEATURE_DIM, n_classes) if kind == "norm" else torch.nn.Linear(FEATURE_DIM, n_classes)


def logits(head, x) -> np.ndarray:
    with torch.no_grad():
        return head(x).numpy()


def run_variant(kind, select, feats, labels, config, n_classes):
    """Returns (head, temperature) fitted on ``feats`` ``[views, images, D]`` and their ``labels``."""
    head = new_head(kind, n_classes)
    y = labels.numpy()
    every = torch.arange(len(y))
    if select == "cv":
        k = min(config.cv_folds, int(np.bincount(y).min()))
        _, l2, t, _ = cross_validate_head(head, feats, labels, folds=k, seed=config.seed, max_iter=config.head_max_iter)
        fit_head(head, feats, labels, every, l2=l2, max_iter=config.head_max_iter)
        return head, t
    if Counter(y.tolist()).most_common()[-1][1] < config.min_val_per_class:
        fit_head(head, feats, labels, every, l2=config.head_l2, max_iter=config.head_max_iter)
        return head, 1.0
    is_val = torch.from_numpy(data.stratified_folds(y, 5, config.seed) == 0)  # one fold of five: a 20 % val split
    best = None
    for l2 in HEAD_L2_CHOICES:
        fit_head(head, feats, labels, ~is_val, l2=l2, max_iter=config.head_max_iter)
        z = logits(head, feats[0, is_val])
        t = fit_temperature(z, y[is_val.numpy()])
        loss = nll(z, y[is_val.numpy()], t)
        if best is None or loss < best[0]:
            best = (loss, {k: v.clone() for k, v in head.state_dict().items()}, t)
    head.load_state_dict(best[1])
    return head, best[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--per-class", nargs="+", default=["5", "10", "all"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--views", type=int, default=4)
    parser.add_argument("--holdout-per-class", type=int, default=40)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    config = TrainConfig(data=args.data, holdout_per_class=args.holdout_per_class, val_fraction=0)
    samples = data.load_samples(args.data)
    classes = data.class_names(samples)
    split = split_samples(samples, config)  # holdout only: val_fraction 0 leaves the rest in train
    pool, holdout = split.train, split.holdout
    encoder = Encoder(config, torch.device("cpu"))
    model = create_model(len(classes), stage_features=False).eval()  # pooled head output only, as measured
    pool_images = Images(pool, encoder.spec, classes, "pool")
    hold_images = Images(holdout, encoder.spec, classes, "holdout")
    feats = encoder.feature_views(model, pool_images, args.views)
    hold_feats = encoder.feature_views(model, hold_images, 1)[0]
    labels = torch.from_numpy(pool_images.labels)
    index = {str(s.path): i for i, s in enumerate(pool)}
    variants = [("plain", "val", args.views), ("norm", "val", args.views), ("plain", "cv", args.views)]
    variants += [("norm", "cv", v) for v in sorted({1, 2, args.views})]
    print("| K | variant | macro-F1 (seeds) | ECE |")
    print("|---|---|---|---|")
    for k in args.per_class:
        for kind, select, views in variants:
            f1s, eces = [], []
            for seed in args.seeds:
                chosen = pool if k == "all" else data.stratified_take(pool, per_class=int(k), seed=seed)[0]
                rows = np.array([index[str(s.path)] for s in chosen])
                config.seed = seed
                head, t = run_variant(kind, select, feats[:views, rows], labels[rows], config, len(classes))
                probs = softmax(logits(head, hold_feats), t)
                f1s.append(classification_report(hold_images.labels, probs, classes)["macro_f1"])
                eces.append(ece(probs, hold_images.labels))
            print(f"| {k} | {kind} {select} v{views} | {np.mean(f1s):.3f} ({', '.join(f'{f:.3f}' for f in f1s)}) "
                  f"| {np.mean(eces):.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
