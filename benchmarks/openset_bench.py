"""Open set by leave-one-class-out: does the score flag photos of a class the model never saw?

    python benchmarks/openset_bench.py --dev ../shared/datasets/civic-photos-dev \
        --local ../shared/datasets/local-reports-dev --feature-cache .local/feature-cache

Features come from the recipe's feature cache (run ``local_bench.py`` first
or let this encode them). For each class of civic-photos-dev, a phase 1 head
is trained on the other classes (the fixed 40-per-class holdout kept out);
"known" photos are the holdout's other classes, "unknown" ones every photo of
the left-out class not trained on. A last row trains on dev without
fly-tipping and treats local-reports-dev's fly-tipping photos as unknown.
Scores (higher = more unlike the training photos):

- ``msp``: 1 - the calibrated maximum softmax probability;
- ``knn1``, ``knn10``: cosine distance to the 1st / 10th nearest training photo
  (``training.openset``, the features as the head normalises them);
- ``mahalanobis``: class-conditional, shared covariance with shrinkage, on the
  same normalised features.

Each score's threshold is its 95th percentile on known training photos held
out of a 5-fold bank (as ``training.openset.fit_open_set`` does). "still
auto-triaged" is the share of unknown photos the routing would auto-triage
at the 0.85 default threshold (a category, not ``no_issue``, and not flagged);
"known auto-triage lost" is how many points of the known photos'
auto-triage rate the flag costs.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
import torch
from local_bench import fit, predict

from training import data
from training.config import TrainConfig
from training.model import FEATURE_DIM, STAGE_FEATURE_DIM, create_model
from training.openset import K_NEAREST, QUANTILE, knn_score, normalise
from training.recipe import Images, Recipe

CHUNKS = (FEATURE_DIM, STAGE_FEATURE_DIM)
AUTO = 0.85


def auroc(known: np.ndarray, unknown: np.ndarray) -> float:
    """P(score of a random unknown photo > a random known one), ties counted half."""
    s = np.concatenate([known, unknown])
    ranks = s.argsort().argsort() + 1.0
    for v in np.unique(s):  # average ranks over ties
        ranks[s == v] = ranks[s == v].mean()
    r = ranks[len(known):].sum()
    return float((r - len(unknown) * (len(unknown) + 1) / 2) / (len(known) * len(unknown)))


def mahalanobis(train: torch.Tensor, labels: np.ndarray, queries: torch.Tensor, shrink: float = 0.1) -> np.ndarray:
    x = train.double()
    means = torch.stack([x[labels == c].mean(0) for c in np.unique(labels)])
    centred = x - means[torch.from_numpy(np.searchsorted(np.unique(labels), labels))]
    cov = centred.T @ centred / len(x)
    cov = (1 - shrink) * cov + shrink * torch.eye(cov.shape[0], dtype=cov.dtype) * cov.diagonal().mean()
    prec = torch.linalg.inv(cov)
    q = queries.double()
    d = torch.stack([((q - m) @ prec * (q - m)).sum(1) for m in means], 1)
    return d.min(1).values.numpy()


def scores(name: str, model, train_f: torch.Tensor, y: np.ndarray, queries: torch.Tensor) -> np.ndarray:
    if name == "msp":
        return 1 - predict(model, queries[None]).max(1)
    bank, q = normalise(train_f, CHUNKS), normalise(queries, CHUNKS)
    if name.startswith("knn"):
        return knn_score(bank, q, int(name[3:])).numpy()
    return mahalanobis(bank, y, q)


def held_out(name: str, model, train_f: torch.Tensor, y: np.ndarray) -> np.ndarray:
    """Scores of training photos against a bank without their fold (5 folds)."""
    folds = data.stratified_folds(y, 5, 0)
    out = np.empty(len(y))
    for f in range(5):
        held = folds == f
        out[held] = scores(name, model, train_f[~held], y[~held], train_f[held])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dev", required=True)
    parser.add_argument("--local", required=True)
    parser.add_argument("--feature-cache", default=".local/feature-cache")
    parser.add_argument("--scores", nargs="+", default=["msp", "knn1", f"knn{K_NEAREST}", "mahalanobis"])
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    config = TrainConfig(data=args.dev, feature_cache=args.feature_cache)
    dev = sorted(data.load_samples(args.dev), key=lambda s: str(s.path))
    local = sorted(data.load_samples(args.local), key=lambda s: str(s.path))
    classes = data.class_names(dev)
    holdout, pool = data.stratified_take(dev, per_class=40, seed=config.split_seed)
    recipe = Recipe(config, classes, torch.device("cpu"))
    net = create_model(len(classes)).eval()
    enc = lambda s, v: recipe.feature_views(net, Images(s, recipe.spec, classes, "x"), v)  # noqa: E731
    pool_f, hold_f, local_f = enc(pool, config.cache_views), enc(holdout, 1)[0], enc(local, 1)[0]
    y_pool = np.array([classes.index(s.label) for s in pool])
    y_hold = np.array([classes.index(s.label) for s in holdout])
    local_fly = np.array([s.label == "fly_tipping" for s in local])

    print("| left out | score | AUROC | threshold | unknown flagged | unknown still auto-triaged "
          "(without flag) | known auto-triage lost (points) |")
    print("|---|---|---|---|---|---|---|")
    cases = [(c, c, None) for c in classes] + [("fly_tipping", "local-reports-dev fly-tipping", local_f[local_fly])]
    for left_out, title, unknown_f in cases:
        c = classes.index(left_out)
        known = [k for k in classes if k != left_out]
        keep = y_pool != c
        y = np.array([known.index(classes[i]) for i in y_pool[keep]])
        feats = pool_f[:, keep]
        model = fit(feats, torch.from_numpy(y), np.zeros(len(y), bool), share=0.0, stage=True,
                    views=config.cache_views, balance=True, config=config, n_classes=len(known))
        if unknown_f is None:
            unknown_f = torch.cat([hold_f[y_hold == c], pool_f[0, ~keep]])
        known_f = hold_f[y_hold != c]
        for name in args.scores:
            s_known = scores(name, model, feats[0], y, known_f)
            s_unknown = scores(name, model, feats[0], y, unknown_f)
            threshold = float(np.quantile(held_out(name, model, feats[0], y), QUANTILE))

            def auto(f: torch.Tensor, s: np.ndarray, flag: bool) -> np.ndarray:
                p = predict(model, f[None])
                slug = np.array(known)[p.argmax(1)]
                ok = (p.max(1) >= AUTO) & (slug != "no_issue")
                return ok & (s < threshold) if flag else ok

            flagged = (s_unknown >= threshold).mean()
            still, before = auto(unknown_f, s_unknown, True).mean(), auto(unknown_f, s_unknown, False).mean()
            lost = auto(known_f, s_known, False).mean() - auto(known_f, s_known, True).mean()
            print(f"| {title} | {name} | {auroc(s_known, s_unknown):.3f} | {threshold:.3g} | {flagged:.3f} "
                  f"| {still:.3f} ({before:.3f}) | {100 * lost:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
