"""Phase 1's choice of head L2: out-of-fold NLL weighted as the head is fitted, or the mean over photos.

    python benchmarks/cv_weighting.py --data ../shared/datasets/civic-photos-dev \
        --feature-cache .local/feature-cache --holdout-seeds 8

``training.head.cross_validate_head`` judges each L2 in ``HEAD_L2_CHOICES`` by the weighted
out-of-fold NLL (``sample_weights``: every class the same total weight). The mean over photos,
which it used before, let the largest classes choose. Both criteria are computed here from the
same out-of-fold logits of the recipe's phase 1 (both feature levels, ``cache_views`` views,
class-balanced fits), on paired draws (``draws.py``: a seeded 40-per-class holdout, every other
photo trained on), so where they pick the same L2 the draw is a tie by construction. Printed: each
criterion's holdout macro-F1 and the L2 it chose, the paired difference and the draws won/lost.
"""
from __future__ import annotations

import argparse
import sys
from collections import Counter

import numpy as np
import torch
from draws import draws, table_rows

from training import data
from training.config import TrainConfig
from training.features import Encoder, Images
from training.head import HEAD_L2_CHOICES, fit_head, sample_weights
from training.metrics import classification_report, fit_temperature, nll_per_sample, softmax
from training.model import create_model, new_head


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--feature-cache", default=".local/feature-cache")
    parser.add_argument("--holdout-seeds", type=int, default=8)
    parser.add_argument("--holdout-per-class", type=int, default=40)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    config = TrainConfig(data=args.data, feature_cache=args.feature_cache)
    samples = sorted(data.load_samples(args.data), key=lambda s: str(s.path))
    classes = data.class_names(samples)
    encoder = Encoder(config, torch.device("cpu"))
    images = Images(samples, encoder.spec, classes, "dev")
    feats = encoder.feature_views(create_model(len(classes)).eval(), images, config.cache_views)
    labels = np.array([classes.index(s.label) for s in samples])
    scores = {"weighted (served)": [], "mean over photos": []}
    chosen = {name: Counter() for name in scores}
    for held, rows in draws(samples, "all", holdout_seeds=args.holdout_seeds, seeds=1,
                            holdout_per_class=args.holdout_per_class):
        x, y = feats[:, rows], labels[rows.numpy()]
        yt = torch.from_numpy(y)
        w = sample_weights(y, np.zeros(len(y), bool), 0.0)
        k = min(config.cv_folds, int(np.bincount(y).min()))  # as phase 1
        folds = torch.from_numpy(data.stratified_folds(y, k, config.seed))
        loss = {name: {} for name in scores}
        for l2 in HEAD_L2_CHOICES:
            head, oof = new_head(len(classes)), np.zeros((len(y), len(classes)), np.float32)
            for f in range(k):
                fit_head(head, x, yt, folds != f, l2=l2, max_iter=config.head_max_iter, weights=torch.from_numpy(w))
                with torch.no_grad():
                    oof[(folds == f).numpy()] = head(x[0, folds == f]).numpy()
            t = fit_temperature(oof, y)
            per_photo = nll_per_sample(oof, y, t)
            loss["weighted (served)"][l2] = ((w * per_photo).sum() / w.sum(), t)
            loss["mean over photos"][l2] = (per_photo.mean(), t)
        fitted = {}
        for name in scores:
            l2 = min(loss[name], key=lambda k: loss[name][k][0])
            chosen[name][l2] += 1
            if l2 not in fitted:
                head = new_head(len(classes))
                fit_head(head, x, yt, torch.arange(len(y)), l2=l2, max_iter=config.head_max_iter,
                         weights=torch.from_numpy(w))
                with torch.no_grad():
                    fitted[l2] = head(feats[0, held]).numpy()
            probs = softmax(fitted[l2], loss[name][l2][1])
            scores[name].append(classification_report(labels[held.numpy()], probs, classes)["macro_f1"])
    print("| K | L2 chosen by | holdout macro-F1 (mean of draws) | vs weighted | draws won / lost |")
    print("|---|---|---|---|---|")
    print("\n".join(table_rows("all", scores)))
    for name, counts in chosen.items():
        print(f"{name}: L2 chosen {dict(sorted(counts.items()))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
