"""What the full recipe's phase 1 adds to a linear probe: paired draws on cached features.

    python benchmarks/probe_ablation.py --data ../shared/datasets/civic-photos-dev \
        --per-class 5 10 all --holdout-seeds 8 --seeds 8

The frozen ImageNet Lite0 (288 px, the recipe's eval transform) computes, for
every photo once, the features of its eval crop, its mirror image and two
random augmentations, at both levels ``training.model.Lite0`` pools: the head
output (1,280) and the last stage (320). Each variant then fits its head as
phase 1 does (class-balanced L-BFGS, k-fold CV over the L2 choices, refit on
every photo) and is scored on the holdout's eval crops. Variants:

- ``probe``: the textbook linear probe: head output only, eval crop only
  (``--linear-probe --no-stage-features``);
- ``+stage``: the last stage's features beside it;
- ``+views``: four views a photo;
- ``phase 1``: both, the full recipe's phase 1 (which is the whole recipe
  below 20 photos a class, where phase 2 is skipped).

Draws and the paired table: ``draws.py``.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
import torch
from draws import draws, table_rows

from training import data
from training.config import TrainConfig
from training.features import Encoder, Images
from training.head import cross_validate_head, fit_head
from training.metrics import classification_report, softmax
from training.model import FEATURE_DIM, create_model, new_head

VARIANTS = {"probe": (False, 1), "+stage": (True, 1), "+views": (False, 4), "phase 1": (True, 4)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--per-class", nargs="+", default=["5", "10", "all"])
    parser.add_argument("--holdout-seeds", type=int, default=8, help="holdout draws")
    parser.add_argument("--seeds", type=int, default=8, help="K-per-class draws per holdout ('all' uses one)")
    parser.add_argument("--holdout-per-class", type=int, default=40)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    config = TrainConfig(data=args.data)
    samples = sorted(data.load_samples(args.data), key=lambda s: str(s.path))
    classes = data.class_names(samples)
    labels = torch.tensor([classes.index(s.label) for s in samples])
    encoder = Encoder(config, torch.device("cpu"))
    model = create_model(len(classes)).eval()
    feats = encoder.feature_views(model, Images(samples, encoder.spec, classes, "all"), config.cache_views)
    print("| K | variant | macro-F1 (mean of draws) | vs probe | draws won / lost |")
    print("|---|---|---|---|---|")
    for k in args.per_class:
        scores = {name: [] for name in VARIANTS}
        for hold_rows, rows in draws(samples, k, holdout_seeds=args.holdout_seeds, seeds=args.seeds,
                                     holdout_per_class=args.holdout_per_class):
            y = labels[rows]
            folds = min(config.cv_folds, int(np.bincount(y.numpy()).min()))
            for name, (stage, views) in VARIANTS.items():
                x = feats if stage else feats[..., :FEATURE_DIM]
                head = new_head(len(classes), stage_features=stage)
                _, l2, temperature, _ = cross_validate_head(head, x[:views, rows], y, folds=folds, seed=0,
                                                            max_iter=config.head_max_iter)
                fit_head(head, x[:views, rows], y, torch.arange(len(rows)), l2=l2, max_iter=config.head_max_iter)
                with torch.no_grad():
                    probs = softmax(head(x[0, hold_rows]).numpy(), temperature)
                scores[name].append(classification_report(labels[hold_rows].numpy(), probs, classes)["macro_f1"])
        print("\n".join(table_rows(k, scores)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
