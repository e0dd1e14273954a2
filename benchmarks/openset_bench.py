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
  same normalised features;
- ``knn1+energy``: the served score (``training.openset.fit_open_set`` with
  out-of-fold logits): unknown when the knn1 distance is above its 95th
  held-out percentile or the energy ``-logsumexp(logits / T)`` above its 93rd
  (cross-validation's out-of-fold logits; ``--energy-quantile``), as one number with threshold 0.

A second table (``--part newclass``) measures learning a new category from its first 15 verified
photos the same way: its recall on its photos not trained on, and the worst change of an old class's
holdout F1 against the model of the old classes alone.

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
from training.features import Encoder, Images
from training.model import FEATURE_DIM, STAGE_FEATURE_DIM, create_model
from training.head import cross_validate_head, fit_head, sample_weights
from training.model import new_head
from training.openset import ENERGY_QUANTILE, QUANTILE, fit_open_set, knn_score, normalise

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


def fit_oof(feats: torch.Tensor, y: np.ndarray, config: TrainConfig, n_classes: int):
    """``local_bench.fit`` (phase 1's head, class-balanced, both feature levels), keeping cross-validation's
    out-of-fold logits: the energy rule's held-out known photos, as ``training.recipe`` uses them."""
    head, yt = new_head(n_classes, stage_dim=feats.shape[-1] - FEATURE_DIM), torch.from_numpy(y)
    w = torch.from_numpy(sample_weights(y, np.zeros(len(y), bool), 0.0))
    folds = min(config.cv_folds, int(np.bincount(y).min()))
    _, l2, temperature, oof = cross_validate_head(head, feats[:config.cache_views], yt, folds=folds, seed=0,
                                                  max_iter=config.head_max_iter, weights=w)
    fit_head(head, feats[:config.cache_views], yt, torch.arange(len(y)), l2=l2, max_iter=config.head_max_iter,
             weights=w)
    return (head, temperature, True), oof


def held_out(name: str, model, train_f: torch.Tensor, y: np.ndarray) -> np.ndarray:
    """Scores of training photos against a bank without their fold (5 folds)."""
    folds = data.stratified_folds(y, 5, 0)
    out = np.empty(len(y))
    for f in range(5):
        held = folds == f
        out[held] = scores(name, model, train_f[~held], y[~held], train_f[held])
    return out


def new_class_table(args, config, classes, pool_f, y_pool, hold_f, y_hold) -> None:
    """Learning a new category from its first N verified photos, by leave-one-class-out: the model of the
    other classes vs the same plus N photos of the left-out one (seeded draws); recall on the left-out
    class's photos not trained on (holdout and pool), and each old class's F1 on the holdout."""
    from training.metrics import classification_report

    n = args.new_class_photos
    print("\n| new class | photos of it | its recall on the rest | worst old-class F1 change (points) | draws |")
    print("|---|---|---|---|---|")
    for c, new in enumerate(classes):
        old = [k for k in classes if k != new]
        keep = y_pool != c
        y_old = torch.tensor([old.index(classes[i]) for i in y_pool[keep]])
        base = fit(pool_f[:, keep], y_old, np.zeros(len(y_old), bool), share=0.0, stage=True,
                   views=config.cache_views, balance=True, config=config, n_classes=len(old))
        hold_old = y_hold != c
        base_pred = np.array(old)[predict(base, hold_f[None, hold_old]).argmax(1)]
        truth_old = np.array(classes)[y_hold[hold_old]]
        f1 = lambda pred: {k: classification_report(  # noqa: E731
            np.array([classes.index(t) for t in truth_old]), np.eye(len(classes))[[classes.index(q) for q in pred]],
            classes)["per_class"][k]["f1"] for k in old}
        base_f1 = f1(base_pred)
        recalls, drops = [], []
        members = np.flatnonzero(~keep)
        for seed in range(args.seeds):
            chosen = np.random.default_rng(seed).choice(members, n, replace=False)
            rows = np.concatenate([np.flatnonzero(keep), chosen])
            if args.new_class_l2:  # the head at a fixed L2 instead of cross-validation's choice
                head = new_head(len(classes), stage_dim=pool_f.shape[-1] - FEATURE_DIM)
                y_new = torch.from_numpy(y_pool[rows])
                fit_head(head, pool_f[:config.cache_views, rows], y_new, torch.arange(len(rows)),
                         l2=args.new_class_l2, max_iter=config.head_max_iter,
                         weights=torch.from_numpy(sample_weights(y_pool[rows], np.zeros(len(rows), bool), 0.0)))
                m = (head, 1.0, True)  # argmax only: the temperature does not matter
            else:
                m = fit(pool_f[:, rows], torch.from_numpy(y_pool[rows]), np.zeros(len(rows), bool), share=0.0,
                        stage=True, views=config.cache_views, balance=True, config=config, n_classes=len(classes))
            rest = torch.cat([hold_f[y_hold == c], pool_f[0, np.setdiff1d(members, chosen)]])
            recalls.append((predict(m, rest[None]).argmax(1) == c).mean())
            new_f1 = f1(np.array(classes)[predict(m, hold_f[None, hold_old]).argmax(1)])
            drops.append(min(new_f1[k] - base_f1[k] for k in old))
        print(f"| {new} | {n} | {np.mean(recalls):.3f} (min {np.min(recalls):.3f}) | {100 * np.mean(drops):+.1f} "
              f"(worst {100 * np.min(drops):+.1f}) | {args.seeds} |", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dev", required=True)
    parser.add_argument("--local", required=True)
    parser.add_argument("--feature-cache", default=".local/feature-cache")
    parser.add_argument("--holdout-per-class", type=int, default=40,
                        help="civic-photos-dev photos per class held out (the fixed holdout)")
    parser.add_argument("--scores", nargs="+", default=["msp", "knn1", "knn10", "mahalanobis", "knn1+energy"])
    parser.add_argument("--part", nargs="+", default=["openset", "newclass"], choices=("openset", "newclass"))
    parser.add_argument("--energy-quantile", type=float, default=ENERGY_QUANTILE,
                        help="the served score's energy rule at this held-out percentile (knn1+energy)")
    parser.add_argument("--new-class-photos", type=int, default=15)
    parser.add_argument("--seeds", type=int, default=3, help="draws of the new class's photos")
    parser.add_argument("--new-class-l2", type=float, default=0.0,
                        help="fit the model with the new class at this head L2 (0: cross-validated, as phase 1)")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    config = TrainConfig(data=args.dev, feature_cache=args.feature_cache)
    dev = sorted(data.load_samples(args.dev), key=lambda s: str(s.path))
    local = sorted(data.load_samples(args.local), key=lambda s: str(s.path))
    classes = data.class_names(dev)
    holdout, pool = data.stratified_take(dev, per_class=args.holdout_per_class, seed=config.split_seed)
    encoder = Encoder(config, torch.device("cpu"))
    net = create_model(len(classes)).eval()
    enc = lambda s, v: encoder.feature_views(net, Images(s, encoder.spec, classes, "x"), v)  # noqa: E731
    pool_f, hold_f, local_f = enc(pool, config.cache_views), enc(holdout, 1)[0], enc(local, 1)[0]
    y_pool = np.array([classes.index(s.label) for s in pool])
    y_hold = np.array([classes.index(s.label) for s in holdout])
    local_fly = np.array([s.label == "fly_tipping" for s in local])

    if "newclass" in args.part:
        new_class_table(args, config, classes, pool_f, y_pool, hold_f, y_hold)
    if "openset" not in args.part:
        return 0
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
        model, oof = fit_oof(feats, y, config, len(known))
        if unknown_f is None:
            unknown_f = torch.cat([hold_f[y_hold == c], pool_f[0, ~keep]])
        known_f = hold_f[y_hold != c]
        for name in args.scores:
            if name == "knn1+energy":
                served = fit_open_set(feats[0], y, CHUNKS, k=1, held_out_logits=oof, temperature=model[1],
                                      energy_quantile=args.energy_quantile)
                with torch.no_grad():
                    s_known, s_unknown = (served.scorer(CHUNKS)(f, model[0](f)).numpy() for f in (known_f, unknown_f))
                threshold = served.threshold
            else:
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
