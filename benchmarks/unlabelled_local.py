"""Can the council's unlabelled reports close the gap? Domain alignment and transductive learning.

    python benchmarks/unlabelled_local.py --dev ../shared/datasets/civic-photos-dev \
        --local ../shared/datasets/local-reports-dev --feature-cache .local/feature-cache

A council has every report it ever received, verified or not. This asks
whether those unlabelled photos, used without labels, help the recipe on the
council's own photos. Each row fits phase 1's head (``local_bench.fit``:
class-balanced, both feature levels, the eval crop and its mirror image,
cross-validated L2) on civic-photos-dev's pool, out of the box or with K
verified local photos (seeded draws, ``local_share`` 0.5), and scores the rest
of local-reports-dev. Every local photo counts as unlabelled (it is what the
council would have); the verified ones are the only labels.

- ``none``: the recipe, **the baseline of this run**;
- ``centre``: each domain's mean of the normalised features subtracted (the dev pool's from dev photos,
  the local photos' from local ones) before the head;
- ``standardise``: the same, then each feature divided by its domain's spread (per-feature CORAL);
- ``adabn``: BatchNorm's statistics re-estimated on the local photos (AdaBN, Li et al. 2016) and the
  local photos encoded again with them; dev photos keep ImageNet's;
- ``self-train`` (with labels): the head's most confident 40 % of the unlabelled local photos added
  with its own labels as local photos, and the head fitted again;
- ``spread`` (with labels): label spreading over a 10-nearest-neighbour graph of the local photos
  (Zhou et al. 2004), from the verified ones alone.

"AUROC" ranks fly-tipping against clean containers by P(fly-tipping): how well the photos can be told
apart at any threshold.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
import torch
from local_bench import fit, load_sets, local_scores, predict
from local_heads import separability

from training.config import TrainConfig
from training.features import Encoder, Images
from training.metrics import classification_report
from training.model import FEATURE_DIM, create_model
from training.openset import normalise

FLY, CLEAN = "fly_tipping", "no_issue"


def align(feats: torch.Tensor, domain: torch.Tensor, how: str, chunks: tuple[int, ...]) -> torch.Tensor:
    """``feats`` ([views, N, D]) as the head would see them, re-centred (and rescaled) on ``domain``'s eval crops."""
    x, ref = normalise(feats, chunks), normalise(domain[0], chunks)
    x = x - ref.mean(0)
    return x / (ref.std(0) + 1e-4) * ref.std(0).mean() if how == "standardise" else x


def adabn_features(encoder: Encoder, images: Images) -> torch.Tensor:
    """The eval crop and its mirror image of ``images``, through Lite0 with BatchNorm's running statistics
    re-estimated on those same eval crops (no cache: the statistics depend on the set)."""
    net = create_model(2).eval()
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # a plain average over every batch
            m.train()
    with torch.no_grad():
        encoder.forward_batches(net.features, len(images), images.eval_arrays, "BatchNorm statistics")
    net.eval()
    idx = list(range(len(images)))
    return torch.stack([encoder.forward_batches(net.features, len(images),
                                                lambda sl, v=v: encoder.view_arrays(images, v, idx[sl]), f"view {v}")
                        for v in (0, 1)])


def spread(feats: torch.Tensor, rows: np.ndarray, is_fly: np.ndarray, k: int = 10, alpha: float = 0.9) -> np.ndarray:
    """Label spreading's P(fly-tipping) for every photo of ``feats`` ([N, D] normalised), from ``rows``."""
    sims = (feats @ feats.T).numpy().astype(np.float64)
    n, k = len(sims), min(k, len(sims) - 1)
    near = np.argsort(-sims, 1)[:, 1:k + 1]
    w = np.zeros((n, n))
    for i in range(n):
        w[i, near[i]] = np.exp((sims[i, near[i]] - 1) / 0.05)
    w = (w + w.T) / 2
    d = w.sum(1) + 1e-12
    seeds = np.zeros((n, 2))
    seeds[rows, is_fly.astype(int)] = 1
    f = np.linalg.solve(np.eye(n) - alpha * w / np.sqrt(np.outer(d, d)), seeds)
    f = f / (f.sum(0, keepdims=True) + 1e-12)  # each class's mass to one (class mass normalisation)
    return f[:, 1] / (f.sum(1) + 1e-12)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dev", required=True)
    parser.add_argument("--local", required=True)
    parser.add_argument("--feature-cache", default=".local/feature-cache")
    parser.add_argument("--holdout-per-class", type=int, default=40)
    parser.add_argument("--k", nargs="+", default=["0:0", "5:5", "20:10"], help="verified local photos, fly:clean")
    parser.add_argument("--draws", type=int, default=8, help="seeded draws of the verified photos per K")
    parser.add_argument("--share", type=float, default=0.5, help="local_share of the verified photos")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    config = TrainConfig(data=args.dev, feature_cache=args.feature_cache)
    local, classes, holdout, pool = load_sets(args.dev, args.local, holdout_per_class=args.holdout_per_class,
                                              split_seed=config.split_seed)
    encoder = Encoder(config, torch.device("cpu"))
    net = create_model(len(classes)).eval()
    images = {name: Images(s, encoder.spec, classes, name) for name, s in (("pool", pool), ("holdout", holdout),
                                                                          ("local", local))}
    pool_f, hold_f, local_f = (encoder.feature_views(net, images[n], 2) for n in ("pool", "holdout", "local"))
    chunks = (FEATURE_DIM, pool_f.shape[-1] - FEATURE_DIM)
    y_pool = torch.tensor([classes.index(s.label) for s in pool])
    y_hold = np.array([classes.index(s.label) for s in holdout])
    y_local = np.array([classes.index(s.label) for s in local])
    fly, clean = classes.index(FLY), classes.index(CLEAN)
    variants = {"none": (pool_f, hold_f, local_f), "adabn": (pool_f, hold_f, adabn_features(encoder, images["local"]))}
    for how in ("centre", "standardise"):
        variants[how] = (align(pool_f, pool_f, how, chunks), align(hold_f, pool_f, how, chunks),
                         align(local_f, local_f, how, chunks))
    bank = normalise(local_f[0], chunks)

    def fit_with(p_f: torch.Tensor, l_f: torch.Tensor, rows: np.ndarray, labels: np.ndarray):
        """Phase 1's head on the dev pool plus the local photos ``rows`` labelled ``labels``."""
        return fit(torch.cat([p_f, l_f[:, rows]], 1), torch.cat([y_pool, torch.from_numpy(labels)]),
                   np.r_[np.zeros(len(pool), bool), np.ones(len(rows), bool)], share=args.share, stage=True,
                   views=2, balance=True, config=config, n_classes=len(classes))

    def score(p_local: np.ndarray, p_hold: np.ndarray | None, rest: np.ndarray) -> dict:
        truth = y_local[rest]
        kept = (truth == fly) | (truth == clean)
        out = {"auroc": separability(p_local[rest][kept, fly], truth[kept] == fly)[0]}
        if p_hold is not None:
            out |= local_scores(p_local[rest], [classes[i] for i in truth], classes)
            out["holdout"] = classification_report(y_hold, p_hold, classes)["macro_f1"]
        return out

    print("| K (fly : clean) | variant | fly-tipping recall | clean called an issue | AUROC (± s.e.) "
          "| dev holdout macro-F1 | draws |")
    print("|---|---|---|---|---|---|---|")
    for k in args.k:
        n_fly, n_clean = map(int, k.split(":"))
        draws = args.draws if n_fly + n_clean else 1
        rows_of = [np.concatenate([rng.choice(np.flatnonzero(y_local == fly), n_fly, replace=False),
                                   rng.choice(np.flatnonzero(y_local == clean), n_clean, replace=False)])
                   for rng in map(np.random.default_rng, range(draws))]
        results: dict[str, list[dict]] = {}
        for rows in rows_of:
            rest = np.setdiff1d(np.arange(len(local)), rows)
            for name, (p_f, h_f, l_f) in variants.items():
                m = fit_with(p_f, l_f, rows, y_local[rows])
                p_local = predict(m, l_f)
                results.setdefault(name, []).append(score(p_local, predict(m, h_f), rest))
                if name != "none" or not len(rows):
                    continue
                # self-training: the most confident 40 % of the unlabelled local photos, with the head's labels
                unlabelled = rest[np.argsort(-p_local[rest].max(1))[:int(0.4 * len(rest))]]
                m = fit_with(p_f, l_f, np.r_[rows, unlabelled], np.r_[y_local[rows], p_local[unlabelled].argmax(1)])
                results.setdefault("self-train", []).append(score(predict(m, l_f), predict(m, h_f), rest))
                p_spread = np.zeros((len(local), len(classes)))
                p_spread[:, fly] = spread(bank, rows, y_local[rows] == fly)
                p_spread[:, clean] = 1 - p_spread[:, fly]
                results.setdefault("spread", []).append(score(p_spread, None, rest))
        for name, got in results.items():
            mean = lambda key: f"{np.mean([g[key] for g in got]):.3f}" if key in got[0] else "—"  # noqa: E731
            se = np.std([g["auroc"] for g in got]) / max(1, len(got) - 1) ** 0.5
            print(f"| {k} | {name} | {mean('fly_recall')} | {mean('clean_fp')} | {mean('auroc')} ± {se:.3f} "
                  f"| {mean('holdout')} | {len(got)} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
