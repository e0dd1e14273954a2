"""Lite0 against the two larger EfficientNet-Lite backbones on a council's photos, with their serving cost.

    nice -n 19 .venv/bin/python benchmarks/backbone_bench.py --dev ../shared/datasets/civic-photos-dev \
        --local ../shared/datasets/local-reports-dev --feature-cache .local/feature-cache \
        --backbones lite0@288 lite1@240 lite2@260 [--dev-subset 400]

Tests the conclusion of ``local_heads.py`` (the frozen Lite0 features are
what limits fly-tipping against clean containers) on ``--backbone lite1`` and
``lite2``. To keep the encodes affordable on a shared CPU, every backbone
sees ONE view per photo: the eval centre crop (what serving feeds the
model), both feature levels, at the side given after ``@`` (default: the
backbone's native side). Features go through the recipe's
:class:`training.features.FeatureCache`, so ``lite0@288`` reuses the cache
the other benchmarks filled. Per backbone:

- out of the box: phase 1's head (class-balanced, k-fold CV) on
  civic-photos-dev only; its fixed 40-per-class holdout and the local photos;
- adaptation: + K local photos per class (the seeded draws of
  ``local_bench.py --part adapt``), ``local_share`` 0.5, scored on the local
  photos not drawn, with ``local_heads.py``'s threshold-free AUROC;
- serving: ONNX export (``training.export``), model.onnx size, and ONNX
  Runtime model time at batch 1 on one intra-op thread (as served on CPU).

With ``--dev-subset N`` only N civic-photos-dev photos (seeded, the holdout
always among them) are encoded: the rows then say so.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from local_bench import CLEAN, FLY, fit, load_sets, local_scores, predict
from local_heads import separability
from training.config import TrainConfig
from training.export import export_model
from training.features import Encoder, Images, spec_for
from training.metrics import classification_report
from training.model import BACKBONES, create_model


def parse_backbone(spec: str) -> tuple[str, int]:
    name, _, size = spec.partition("@")
    if name not in BACKBONES:
        raise SystemExit(f"unknown backbone {name!r}; choose {', '.join(BACKBONES)}")
    return name, int(size) if size else BACKBONES[name][3]


def serving_cost(model: torch.nn.Module, config: TrainConfig, classes: list[str], runs: int) -> dict:
    """Export to ONNX in a temporary folder (removed after); size and ORT model time at batch 1, 1 thread."""
    import onnxruntime as ort

    from inference.runtime import session_options

    with tempfile.TemporaryDirectory(prefix="backbone-bench-") as tmp:
        start = time.perf_counter()
        export_model(model, classes=classes, out_dir=Path(tmp), preprocess=spec_for(config), backbone=config.backbone)
        export_s = time.perf_counter() - start
        onnx_path = Path(tmp) / "model.onnx"
        size_mb = onnx_path.stat().st_size / 1e6
        session = ort.InferenceSession(str(onnx_path), session_options(ort, providers=["CPUExecutionProvider"]),
                                       providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    x = np.random.default_rng(0).standard_normal((1, 3, config.image_size, config.image_size)).astype(np.float32)
    for _ in range(3):
        session.run(None, {name: x})
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, {name: x})
        times.append(time.perf_counter() - start)
    return {"size_mb": size_mb, "export_s": export_s, "ms_median": 1e3 * float(np.median(times)),
            "ms_p90": 1e3 * float(np.quantile(times, 0.9))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dev", required=True)
    parser.add_argument("--local", required=True)
    parser.add_argument("--feature-cache", default=".local/feature-cache")
    parser.add_argument("--backbones", nargs="+", default=["lite0@288", "lite1", "lite2"],
                        help="NAME[@SIDE]: lite0, lite1, lite2 at that input side (default: its native side)")
    parser.add_argument("--k", nargs="+", default=["5:5", "20:10"])
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--share", type=float, default=0.5)
    parser.add_argument("--dev-subset", type=int, default=0, help="encode only this many civic-photos-dev photos")
    parser.add_argument("--runs", type=int, default=30, help="timed ONNX Runtime runs per backbone")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    base = TrainConfig(data=args.dev, feature_cache=args.feature_cache)
    local, classes, holdout, pool = load_sets(args.dev, args.local, holdout_per_class=40,
                                              split_seed=base.split_seed)
    if args.dev_subset:
        keep = np.random.default_rng(0).choice(len(pool), max(0, args.dev_subset - len(holdout)), replace=False)
        pool = [pool[i] for i in sorted(keep)]
    y_pool = torch.tensor([classes.index(s.label) for s in pool])
    y_hold = np.array([classes.index(s.label) for s in holdout])
    y_local = np.array([classes.index(s.label) for s in local])
    n, fly, clean = len(classes), classes.index(FLY), classes.index(CLEAN)
    by_label = {lab: [i for i, s in enumerate(local) if s.label == lab] for lab in (FLY, CLEAN)}
    log_odds = lambda p: np.log(p[:, fly] + 1e-9) - np.log(p[:, clean] + 1e-9)  # noqa: E731
    print(f"civic-photos-dev: {len(pool)} training + {len(holdout)} holdout photos; local: {len(local)}", flush=True)
    print("| backbone @ side | local photos (fly:clean) | holdout macro-F1 | fly-tipping recall | clean called an issue "
          "| local macro-F1 | AUROC fly vs clean | draws |")
    print("|---|---|---|---|---|---|---|---|", flush=True)
    costs = {}
    for spec in args.backbones:
        name, side = parse_backbone(spec)
        config = TrainConfig(data=args.dev, feature_cache=args.feature_cache, backbone=name).at_input_size(side)
        encoder = Encoder(config, torch.device("cpu"))
        model = create_model(n, backbone=name).eval()
        start = time.perf_counter()
        feats = {part: encoder.feature_views(model, Images(s, encoder.spec, classes, part), 1)
                 for part, s in (("pool", pool), ("holdout", holdout), ("local", local))}
        encode_s = time.perf_counter() - start
        label = f"{name} @ {side}"

        def scores(m, rest):
            p_rest = predict(m, feats["local"][:, rest])
            s = local_scores(p_rest, [local[i].label for i in rest], classes)
            return {"holdout": classification_report(y_hold, predict(m, feats["holdout"]), classes)["macro_f1"],
                    **s, "auroc": separability(log_odds(p_rest), y_local[rest] == fly)[0]}

        m = fit(feats["pool"], y_pool, np.zeros(len(pool), bool), share=0.0, stage=True, views=1, balance=True,
                config=config, n_classes=n)
        r = scores(m, np.arange(len(local)))
        print(f"| {label} | none (out of the box) | {r['holdout']:.3f} | {r['fly_recall']:.3f} | {r['clean_fp']:.3f} "
              f"| {r['macro_f1']:.3f} | {r['auroc']:.3f} | 1 |", flush=True)
        for k in args.k:
            k_fly, k_clean = map(int, k.split(":"))
            rs = []
            for seed in range(args.seeds):  # the draws of local_bench.py --part adapt and local_heads.py
                rng = np.random.default_rng(seed)
                rows = np.concatenate([rng.choice(by_label[FLY], k_fly, replace=False),
                                       rng.choice(by_label[CLEAN], k_clean, replace=False)])
                x = torch.cat([feats["pool"], feats["local"][:, rows]], dim=1)
                y = torch.cat([y_pool, torch.from_numpy(y_local[rows])])
                is_local = np.r_[np.zeros(len(pool), bool), np.ones(len(rows), bool)]
                m = fit(x, y, is_local, share=args.share, stage=True, views=1, balance=True, config=config, n_classes=n)
                rs.append(scores(m, np.setdiff1d(np.arange(len(local)), rows)))
            mean = lambda key: np.mean([r[key] for r in rs])  # noqa: E731
            sd = lambda key: np.std([r[key] for r in rs], ddof=1)  # noqa: E731
            print(f"| {label} | {k} | {mean('holdout'):.3f} | {mean('fly_recall'):.3f} ± {sd('fly_recall'):.3f} "
                  f"| {mean('clean_fp'):.3f} ± {sd('clean_fp'):.3f} | {mean('macro_f1'):.3f} "
                  f"| {mean('auroc'):.3f} ± {sd('auroc'):.3f} | {len(rs)} |", flush=True)
        costs[label] = {"encode_s": encode_s, **serving_cost(model, config, classes, args.runs)}
        c = costs[label]
        print(f"cost {label}: features {c['encode_s']:.0f} s; model.onnx {c['size_mb']:.1f} MB, export "
              f"{c['export_s']:.0f} s, ORT {c['ms_median']:.1f} ms median / {c['ms_p90']:.1f} ms p90 per photo", flush=True)
    print("\n| backbone @ side | model.onnx | ONNX export | ORT model time per photo, batch 1, 1 thread (median / p90) "
          "| feature encode this run |")
    print("|---|---|---|---|---|")
    for label, c in costs.items():
        print(f"| {label} | {c['size_mb']:.1f} MB | {c['export_s']:.0f} s | {c['ms_median']:.1f} / {c['ms_p90']:.1f} ms "
              f"| {c['encode_s']:.0f} s |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
