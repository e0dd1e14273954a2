"""Training benchmark: K images per class x method x seed on a fixed, seeded holdout.

    python benchmarks/train_bench.py --data ../shared/datasets/civic-photos-dev --out /tmp/bench \
        --per-class 5 10 all --methods full probe scratch --seeds 0 1 2

Every run is ``training.recipe.run`` with the same holdout (``--holdout-per-class``,
``split_seed`` 0); each run's numbers are appended to ``results.jsonl`` as it
finishes, and a Markdown table of means is printed at the end.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import defaultdict
from pathlib import Path

from training.config import TrainConfig
from training.recipe import run

# probe: the textbook linear probe (eval crop, pooled head output); scratch: the recipe from random weights
METHODS = {"full": {}, "probe": {"linear_probe": True, "stage_features": False}, "scratch": {"pretrained": False}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--per-class", nargs="+", default=["5", "10", "all"], help="K values, or 'all'")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--holdout-per-class", type=int, default=40)
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=JSON", help="TrainConfig overrides, e.g. epochs=3")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    overrides = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}
    args.out.mkdir(parents=True, exist_ok=True)
    results = args.out / "results.jsonl"
    for k in args.per_class:
        for method in args.methods:
            for seed in args.seeds:
                name = f"k{k}-{method}-s{seed}"
                config = TrainConfig(
                    data=args.data, out=str(args.out / name), seed=seed, holdout_per_class=args.holdout_per_class,
                    per_class=None if k == "all" else int(k), **(METHODS[method] | overrides),
                )
                meta = json.loads((run(config) / "metadata.json").read_text())
                m = meta["metrics"]
                row = {"k": k, "method": method, "seed": seed, "macro_f1": m["macro_f1"], "accuracy": m["accuracy"],
                       "ece": m["ece"], "ece_uncalibrated": m["ece_uncalibrated"],
                       "ece_floor": m.get("ece_floor"), "temperature": meta["temperature"],
                       "seconds": m["seconds"], "n_train": meta["training_data"]["n_images"]}
                with results.open("a") as f:
                    f.write(json.dumps(row) + "\n")
    table = defaultdict(list)
    for line in results.read_text().splitlines():
        row = json.loads(line)
        table[(row["k"], row["method"])].append(row)
    print("| K | method | seeds | macro-F1 | ECE (T) | ECE (T=1) | ECE floor | total s |")
    print("|---|---|---|---|---|---|---|---|")
    for (k, method), rows in table.items():
        mean = lambda key: sum(float("nan") if r.get(key) is None else r[key] for r in rows) / len(rows)  # noqa: E731
        total = sum(r["seconds"]["total"] for r in rows) / len(rows)
        print(f"| {k} | {method} | {len(rows)} | {mean('macro_f1'):.3f} | {mean('ece'):.3f} | {mean('ece_uncalibrated'):.3f} | {mean('ece_floor'):.3f} | {total:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
