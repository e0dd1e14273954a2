"""What limits fly-tipping vs clean containers on a council's photos: pooling, input size, or a frozen backbone?

    python benchmarks/local_ceiling.py --local ../shared/datasets/local-reports-dev \
        --sizes 288 448 576 --draws 20 --finetune-draws 3

Local photos only (the council's 20 fly-tipping + 10 clean by default, seeded draws, judged on the rest), since
the question is whether the features can tell the two apart at all, whatever the bootstrap data:

- ``frozen``: ImageNet Lite0 features at each input side, from the recipe's eval crop (``crop``:
  resize to side / 0.875, centre crop) or the whole photo squashed to a square (``whole``: keeps the
  pavement beside the container), each level pooled by mean (today's recipe), max or GeM (p = 3),
  the probe being phase 1's normalised head at a fixed L2. Plus the ceiling: every local photo, 5-fold.
- ``finetune`` (at the first ``--sizes`` side): the last two stages and the 1x1 head conv trained
  too (AdamW, layer-wise LRs, ``training.data.Augment`` views, frozen BatchNorm statistics),
  GeM-pooled, on the same 20 + 10 draws.
- ``imagenet``: the checkpoint's own ImageNet classifier (1,000 classes) on today's features (288 px,
  eval crop, mean): each class's log-probability alone (the best of 1,000, chosen on the photos
  scored: optimistic), the summed probability of the classes a person would pick for dumped rubbish
  (``JUNK``: bags, boxes, crates, furniture, bedding) with and without the bin's own class
  subtracted (zero labels), and the probe on the 1,000 standardised log-probabilities (20 + 10 draws),
  beside today's probe on the same draws.
- ``dev`` (with ``--dev``): each pooling with civic-photos-dev as well, at the first side: its
  holdout's macro-F1, out of the box on the council's photos, and the 20 + 10 adaptation with the
  dev pool and ``local_share`` 0.5 (what a change of pooling would do to the served recipe's probe);
  then the dev macro-F1 over paired holdout/sample draws (``draws.py``), as the other recipe choices
  were judged: one 160-photo holdout cannot resolve a point.

Columns are ``local_heads.separability``'s: AUROC, the share of clean containers still called
fly-tipping at the threshold that keeps 90 % recall (on the photos scored: an optimistic floor), and
recall above the 80th clean percentile (the issue's 0.9 / 0.2 target needs both at once).
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch
from draws import draws as paired_draws
from draws import table_rows
from local_heads import separability
from PIL import Image
from torch import nn

from inference.metrics import classification_report
from inference.preprocess import PreprocessSpec, decode, to_array
from training import data
from training.config import TrainConfig
from training.features import batches, spec_for
from training.head import fit_head, sample_weights
from training.model import FEATURE_DIM, NormalizedLinear, create_model, new_head, weights_path

FLY = "fly_tipping"
POOLS = ("mean", "max", "gem3")
ASHCAN = 412  # ImageNet-1k "ashcan, trash can, garbage can, wastebin"
JUNK = {728: "plastic bag", 478: "carton", 519: "crate", 692: "packet", 831: "studio couch", 559: "folding chair",
        765: "rocking chair", 532: "dining table", 526: "desk", 894: "wardrobe", 750: "quilt", 721: "pillow",
        797: "sleeping bag", 791: "shopping cart", 876: "tub", 463: "bucket", 427: "barrel"}


def pool(m: torch.Tensor, how: str) -> torch.Tensor:
    flat = m.flatten(2)
    if how == "mean":
        return flat.mean(2)
    if how == "max":
        return flat.amax(2)
    return flat.clamp(min=1e-6).pow(3).mean(2).pow(1 / 3)


def maps(model, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(head map [N, 1280, h, w], last stage's map [N, 320, h, w]): what the recipe's two levels pool."""
    stage = model.blocks(model.bn1(model.conv_stem(x)))
    return model.bn2(model.conv_head(stage)), stage


def view(img: Image.Image, spec: PreprocessSpec, how: str) -> np.ndarray:
    if how == "whole":
        return to_array(img.resize((spec.input_size, spec.input_size), Image.Resampling.BICUBIC), spec)
    return data.eval_transform(img, spec)


def pooled_features(model, photos: list[Image.Image], spec: PreprocessSpec, how: str = "crop"
                    ) -> dict[str, torch.Tensor]:
    """Both levels of every photo's ``how`` view, pooled each way in ``POOLS``: {pooling: [N, 1600]}."""
    out = {p: [] for p in POOLS}
    with torch.no_grad():
        for b in batches(len(photos), 16):
            head_map, stage_map = maps(model, torch.from_numpy(np.stack([view(im, spec, how) for im in photos[b]])))
            for p in POOLS:
                out[p].append(torch.cat([pool(head_map, p), pool(stage_map, p)], 1))
    return {p: torch.cat(v) for p, v in out.items()}


def eval_batch(photos: list[Image.Image], idx, spec: PreprocessSpec) -> torch.Tensor:
    return torch.from_numpy(np.stack([view(photos[i], spec, "crop") for i in idx]))


def local_draws(y: np.ndarray, n: int, train: tuple[int, int]):
    fly, clean = train
    for d in range(n):
        rng = np.random.default_rng(d)
        tr = np.concatenate([rng.choice(np.flatnonzero(y == 1), fly, replace=False),
                             rng.choice(np.flatnonzero(y == 0), clean, replace=False)])
        yield d, tr, np.setdiff1d(np.arange(len(y)), tr)


def probe_scores(feats: torch.Tensor, y: np.ndarray, tr: np.ndarray, te: np.ndarray, l2: float) -> np.ndarray:
    """Phase 1's normalised two-level head, class-balanced, fitted on ``tr``; fly-tipping log-odds on ``te``."""
    head = new_head(2)
    yt = torch.from_numpy(y)
    fit_head(head, feats[None], yt, torch.from_numpy(tr), l2=l2, max_iter=300,
             weights=torch.from_numpy(sample_weights(y, np.zeros(len(y), bool), 0.0)))
    with torch.no_grad():
        z = head(feats[te])
    return (z[:, 1] - z[:, 0]).numpy()


def summarise(rows: list[tuple[float, float, float]]) -> str:
    a = np.array(rows)
    return (f"{a[:, 0].mean():.3f} ± {a[:, 0].std(ddof=1) / np.sqrt(len(a)) if len(a) > 1 else 0:.3f} "
            f"| {a[:, 1].mean():.2f} | {a[:, 2].mean():.2f}")


def frozen(args, photos: list[Image.Image], y: np.ndarray) -> None:
    model = create_model(2).eval()
    print("\n| side | view | pooling | AUROC (20 + 10) | clean called fly-tipping at 90 % recall "
          "| recall at 20 % clean | AUROC, every local photo 5-fold | encode s |")
    print("|---|---|---|---|---|---|---|---|")
    folds = data.stratified_folds(y, 5, 0)
    for side in args.sizes:
        spec = spec_for(TrainConfig().at_input_size(side))
        for how in ("crop", "whole"):
            t = time.perf_counter()
            pooled = pooled_features(model, photos, spec, how)
            seconds = time.perf_counter() - t
            for p, feats in pooled.items():
                rows = [separability(probe_scores(feats, y, tr, te, args.l2), y[te] == 1)
                        for _, tr, te in local_draws(y, args.draws, args.train)]
                oof = np.empty(len(y))
                for f in range(5):
                    oof[folds == f] = probe_scores(feats, y, np.flatnonzero(folds != f), np.flatnonzero(folds == f),
                                                   args.l2)
                print(f"| {side} | {how} | {p} | {summarise(rows)} | {separability(oof, y == 1)[0]:.3f} "
                      f"| {seconds:.0f} |", flush=True)


def imagenet(args, photos: list[Image.Image], y: np.ndarray) -> None:
    """What the checkpoint's ImageNet classes say about the council's photos (module docstring)."""
    checkpoint = torch.load(weights_path("lite0"), map_location="cpu", weights_only=True)
    weight, bias = checkpoint["_fc.weight"].float(), checkpoint["_fc.bias"].float()
    feats = pooled_features(create_model(2).eval(), photos, spec_for(TrainConfig()))["mean"]
    with torch.no_grad():
        log_p = (feats[:, :FEATURE_DIM] @ weight.T + bias).log_softmax(1)
    p = log_p.exp().numpy()
    best = max(range(1000), key=lambda j: abs(separability(log_p[:, j].numpy(), y == 1)[0] - 0.5))
    print("\n| score (fly-tipping vs clean containers) | AUROC | clean called fly-tipping at 90 % recall "
          "| recall at 20 % clean |\n|---|---|---|---|")
    one, junk = log_p[:, best].numpy(), p[:, list(JUNK)].sum(1)
    zero_label = {f"best single ImageNet class (#{best}, chosen on these photos)": (
                      one if separability(one, y == 1)[0] >= 0.5 else -one),
                  f"P(any of the {len(JUNK)} rubbish classes), no labels": junk,
                  "the same minus P(ashcan), no labels": junk - p[:, ASHCAN]}
    for name, score in zero_label.items():
        print(f"| {name} | {summarise([separability(score, y == 1)])} |")
    rows = {"today's probe (1,600 features)": [], "probe on the 1,000 log-probabilities": []}
    for _, tr, te in local_draws(y, args.draws, args.train):
        rows["today's probe (1,600 features)"].append(separability(probe_scores(feats, y, tr, te, args.l2),
                                                                   y[te] == 1))
        mu, sd = log_p[tr].mean(0), log_p[tr].std(0) + 1e-6
        x = (log_p - mu) / sd
        head = NormalizedLinear(1000, 2)
        fit_head(head, x[None], torch.from_numpy(y), torch.from_numpy(tr), l2=args.l2, max_iter=300,
                 weights=torch.from_numpy(sample_weights(y, np.zeros(len(y), bool), 0.0)))
        with torch.no_grad():
            z = head(x[te])
        rows["probe on the 1,000 log-probabilities"].append(separability((z[:, 1] - z[:, 0]).numpy(), y[te] == 1))
    for name, got in rows.items():
        print(f"| {name}, {args.train[0]} + {args.train[1]} local photos | {summarise(got)} |", flush=True)


class GeMLite0(nn.Module):
    """Lite0's head map, GeM-pooled, normalised, then one logit (fly-tipping vs clean)."""

    def __init__(self):
        super().__init__()
        self.net = create_model(2)
        self.fc = nn.Linear(1280, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        head_map, _ = maps(self.net, x)
        return self.fc(nn.functional.normalize(pool(head_map, "gem3"), dim=1) * 10).squeeze(1)


def finetune(args, photos: list[Image.Image], y: np.ndarray) -> None:
    spec = spec_for(TrainConfig().at_input_size(args.sizes[0]))
    augment = data.Augment()
    small = [im.copy() for im in photos]
    for im in small:
        im.thumbnail((spec.resize_size * 2, spec.resize_size * 2))
    print("\n| draw | epochs | trained | AUROC | clean called fly-tipping at 90 % recall | recall at 20 % clean "
          "| frozen GeM probe's AUROC, same draw | s |")
    print("|---|---|---|---|---|---|---|---|")
    frozen_feats = pooled_features(create_model(2).eval(), photos, spec)["gem3"]  # the same-draw comparison
    results = []
    for d, tr, te in local_draws(y, args.finetune_draws, args.train):
        torch.manual_seed(d)
        rng = np.random.default_rng(d)
        net = GeMLite0()
        for p in net.net.parameters():
            p.requires_grad = False
        tuned = [q for m in (*net.net.blocks[5:], net.net.conv_head, net.net.bn2) for q in m.parameters()]
        for q in tuned:
            q.requires_grad = True
        opt = torch.optim.AdamW([{"params": net.fc.parameters(), "lr": 3e-3}, {"params": tuned, "lr": 3e-4}],
                                weight_decay=1e-2)
        pos_weight = torch.tensor((y[tr] == 0).sum() / (y[tr] == 1).sum())
        t = time.perf_counter()
        for _ in range(args.epochs):
            net.train()
            for m in net.modules():  # BatchNorm keeps ImageNet statistics: batches of 10 are too small
                if isinstance(m, nn.BatchNorm2d):
                    m.eval()
            order = rng.permutation(tr)
            for b in batches(len(order), 10):
                idx = order[b]
                x = torch.from_numpy(np.stack([augment(small[i], spec, rng) for i in idx]))
                target = torch.from_numpy(y[idx]).float()
                loss = nn.functional.binary_cross_entropy_with_logits(
                    net(x), target, weight=torch.where(target > 0, pos_weight, 1.0))
                opt.zero_grad()
                loss.backward()
                opt.step()
        net.eval()
        with torch.no_grad():
            scores = np.concatenate([net(eval_batch(photos, te[b], spec)).numpy() for b in batches(len(te), 16)])
        frozen_auroc = separability(probe_scores(frozen_feats, y, tr, te, args.l2), y[te] == 1)[0]
        row = separability(scores, y[te] == 1)
        results.append(row)
        print(f"| {d} | {args.epochs} | blocks 5-6, head conv, BN affine, new logit | {row[0]:.3f} | {row[1]:.2f} "
              f"| {row[2]:.2f} | {frozen_auroc:.3f} | {time.perf_counter() - t:.0f} |", flush=True)
    print(f"| mean | | | {summarise(results)} | | |")


def with_dev(args, photos: list[Image.Image], y: np.ndarray) -> None:
    """Each pooling on civic-photos-dev too, at the first side, eval crop, fixed L2: the dev holdout's
    macro-F1 trained on the dev pool, and the 20 + 10 adaptation (dev pool + local draw, local_share 0.5)
    scored on the council's other photos."""
    side = args.sizes[0]
    spec = spec_for(TrainConfig().at_input_size(side))
    model = create_model(2).eval()
    dev = sorted(data.load_samples(args.dev), key=lambda s: str(s.path))
    classes = data.class_names(dev)
    hold_s, pool_s = data.stratified_take(dev, per_class=args.holdout_per_class,
                                         seed=TrainConfig().split_seed)
    fly, clean = classes.index(FLY), classes.index("no_issue")

    t = time.perf_counter()
    f_dev = pooled_features(model, [decode(s.path) for s in dev], spec)
    f_local = pooled_features(model, photos, spec)
    seconds = time.perf_counter() - t
    index = {str(s.path): i for i, s in enumerate(dev)}
    pool_rows, hold_rows = ([index[str(s.path)] for s in part] for part in (pool_s, hold_s))
    f_pool = {p: f[pool_rows] for p, f in f_dev.items()}
    f_hold = {p: f[hold_rows] for p, f in f_dev.items()}
    y_dev = np.array([classes.index(s.label) for s in dev])
    y_pool, y_hold = y_dev[pool_rows], y_dev[hold_rows]
    y_local = np.where(y == 1, fly, clean)

    def fit(feats: torch.Tensor, labels: np.ndarray, local: np.ndarray) -> torch.nn.Module:
        head = new_head(len(classes))
        fit_head(head, feats[None], torch.from_numpy(labels), torch.arange(len(labels)), l2=args.l2, max_iter=300,
                 weights=torch.from_numpy(sample_weights(labels, local, 0.5)))
        return head

    print(f"\n| pooling ({side} px, eval crop) | dev holdout macro-F1 | out of the box: fly-tipping recall / clean "
          f"called an issue | + 20 : 10 local: fly-tipping recall / clean called an issue | AUROC (20 + 10) |")
    print("|---|---|---|---|---|")
    for p in POOLS:
        with torch.no_grad():
            base = fit(f_pool[p], y_pool, np.zeros(len(y_pool), bool))
            f1 = classification_report(y_hold, base(f_hold[p]).numpy(), classes)["macro_f1"]
            pred = base(f_local[p]).argmax(1).numpy()
        ood = ((pred[y == 1] == fly).mean(), (pred[y == 0] != clean).mean())
        rows = []
        for _, tr, te in local_draws(y, args.draws, args.train):
            feats = torch.cat([f_pool[p], f_local[p][tr]])
            labels = np.concatenate([y_pool, y_local[tr]])
            head = fit(feats, labels, np.r_[np.zeros(len(y_pool), bool), np.ones(len(tr), bool)])
            with torch.no_grad():
                z = head(f_local[p][te]).numpy()
            pred, is_fly = z.argmax(1), y[te] == 1
            rows.append(((pred[is_fly] == fly).mean(), (pred[~is_fly] != clean).mean(),
                         separability(z[:, fly] - z[:, clean], is_fly)[0]))
        a = np.array(rows).mean(0)
        print(f"| {p} | {f1:.3f} | {ood[0]:.3f} / {ood[1]:.3f} | {a[0]:.3f} / {a[1]:.3f} | {a[2]:.3f} |", flush=True)
    print(f"({len(dev)} dev photos and {len(photos)} local ones encoded in {seconds:.0f} s; {args.draws} draws)")

    print("\n| K per class | pooling | dev macro-F1 (mean of paired draws) | vs mean pooling | draws won / lost |")
    print("|---|---|---|---|---|")
    for k in args.dev_per_class:
        scores = {p: [] for p in POOLS}
        for held, rows in paired_draws(dev, k, holdout_seeds=args.dev_holdout_seeds, seeds=args.dev_seeds,
                                       holdout_per_class=args.holdout_per_class):
            for p in POOLS:
                head = fit(f_dev[p][rows], y_dev[rows.numpy()], np.zeros(len(rows), bool))
                with torch.no_grad():
                    probs = head(f_dev[p][held]).numpy()
                scores[p].append(classification_report(y_dev[held.numpy()], probs, classes)["macro_f1"])
        print("\n".join(table_rows(k, scores)), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--local", required=True)
    parser.add_argument("--part", nargs="+", default=["frozen", "finetune"], choices=("frozen", "finetune", "imagenet", "dev"))
    parser.add_argument("--dev", help="civic-photos-dev, for --part dev")
    parser.add_argument("--holdout-per-class", type=int, default=40, help="the dev holdout (the grid's fixed one)")
    parser.add_argument("--dev-per-class", nargs="+", default=["10", "all"], help="--part dev's paired draws: K")
    parser.add_argument("--dev-holdout-seeds", type=int, default=8)
    parser.add_argument("--dev-seeds", type=int, default=4, help="K-per-class draws per holdout")
    parser.add_argument("--sizes", nargs="+", type=int, default=[288, 448, 576])
    parser.add_argument("--draws", type=int, default=20)
    parser.add_argument("--finetune-draws", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--train", nargs=2, type=int, default=[20, 10], metavar=("FLY", "CLEAN"),
                        help="local photos trained on per draw")
    parser.add_argument("--l2", type=float, default=1e-3, help="the probe's head L2 (the middle CV choice)")
    args = parser.parse_args(argv)
    samples = data.load_samples(args.local)
    photos = [decode(s.path) for s in samples]
    y = np.array([int(s.label == FLY) for s in samples])
    print(f"{len(y)} local photos ({y.sum()} fly-tipping, {len(y) - y.sum()} clean); torch threads "
          f"{torch.get_num_threads()}")
    if "frozen" in args.part:
        frozen(args, photos, y)
    if "finetune" in args.part:
        finetune(args, photos, y)
    if "imagenet" in args.part:
        imagenet(args, photos, y)
    if "dev" in args.part:
        with_dev(args, photos, y)
    return 0


if __name__ == "__main__":
    sys.exit(main())
