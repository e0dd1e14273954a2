"""Domain-aware heads for a council's first labels, and how separable its photos are at all.

    python benchmarks/local_heads.py --dev ../shared/datasets/civic-photos-dev \
        --local ../shared/datasets/local-reports-dev --feature-cache .local/feature-cache [--squash]

Companion to ``local_bench.py --part adapt`` (same cached features, same
seeded draws of K local photos, same holdout). Each variant changes only
what the head does with the local photos; photos whose nearest training
photo (cosine, the open set's normalised features) is a local one are
"gated" and get the local treatment, the rest the global head:

- ``share 0.5``: today's recipe (phase 1, ``local_share`` 0.5);
- ``bias on OOF``: a per-class logit offset (classes the local photos have)
  fitted on the local photos' out-of-fold logits of that head: a class-prior
  correction towards the local labels;
- ``residual on OOF``: a small logistic head on the local photos' features on
  top of those out-of-fold logits (L2 cross-validated);
- ``residual on dev-only``: the same on top of a head trained without local
  photos (whose logits on them are out-of-sample by construction);
- ``local-only head``: a head fitted on the local photos alone;
- ``kNN5``: a vote of the 5 nearest local training photos.

Besides the argmax scores, three threshold-free columns on the local photos
not drawn, from the fly-tipping-vs-clean log-odds: AUROC, the share of clean
containers called fly-tipping at the threshold that keeps 90 % recall, and
the recall at the threshold that calls 20 % of clean containers fly-tipping
(both thresholds are oracles, chosen on the photos scored: an upper bound on
what any threshold rule could do with that score). The last rows are a
ceiling: a local-only head cross-validated (5-fold) over every local photo,
on the centre crop and (``--squash``, encoded once into the cache) on the
whole photo.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
import torch
import torch.nn.functional as F

from local_bench import CLEAN, FLY, extra_views, fit, load_sets, local_scores, predict
from training import data
from training.config import TrainConfig
from training.features import Encoder, Images
from training.head import cross_validate_head, fit_head, sample_weights
from training.metrics import classification_report, softmax
from training.model import create_model, new_head
from training.openset import normalise

L2_CHOICES = (1e-3, 1e-2, 1e-1)


def fit_on_offset(x: torch.Tensor, y: torch.Tensor, offset: torch.Tensor, *, l2: float, n_classes: int,
                  bias_only: bool = False, classes_present=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Logistic regression ``offset + x W^T + b`` on fixed ``offset`` logits (L-BFGS, L2 on W, or on b alone
    with ``bias_only``, where ``b`` is restricted to ``classes_present``)."""
    W = torch.zeros(n_classes, x.shape[1], requires_grad=not bias_only)
    b = torch.zeros(n_classes, requires_grad=True)
    mask = torch.ones(n_classes)
    if classes_present is not None:
        mask = torch.zeros(n_classes)
        mask[list(classes_present)] = 1
    params = [b] if bias_only else [W, b]
    opt = torch.optim.LBFGS(params, lr=1, max_iter=300, tolerance_grad=1e-6, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        z = offset + x @ W.T + b * mask
        loss = F.cross_entropy(z, y) + l2 * (b.pow(2).sum() if bias_only else W.pow(2).sum())
        loss.backward()
        return loss

    opt.step(closure)
    return W.detach(), (b * mask).detach()


def cv_fit_on_offset(xv: torch.Tensor, y: np.ndarray, off: torch.Tensor, n_classes: int):
    """:func:`fit_on_offset` over every view (``xv`` [V, M, D], ``off`` [V, M, C]), L2 chosen by
    stratified k-fold NLL on view 0; returns (W, b)."""
    folds = min(5, int(np.bincount(y).min()))
    flat = lambda t, rows: t[:, rows].flatten(0, 1)  # noqa: E731
    yt = torch.from_numpy(y)
    best = (np.inf, L2_CHOICES[-1])
    if folds >= 2:
        fold_of = data.stratified_folds(y, folds, 0)
        for l2 in L2_CHOICES:
            total = 0.0
            for f in range(folds):
                tr = fold_of != f
                W, b = fit_on_offset(flat(xv, tr), yt[tr].repeat(len(xv)), flat(off, tr), l2=l2, n_classes=n_classes)
                z = off[0, ~tr] + xv[0, ~tr] @ W.T + b
                total += F.cross_entropy(z, yt[~tr], reduction="sum").item()
            best = min(best, (total, l2))
    every = np.ones(len(y), bool)
    return fit_on_offset(flat(xv, every), yt.repeat(len(xv)), flat(off, every), l2=best[1], n_classes=n_classes)


def separability(log_odds: np.ndarray, is_fly: np.ndarray) -> tuple[float, float, float]:
    """AUROC; clean share above the threshold keeping 90 % recall; recall above the 80th clean percentile."""
    pos, neg = log_odds[is_fly], log_odds[~is_fly]
    auroc = float((pos[:, None] > neg[None]).mean() + 0.5 * (pos[:, None] == neg[None]).mean())
    return auroc, float((neg >= np.quantile(pos, 0.1)).mean()), float((pos > np.quantile(neg, 0.8)).mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dev", required=True)
    parser.add_argument("--local", required=True)
    parser.add_argument("--feature-cache", default=".local/feature-cache")
    parser.add_argument("--k", nargs="+", default=["5:5", "20:10"])
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--squash", action="store_true", help="also the ceiling on whole-photo views (encodes them)")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    config = TrainConfig(data=args.dev, feature_cache=args.feature_cache)
    local, classes, holdout, pool = load_sets(args.dev, args.local, holdout_per_class=40,
                                              split_seed=config.split_seed)
    encoder = Encoder(config, torch.device("cpu"))
    model = create_model(len(classes)).eval()
    images = {n: Images(s, encoder.spec, classes, n) for n, s in (("pool", pool), ("holdout", holdout), ("local", local))}
    pool_f = encoder.feature_views(model, images["pool"], config.cache_views)
    hold_f = encoder.feature_views(model, images["holdout"], 2)
    local_f = encoder.feature_views(model, images["local"], config.cache_views)
    y_pool = torch.tensor([classes.index(s.label) for s in pool])
    y_hold = np.array([classes.index(s.label) for s in holdout])
    y_local = np.array([classes.index(s.label) for s in local])
    n, fly, clean = len(classes), classes.index(FLY), classes.index(CLEAN)
    head = new_head(n)
    chunks = head.chunks
    normed = lambda f: torch.stack([head.normalize(v) for v in f])  # noqa: E731  (what the head sees)
    pool_u, hold_u, local_u = (normalise(f[0], chunks) for f in (pool_f, hold_f, local_f))
    local_n, hold_n = normed(local_f), head.normalize(hold_f[0])
    log_odds = lambda p: np.log(p[:, fly] + 1e-9) - np.log(p[:, clean] + 1e-9)  # noqa: E731

    dev_only = fit(pool_f, y_pool, np.zeros(len(pool), bool), share=0.0, stage=True, views=config.cache_views,
                   balance=True, config=config, n_classes=n)
    head0, t0, _ = dev_only
    with torch.no_grad():
        g0_local = torch.stack([head0(v) for v in local_f]) / t0  # [V, L, C], at its temperature
        g0_hold = head0(hold_f[0]) / t0

    print("| local photos (fly:clean) | variant | holdout macro-F1 | fly-tipping recall | clean called an issue "
          "| local macro-F1 | AUROC | clean called fly-tipping at 90 % recall | recall at 20 % clean | draws |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    by_label = {lab: [i for i, s in enumerate(local) if s.label == lab] for lab in (FLY, CLEAN)}
    for k in args.k:
        k_fly, k_clean = map(int, k.split(":"))
        results: dict[str, list] = {}
        for seed in range(args.seeds):  # the draws of local_bench.py --part adapt
            rng = np.random.default_rng(seed)
            rows = np.concatenate([rng.choice(by_label[FLY], k_fly, replace=False),
                                   rng.choice(by_label[CLEAN], k_clean, replace=False)])
            rest = np.setdiff1d(np.arange(len(local)), rows)
            yl = y_local[rows]
            bank = local_u[rows]
            gate_rest = ((local_u[rest] @ bank.T).max(1).values > (local_u[rest] @ pool_u.T).max(1).values).numpy()
            gate_hold = ((hold_u @ bank.T).max(1).values > (hold_u @ pool_u.T).max(1).values).numpy()

            feats = torch.cat([pool_f, local_f[:, rows]], dim=1)
            y = torch.cat([y_pool, torch.from_numpy(yl)])
            is_local = np.r_[np.zeros(len(pool), bool), np.ones(len(rows), bool)]
            w = torch.from_numpy(sample_weights(y.numpy(), is_local, 0.5))
            hs = new_head(n)
            folds = min(config.cv_folds, int(np.bincount(y.numpy()).min()))
            _, l2, ts, oof = cross_validate_head(hs, feats, y, folds=folds, seed=0, max_iter=config.head_max_iter,
                                                 weights=w)
            fit_head(hs, feats, y, torch.arange(len(y)), l2=l2, max_iter=config.head_max_iter, weights=w)
            oof_local = torch.from_numpy(oof[len(pool):]) / ts
            with torch.no_grad():
                gs_rest, gs_hold = hs(local_f[0, rest]) / ts, hs(hold_f[0]) / ts
            base_rest, base_hold = softmax(gs_rest.numpy(), 1.0), softmax(gs_hold.numpy(), 1.0)

            def score(name, p_hold, p_rest, gated=True):
                if gated:
                    p_hold = np.where(gate_hold[:, None], p_hold, base_hold)
                    p_rest = np.where(gate_rest[:, None], p_rest, base_rest)
                truth = [local[i].label for i in rest]
                results.setdefault(name, []).append(
                    {"holdout": classification_report(y_hold, p_hold, classes)["macro_f1"],
                     **local_scores(p_rest, truth, classes),
                     "sep": separability(log_odds(p_rest), y_local[rest] == fly),
                     "gate": gate_rest.mean()})

            score("share 0.5 (today's recipe)", base_hold, base_rest, gated=False)
            score("share 0.5, mirror view at test time", predict((hs, ts, True), hold_f, tta=True),
                  predict((hs, ts, True), local_f[:, rest], tta=True), gated=False)
            _, b = fit_on_offset(torch.zeros(len(rows), 1), torch.from_numpy(yl), oof_local, l2=1e-2, n_classes=n,
                                 bias_only=True, classes_present=np.unique(yl))
            score("bias on OOF, gated", softmax((gs_hold + b).numpy(), 1.0), softmax((gs_rest + b).numpy(), 1.0))
            W, b = cv_fit_on_offset(local_n[:1, rows], yl, oof_local[None], n)
            score("residual on OOF, gated", softmax((gs_hold + hold_n @ W.T + b).numpy(), 1.0),
                  softmax((gs_rest + local_n[0, rest] @ W.T + b).numpy(), 1.0))
            W, b = cv_fit_on_offset(local_n[:, rows], yl, g0_local[:, rows], n)
            score("residual on dev-only head, gated", softmax((g0_hold + hold_n @ W.T + b).numpy(), 1.0),
                  softmax((g0_local[0, rest] + local_n[0, rest] @ W.T + b).numpy(), 1.0))
            W, b = cv_fit_on_offset(local_n[:, rows], yl, torch.zeros(len(local_f), len(rows), n), n)
            score("local-only head, gated", softmax((hold_n @ W.T + b).numpy(), 1.0),
                  softmax((local_n[0, rest] @ W.T + b).numpy(), 1.0))

            def vote(queries):
                top = (queries @ bank.T).topk(min(5, len(rows)), dim=1).indices.numpy()
                counts = np.stack([np.bincount(yl[t], minlength=n) for t in top]) + 0.1
                return counts / counts.sum(1, keepdims=True)

            score("kNN5 vote of the local photos, gated", vote(hold_u), vote(local_u[rest]))
        for name, rs in results.items():
            mean = lambda key: np.mean([r[key] for r in rs])  # noqa: E731
            sd = lambda key: np.std([r[key] for r in rs], ddof=1)  # noqa: E731
            sep = np.mean([r["sep"] for r in rs], axis=0)
            print(f"| {k} | {name} | {mean('holdout'):.3f} "
                  f"| {mean('fly_recall'):.3f} ± {sd('fly_recall'):.3f} | {mean('clean_fp'):.3f} ± {sd('clean_fp'):.3f} "
                  f"| {mean('macro_f1'):.3f} | {sep[0]:.3f} | {sep[1]:.3f} | {sep[2]:.3f} | {len(rs)} |", flush=True)
        print(f"gate: {np.mean([r['gate'] for r in results['bias on OOF, gated']]):.2f} of the local photos not drawn "
              f"have a local nearest neighbour", file=sys.stderr)

    fold_of = data.stratified_folds(y_local, 5, 0)
    ceilings = [("centre crop", local_n)]
    if args.squash:
        squash = extra_views(encoder, model, images["local"], "squash")
        ceilings.append(("whole photo", normed(squash)))
    for name, xn in ceilings:
        scores = np.zeros((len(local), n), np.float32)
        for f in range(5):
            tr = fold_of != f
            W, b = cv_fit_on_offset(xn[:, tr], y_local[tr], torch.zeros(len(xn), int(tr.sum()), n), n)
            scores[~tr] = softmax((xn[0, ~tr] @ W.T + b).numpy(), 1.0)
        s = local_scores(scores, [x.label for x in local], classes)
        sep = separability(log_odds(scores), y_local == fly)
        print(f"| all, 5-fold (~125:43) | ceiling: local-only head, {name} | — | {s['fly_recall']:.3f} "
              f"| {s['clean_fp']:.3f} | {s['macro_f1']:.3f} | {sep[0]:.3f} | {sep[1]:.3f} | {sep[2]:.3f} | 1 |",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
