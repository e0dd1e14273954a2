"""``python -m training train|evaluate``: thin argparse front end; logs go to stderr."""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import types
import typing
from collections.abc import Sequence
from pathlib import Path

from training.config import TrainConfig


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field (``per_class`` -> ``--per-class``; booleans get ``--no-...``)."""
    hints = typing.get_type_hints(TrainConfig)
    required = {"data", "out"}
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        kind = hints[f.name]
        if isinstance(kind, types.UnionType):  # "int | None": the non-None member
            kind = next(t for t in typing.get_args(kind) if t is not type(None))
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default)
        else:
            parser.add_argument(flag, type=kind, default=f.default, required=f.name in required,
                                metavar=f.name.upper())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="{train,evaluate}")
    train = commands.add_parser("train", help="train, calibrate and export a model directory")
    _add_config_flags(train)
    evaluate = commands.add_parser("evaluate", help="evaluate a model directory with ONNX Runtime")
    evaluate.add_argument("--model", type=Path, required=True, help="model directory (model.onnx + metadata.json)")
    evaluate.add_argument("--data", type=Path, required=True, help="ImageFolder tree or .jsonl/.csv manifest")
    evaluate.add_argument("--split", choices=("train", "val", "holdout"), help="only manifest rows of this split")
    evaluate.add_argument("--source", choices=("local", "bootstrap"), help="only manifest rows of this source")
    evaluate.add_argument("--by-source", action="store_true",
                          help="also report each source's rows (one pass over the photos)")
    evaluate.add_argument("--plots-dir", type=Path, help="where the PNGs go (default: the model directory)")
    evaluate.add_argument("--json", action="store_true", help="print the full JSON report (default: a summary)")
    evaluate.add_argument("--predictions", type=Path, metavar="FILE",
                          help="also write per-photo probabilities here (JSONL: path, label, source, probabilities)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    try:
        if args.command == "train":
            from training.recipe import run

            config = TrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)})
            print(json.dumps({"model_dir": str(run(config))}))
        else:
            from training.data import load_samples
            from training.evaluate import evaluate_model

            samples = load_samples(args.data)
            if args.split:
                samples = [s for s in samples if s.split == args.split]
            if args.source:
                samples = [s for s in samples if s.source == args.source]
            if not samples:
                raise ValueError(f"no images in {args.data} match split={args.split} source={args.source}")
            report = evaluate_model(args.model, samples, plots_dir=args.plots_dir, predictions=args.predictions,
                                    by_source=args.by_source)
            if args.json:
                print(json.dumps(report))
            else:
                print(json.dumps({k: report[k] for k in ("accuracy", "macro_f1", "ece", "n_images")}))
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
