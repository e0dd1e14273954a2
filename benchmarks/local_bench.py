"""How a model trained on civic-photos-dev holds up on a council's own reports, and how fast it adapts.

    python benchmarks/local_bench.py --dev ../shared/datasets/civic-photos-dev \
        --local ../shared/datasets/local-reports-dev --feature-cache .local/feature-cache

The frozen ImageNet Lite0 (the recipe's 288 px transforms and views, through
``training.features.FeatureCache``, so a second run and ``python -m training
train --feature-cache`` reuse the features) encodes every photo once. Each
row then fits its head exactly as phase 1 does (k-fold CV over the L2
choices and the temperature, refit on every photo, ``sample_weights``) and
is scored on eval crops:

- ``holdout``: civic-photos-dev's fixed 40-per-class holdout (``split_seed``
  0, the grid's), macro-F1 over its four classes;
- ``local``: local-reports-dev photos not trained on: fly-tipping recall and
  precision, the share of clean containers called an issue (any class but
  ``no_issue``), and macro-F1 over the two classes.

Part 1 (``--part ood``) trains on civic-photos-dev alone: the recipe, the
textbook probe, test-time mirror views, no class balance. Part 2
(``--part adapt``) adds K local photos per class (seeded draws) at several
``local_share`` weights. Phase 2 is left out: on CPU it has been rejected by
its gate in every run (docs/TRAINING.md), so phase 1 is the model served.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from inference.preprocess import INTERPOLATIONS, to_array
from training import data
from training.config import TrainConfig
from training.features import Encoder, FeatureCache, Images
from training.head import cross_validate_head, fit_head, sample_weights
from training.metrics import classification_report, softmax
from training.model import FEATURE_DIM, create_model, new_head

FLY, CLEAN = "fly_tipping", "no_issue"


def fit(feats: torch.Tensor, y: torch.Tensor, local: np.ndarray, *, share: float, stage: bool, views: int,
        balance: bool, config: TrainConfig, n_classes: int):
    """Phase 1's head on ``feats`` ([views, N, D]); returns (head, temperature)."""
    x = (feats if stage else feats[..., :FEATURE_DIM])[:views]
    head = new_head(n_classes, stage_features=stage, stage_dim=feats.shape[-1] - FEATURE_DIM)  # Lite2's is wider
    w = torch.from_numpy(sample_weights(y.numpy(), local, share)) if balance else torch.ones(len(y))
    folds = min(config.cv_folds, int(np.bincount(y.numpy()).min()))
    _, l2, temperature, _ = cross_validate_head(head, x, y, folds=folds, seed=0, max_iter=config.head_max_iter,
                                                weights=w)
    fit_head(head, x, y, torch.arange(len(y)), l2=l2, max_iter=config.head_max_iter, weights=w)
    return head, temperature, stage


def predict(model, feats: torch.Tensor, *, tta: bool = False) -> np.ndarray:
    head, temperature, stage = model
    x = feats if stage else feats[..., :FEATURE_DIM]
    with torch.no_grad():
        logits = head(x[0]).numpy()
        if tta:
            logits = (logits + head(x[1]).numpy()) / 2
    return softmax(logits, temperature)


def local_scores(probs: np.ndarray, labels: list[str], classes: list[str]) -> dict:
    pred = np.array(classes)[probs.argmax(1)]
    truth = np.array(labels)
    fly, clean = truth == FLY, truth == CLEAN
    tp = (fly & (pred == FLY)).sum()
    recall = tp / max(1, fly.sum())
    precision = tp / max(1, (pred == FLY).sum())
    clean_ok = (clean & (pred == CLEAN)).sum()
    f1 = lambda p, r: 2 * p * r / (p + r) if p + r else 0.0  # noqa: E731
    clean_precision = clean_ok / max(1, (pred == CLEAN).sum())
    clean_recall = clean_ok / max(1, clean.sum())
    return {"fly_recall": recall, "fly_precision": precision, "clean_fp": 1 - clean_recall,
            "macro_f1": (f1(precision, recall) + f1(clean_precision, clean_recall)) / 2}


def extra_views(encoder: Encoder, model, images: Images, kind: str) -> torch.Tensor:
    """Two views the recipe does not make, cached under their own key: ``phone`` = two draws of
    :class:`training.data.PhoneAugment`; ``squash`` = the whole photo resized to the input square
    (no centre crop, so nothing beside the subject is cut off) and its mirror image."""
    spec, seed = encoder.spec, encoder.config.seed
    cache = FeatureCache(encoder.cache.root, encoder.cache.model_key + "|" + kind)
    phone = data.PhoneAugment()

    def arrays(v: int, idx) -> np.ndarray:
        small = images.small(idx)
        if kind == "phone":
            return np.stack([phone(img, spec, np.random.default_rng([seed, v, int(images.sha256[i][:15], 16)]))
                             for i, img in zip(idx, small)])
        size = (spec.input_size, spec.input_size)
        out = np.stack([to_array(img.resize(size, INTERPOLATIONS[spec.interpolation]), spec) for img in small])
        return np.ascontiguousarray(out[..., ::-1]) if v == 1 else out

    views = []
    for v in range(2):
        got = [cache.get(h, f"view{v}") for h in images.sha256]
        todo = [i for i, f in enumerate(got) if f is None]
        if todo:
            fresh = encoder.forward_batches(model.features, len(todo), lambda sl: arrays(v, todo[sl]), f"{kind} {v}")
            for i, f in zip(todo, fresh.numpy()):
                got[i] = f
                cache.put(images.sha256[i], f"view{v}", f)
        views.append(torch.from_numpy(np.stack(got)))
    return torch.stack(views)


def load_sets(dev_dir: str, local_dir: str, *, holdout_per_class: int, split_seed: int):
    """local-reports-dev in a fixed order, civic-photos-dev's classes, its fixed holdout and the
    rest of it (the pool training draws from), as every benchmark here uses them."""
    dev = sorted(data.load_samples(dev_dir), key=lambda s: str(s.path))
    local = sorted(data.load_samples(local_dir, default_source="local"), key=lambda s: str(s.path))
    holdout, pool = data.stratified_take(dev, per_class=holdout_per_class, seed=split_seed)
    return local, data.class_names(dev), holdout, pool


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dev", required=True)
    parser.add_argument("--local", required=True)
    parser.add_argument("--feature-cache", default=".local/feature-cache")
    parser.add_argument("--holdout-per-class", type=int, default=40,
                        help="civic-photos-dev photos per class held out (the fixed holdout)")
    parser.add_argument("--part", nargs="+", default=["ood", "adapt"], choices=("ood", "adapt"))
    parser.add_argument("--k", nargs="+", default=["5:5", "10:10", "20:10", "20:20"],
                        help="local photos drawn per class, fly_tipping:no_issue")
    parser.add_argument("--shares", nargs="+", type=float, default=[0.0, 0.5, 0.75, 0.9])
    parser.add_argument("--seeds", type=int, default=10, help="local draws per K")
    parser.add_argument("--extra", nargs="*", default=[], choices=("phone", "squash"),
                        help="also try phone-photo augmentation views / whole-photo (squashed) views")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    config = TrainConfig(data=args.dev, feature_cache=args.feature_cache)
    local, classes, holdout, pool = load_sets(args.dev, args.local, holdout_per_class=args.holdout_per_class,
                                              split_seed=config.split_seed)
    encoder = Encoder(config, torch.device("cpu"))
    model = create_model(len(classes)).eval()
    start = time.perf_counter()
    images = {name: Images(s, encoder.spec, classes, name) for name, s in (("pool", pool), ("holdout", holdout), ("local", local))}
    pool_f = encoder.feature_views(model, images["pool"], config.cache_views)
    hold_f = encoder.feature_views(model, images["holdout"], 2)
    local_f = encoder.feature_views(model, images["local"], config.cache_views)
    extra = {kind: {name: extra_views(encoder, model, im, kind) for name, im in images.items()
                    if kind == "squash" or name == "pool"} for kind in args.extra}
    print(f"features: {time.perf_counter() - start:.0f} s", file=sys.stderr)
    y_pool = torch.tensor([classes.index(s.label) for s in pool])
    y_hold = np.array([classes.index(s.label) for s in holdout])
    local_labels = [s.label for s in local]
    n = len(classes)

    def row(name, m, *, local_rows=None, tta=False):
        rest = np.setdiff1d(np.arange(len(local)), local_rows if local_rows is not None else [])
        hold = classification_report(y_hold, predict(m, hold_f, tta=tta), classes)["macro_f1"]
        loc = local_scores(predict(m, local_f[:, rest], tta=tta), [local_labels[i] for i in rest], classes)
        return {"name": name, "holdout_macro_f1": hold, **loc, "n_local_eval": len(rest)}

    if "ood" in args.part:
        print("| variant | holdout macro-F1 | fly-tipping recall | fly-tipping precision | clean called an issue | local macro-F1 |")
        print("|---|---|---|---|---|---|")
        no_local = np.zeros(len(pool), bool)
        variants = {
            "recipe (phase 1: both feature levels, 4 views, class-balanced)": dict(stage=True, views=4, balance=True),
            "textbook probe (head output, eval crop)": dict(stage=False, views=1, balance=True),
            "recipe, no class balance": dict(stage=True, views=4, balance=False),
            "recipe, head output only": dict(stage=False, views=4, balance=True),
        }
        fitted = {}
        for name, kw in variants.items():
            fitted[name] = fit(pool_f, y_pool, no_local, share=0.0, config=config, n_classes=n, **kw)
            r = row(name, fitted[name])
            print(f"| {name} | {r['holdout_macro_f1']:.3f} | {r['fly_recall']:.3f} | {r['fly_precision']:.3f} "
                  f"| {r['clean_fp']:.3f} | {r['macro_f1']:.3f} |", flush=True)
        results = [row("recipe + mirror view at test time", next(iter(fitted.values())), tta=True)]
        if "phone" in extra:  # views 2-3: PhoneAugment instead of Augment
            feats = torch.cat([pool_f[:2], extra["phone"]["pool"]])
            results.append(row("recipe, phone-photo augmentation", fit(
                feats, y_pool, no_local, share=0.0, stage=True, views=4, balance=True, config=config, n_classes=n)))
        if "squash" in extra:  # views 0-1: the whole photo, at training and at test time
            sq = extra["squash"]
            feats = torch.cat([sq["pool"], pool_f[2:]])
            m = fit(feats, y_pool, no_local, share=0.0, stage=True, views=4, balance=True, config=config, n_classes=n)
            saved = hold_f, local_f
            hold_f, local_f = sq["holdout"], sq["local"]
            results.append(row("recipe, whole photo instead of the centre crop", m))
            hold_f, local_f = saved
        for r in results:
            print(f"| {r['name']} | {r['holdout_macro_f1']:.3f} | {r['fly_recall']:.3f} "
                  f"| {r['fly_precision']:.3f} | {r['clean_fp']:.3f} | {r['macro_f1']:.3f} |", flush=True)

    if "adapt" in args.part:
        print("\n| local photos (fly:clean) | local_share | holdout macro-F1 | fly-tipping recall | clean called an issue "
              "| local macro-F1 | draws |")
        print("|---|---|---|---|---|---|---|")
        by_label = {lab: [i for i, s in enumerate(local) if s.label == lab] for lab in (FLY, CLEAN)}
        for k in args.k:
            k_fly, k_clean = map(int, k.split(":"))
            results = {share: [] for share in args.shares}
            for seed in range(args.seeds):
                rng = np.random.default_rng(seed)
                rows = np.concatenate([rng.choice(by_label[FLY], k_fly, replace=False),
                                       rng.choice(by_label[CLEAN], k_clean, replace=False)])
                feats = torch.cat([pool_f, local_f[:, rows]], dim=1)
                y = torch.cat([y_pool, torch.tensor([classes.index(local[i].label) for i in rows])])
                is_local = np.r_[np.zeros(len(pool), bool), np.ones(len(rows), bool)]
                for share in args.shares:
                    m = fit(feats, y, is_local, share=share, stage=True, views=config.cache_views, balance=True,
                            config=config, n_classes=n)
                    results[share].append(row(f"{k}", m, local_rows=rows))
            for share, rs in results.items():
                mean = {key: np.mean([r[key] for r in rs]) for key in ("holdout_macro_f1", "fly_recall", "clean_fp", "macro_f1")}
                sd = {key: np.std([r[key] for r in rs], ddof=1) for key in ("fly_recall", "clean_fp")}
                print(f"| {k} | {share:g} | {mean['holdout_macro_f1']:.3f} | {mean['fly_recall']:.3f} ± {sd['fly_recall']:.3f} "
                      f"| {mean['clean_fp']:.3f} ± {sd['clean_fp']:.3f} | {mean['macro_f1']:.3f} | {len(rs)} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
