"""``python -m classifier predict``: classify image files with a model directory, one JSON line each.

Numpy, Pillow and onnxruntime only (no Django, no torch). Benchmarks of the
serving pipeline live in ``benchmarks/serving_bench.py``.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from inference.modelformat import ModelError
from inference.runtime import DEVICES, OnnxClassifier, Prediction


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m classifier", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("predict", help="classify image files; one JSON line per file")
    add_classifier_args(p)
    p.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args(argv)
    try:
        classifier = OnnxClassifier(args.model, classifier_options(args))
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return predict_files(classifier, args.files)


def add_classifier_args(p: argparse.ArgumentParser) -> None:
    """The model directory and the ``CLASSIFIER`` options as flags (shared with the serving benchmark)."""
    p.add_argument("--model", required=True, type=Path, help="model directory (model.onnx + metadata.json)")
    p.add_argument("--device", default="auto", choices=DEVICES)
    p.add_argument("--intra-op-threads", type=int, default=0, help="ONNX Runtime threads per run; 0 = auto")
    p.add_argument("--workers", type=int, default=0, help="decode (and CPU inference) threads; 0 = one per CPU")
    p.add_argument("--max-batch", type=int, default=0, help="most photos per ONNX Runtime run; 0 = auto")
    p.add_argument("--top-k", type=int, default=3)


def classifier_options(args: argparse.Namespace) -> dict[str, Any]:
    return {"DEVICE": args.device, "INTRA_OP_THREADS": args.intra_op_threads, "WORKERS": args.workers,
            "MAX_BATCH": args.max_batch, "TOP_K": args.top_k}

def predict_files(classifier: OnnxClassifier, files: Sequence[Path]) -> int:
    """Print one JSON line per file; a file that cannot be classified gets an ``error`` line (exit 1)."""
    status = 0
    for path in files:
        try:
            (prediction,) = classifier.predict([path])
        except (OSError, ValueError) as exc:  # unreadable or undecodable photo
            print(json.dumps({"file": str(path), "error": str(exc)}))
            status = 1
            continue
        print(json.dumps({"file": str(path), **_prediction_json(prediction)}))
    return status


def _prediction_json(prediction: Prediction) -> dict[str, Any]:
    return {
        "model_version": prediction.model_version,
        "top_k": [{"class": slug, "probability": round(p, 6)} for slug, p in prediction.top_k],
        "unknown": prediction.unknown,  # unlike every class the model knows: for review, never auto-triaged
        "unknown_score": None if prediction.unknown_score is None else round(prediction.unknown_score, 6),
    }
