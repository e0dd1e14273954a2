"""Input resolution for the frozen backbone: paired draws of holdout and K-per-class samples.

    python benchmarks/resolution_ablation.py --data ../shared/datasets/civic-photos-dev \
        --sizes 224 256 288 320 --per-class 5 10 all --holdout-seeds 8 --seeds 8

For each input size (resize = size / 0.875, timm's crop_pct: ``TrainConfig.at_input_size``),
the frozen ImageNet Lite0 computes the eval-crop features of every photo once.
A draw is a seeded 40-per-class holdout plus K photos per class sampled from
the rest; the linear probe's head (``NormalizedLinear``, class-balanced L-BFGS,
fixed ``--l2``) is fitted on the K and scored on the holdout. Every size sees
the same draws, so each size's difference from the first is paired: the
printed mean difference, its standard error and the draws it won and lost.
A single 160-photo holdout cannot resolve a point of macro-F1; 64 draws can.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

from training import data
from training.config import TrainConfig
from training.metrics import classification_report, softmax
from training.model import FEATURE_DIM, NormalizedLinear, create_model
from training.recipe import Images, Recipe, fit_head


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--sizes", nargs="+", type=int, default=[224, 256, 288, 320])
    parser.add_argument("--per-class", nargs="+", default=["5", "10", "all"])
    parser.add_argument("--holdout-seeds", type=int, default=8, help="holdout draws")
    parser.add_argument("--seeds", type=int, default=8, help="K-per-class draws per holdout ('all' uses one)")
    parser.add_argument("--holdout-per-class", type=int, default=40)
    parser.add_argument("--l2", type=float, default=1e-3, help="head L2 (the middle of the recipe's CV choices)")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    samples = sorted(data.load_samples(args.data), key=lambda s: str(s.path))
    classes = data.class_names(samples)
    index = {str(s.path): i for i, s in enumerate(samples)}
    labels = torch.tensor([classes.index(s.label) for s in samples])
    model = create_model(len(classes)).eval()
    feats = {}
    for size in args.sizes:
        config = TrainConfig(data=args.data).at_input_size(size)
        recipe = Recipe(config, classes, torch.device("cpu"))
        images = Images(samples, recipe.spec, classes, f"{size} px")
        feats[size] = recipe.feature_views(model, images, 1)  # [1, N, D]: the eval crop
        print(f"features at {size} px: done", file=sys.stderr, flush=True)
    print("| K | size | macro-F1 (mean of draws) | vs first size | draws won / lost |")
    print("|---|---|---|---|---|")
    for k in args.per_class:
        scores = {size: [] for size in args.sizes}
        for hseed in range(args.holdout_seeds):
            holdout, pool = data.stratified_take(samples, per_class=args.holdout_per_class, seed=1000 + hseed)
            hold_rows = torch.tensor([index[str(s.path)] for s in holdout])
            for seed in range(1 if k == "all" else args.seeds):
                chosen = pool if k == "all" else data.stratified_take(pool, per_class=int(k), seed=seed)[0]
                rows = torch.tensor([index[str(s.path)] for s in chosen])
                for size in args.sizes:
                    head = NormalizedLinear(FEATURE_DIM, len(classes))
                    fit_head(head, feats[size][:, rows], labels[rows], torch.arange(len(rows)), l2=args.l2,
                             max_iter=TrainConfig.head_max_iter)
                    with torch.no_grad():
                        probs = softmax(head(feats[size][0, hold_rows]).numpy())
                    report = classification_report(labels[hold_rows].numpy(), probs, classes)
                    scores[size].append(report["macro_f1"])
        first = np.array(scores[args.sizes[0]])
        for size in args.sizes:
            delta = np.array(scores[size]) - first
            se = delta.std(ddof=1) / np.sqrt(len(delta)) if len(delta) > 1 else float("nan")
            print(f"| {k} | {size} | {np.mean(scores[size]):.3f} | {delta.mean():+.3f} +- {se:.3f} "
                  f"| {(delta > 0).sum()} / {(delta < 0).sum()} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
