"""Input resolution for the frozen backbone: paired draws of holdout and K-per-class samples.

    python benchmarks/resolution_ablation.py --data ../shared/datasets/civic-photos-dev \
        --sizes 224 256 288 320 --per-class 5 10 all --holdout-seeds 8 --seeds 8

For each input size (resize = size / 0.875, timm's crop_pct: ``TrainConfig.at_input_size``),
the frozen ImageNet Lite0 computes the eval-crop features of every photo once.
A draw is a seeded 40-per-class holdout plus K photos per class sampled from
the rest (``draws.py``); the linear probe's head (``NormalizedLinear`` on the
pooled head output, class-balanced L-BFGS, fixed ``--l2``) is fitted on the K
and scored on the holdout. Every size sees the same draws, so each size's
difference from the first is paired: the printed mean difference, its
standard error and the draws it won and lost.
"""
from __future__ import annotations

import argparse
import sys

import torch
from draws import draws, table_rows

from training import data
from training.config import TrainConfig
from training.features import Encoder, Images
from training.head import fit_head
from training.metrics import classification_report, softmax
from training.model import create_model, new_head


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
    labels = torch.tensor([classes.index(s.label) for s in samples])
    model = create_model(len(classes), stage_features=False).eval()  # the probe's features, as measured
    feats = {}
    for size in args.sizes:
        config = TrainConfig(data=args.data).at_input_size(size)
        encoder = Encoder(config, torch.device("cpu"))
        images = Images(samples, encoder.spec, classes, f"{size} px")
        feats[size] = encoder.feature_views(model, images, 1)  # [1, N, D]: the eval crop
        print(f"features at {size} px: done", file=sys.stderr, flush=True)
    print("| K | size | macro-F1 (mean of draws) | vs first size | draws won / lost |")
    print("|---|---|---|---|---|")
    for k in args.per_class:
        scores = {size: [] for size in args.sizes}
        for hold_rows, rows in draws(samples, k, holdout_seeds=args.holdout_seeds, seeds=args.seeds,
                                     holdout_per_class=args.holdout_per_class):
            for size in args.sizes:
                head = new_head(len(classes), stage_features=False)
                fit_head(head, feats[size][:, rows], labels[rows], torch.arange(len(rows)), l2=args.l2,
                         max_iter=TrainConfig.head_max_iter)
                with torch.no_grad():
                    probs = softmax(head(feats[size][0, hold_rows]).numpy())
                scores[size].append(classification_report(labels[hold_rows].numpy(), probs, classes)["macro_f1"])
        print("\n".join(table_rows(k, scores)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
