"""Measure the serving pipeline: images/s and latency for a model directory on a folder of photos.

    .venv/bin/python benchmarks/serving_bench.py --model MODEL_DIR --images PHOTOS [--torch-checkpoint state_dict.pt]

Prints one JSON object: images/s and latency percentiles for the end-to-end
pipeline (encoded bytes -> probabilities) at batch 1 and batched, ONNX
Runtime alone, the time split (decode, resize, model) and, with
``--torch-checkpoint``, the naive baseline in the same run: full-resolution
decode + the training eval transform + torch eager at batch 1, on the same
weights (checked against the ONNX model's logits). ``classify_bench.py``
runs it several times on 12 MP phone photos; ``deploy/gpu-check.sh`` uses
its :func:`timed`.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from classifier.cli import add_classifier_args, classifier_options
from inference.modelformat import ModelError
from inference.preprocess import IMAGE_SUFFIXES, decode, preprocess, resize_crop, to_array
from inference.runtime import OnnxClassifier, softmax

SAME_WEIGHTS_ATOL = 1e-3  # max abs logit difference between the torch checkpoint and the ONNX model


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_classifier_args(parser)
    parser.add_argument("--images", required=True, type=Path, help="folder of photos (searched recursively)")
    parser.add_argument("--batch", type=int, default=16, help="photos per predict() call in the batched runs")
    parser.add_argument("--n", type=int, default=64, help="photos per measurement (the folder's are cycled)")
    parser.add_argument("--torch-checkpoint", type=Path,
                        help="state_dict of training.model.create_model for the naive baseline")
    parser.add_argument("--torch-threads", type=int, default=1, help="torch threads in the baseline")
    args = parser.parse_args(argv)
    try:
        classifier = OnnxClassifier(args.model, classifier_options(args))
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report = bench(classifier, image_files(args.images), batch=args.batch, n=args.n,
                   torch_checkpoint=args.torch_checkpoint, torch_threads=args.torch_threads)
    print(json.dumps(report, indent=2))
    return 0


def image_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise SystemExit(f"error: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {folder}")
    return files


def bench(
    classifier: OnnxClassifier,
    files: Sequence[Path],
    *,
    batch: int,
    n: int,
    torch_checkpoint: Path | None = None,
    torch_threads: int = 1,
) -> dict[str, Any]:
    """Measure the pipeline on ``n`` photos cycled from ``files``; see the module docstring."""
    payloads = [files[i % len(files)].read_bytes() for i in range(n)]
    spec = classifier.model.spec
    arrays = np.stack([classifier.preprocess(b) for b in payloads])  # also warms the session up
    batches = [payloads[i : i + batch] for i in range(0, n, batch)]
    array_batches = [arrays[i : i + batch] for i in range(0, n, batch)]

    model_1 = timed(classifier.run_arrays, [a[None] for a in arrays])
    model_b = timed(classifier.run_arrays, array_batches)
    e2e_1 = timed(classifier.predict_proba, [[b] for b in payloads])
    e2e_b = timed(classifier.predict_proba, batches)

    sample = payloads[: min(n, 16)]
    decoded = [decode(b, draft_for=spec) for b in sample]
    split = {  # CPU milliseconds per image
        "decode_reduced": _median_cpu_ms(lambda b: decode(b, draft_for=spec), sample),
        "resize_normalise": _median_cpu_ms(lambda img: to_array(resize_crop(img, spec), spec), decoded),
        "model": model_b["cpu_ms_per_image"],
    }
    cores = len(os.sched_getaffinity(0))
    report: dict[str, Any] = {
        "machine": _machine(classifier),
        "model_version": classifier.model_version,
        "images": {
            "n": n,
            "distinct": min(n, len(files)),
            "median_megapixels": statistics.median(_megapixels(b) for b in sample),
            "median_kbytes": statistics.median(len(b) for b in sample) / 1000,
        },
        "batch": batch,
        "end_to_end_batch1": e2e_1,
        "end_to_end_batched": e2e_b,
        "model_alone_batch1": model_1,
        "model_alone_batched": model_b,
        "split_cpu_ms": split,
        # Every core busy with nothing but reduced-scale decode, resize and the model.
        "bound_images_per_s": cores * 1000 / sum(split.values()),
        "end_to_end_over_model_alone": e2e_b["images_per_s"] / model_b["images_per_s"],
    }
    report["end_to_end_over_bound"] = e2e_b["images_per_s"] / report["bound_images_per_s"]
    if torch_checkpoint is not None:
        naive = naive_baseline(classifier, torch_checkpoint, payloads, threads=torch_threads)
        report["naive_baseline"] = naive
        report["speedup_vs_naive"] = {
            "batched": e2e_b["images_per_s"] / naive["images_per_s"],
            "batch1": e2e_1["images_per_s"] / naive["images_per_s"],
        }
    return report


def naive_baseline(
    classifier: OnnxClassifier, checkpoint: Path, payloads: Sequence[bytes], *, threads: int = 1
) -> dict[str, Any]:
    """Full-resolution decode + training eval transform + torch eager, one photo at a time.

    ``checkpoint`` is a ``state_dict`` (or a dict holding one under
    ``"state_dict"``) of ``training.model.create_model(len(classes))``; its
    logits must match the ONNX model's, so both really run the same weights.
    """
    import torch

    from training.model import create_model

    torch.set_num_threads(threads)
    model, spec = classifier.model, classifier.model.spec
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    net = create_model(len(model.classes), pretrained=False)
    net.load_state_dict(state.get("state_dict", state))
    net.eval()

    def run(one: list[bytes]) -> np.ndarray:
        x = torch.from_numpy(preprocess(one[0], spec, fast_decode=False))[None]
        with torch.inference_mode():
            return softmax(net(x).numpy(), model.temperature)

    x0 = preprocess(payloads[0], spec, fast_decode=False)
    with torch.inference_mode():
        torch_logits = net(torch.from_numpy(x0)[None]).numpy()
    diff = float(np.abs(torch_logits - classifier.run_arrays(x0[None])).max())
    if diff > SAME_WEIGHTS_ATOL:
        raise SystemExit(f"error: {checkpoint} gives logits {diff:.2e} away from the ONNX model: not the same weights")
    result = timed(run, [[b] for b in payloads])
    sample = payloads[: min(len(payloads), 16)]
    decoded = [decode(b) for b in sample]
    x = torch.from_numpy(x0)[None]
    with torch.inference_mode():
        torch_ms = _median_cpu_ms(lambda _: net(x), range(8))
    result["split_cpu_ms"] = {
        "decode_full": _median_cpu_ms(decode, sample),
        "resize_normalise": _median_cpu_ms(lambda img: to_array(resize_crop(img, spec), spec), decoded),
        "torch_batch1": torch_ms,
    }
    result["max_abs_logit_diff_vs_onnx"] = diff
    result["torch_threads"] = torch.get_num_threads()
    return result


def timed(fn: Callable[[Any], Any], calls: Sequence[Any]) -> dict[str, Any]:
    """Throughput and per-call latency percentiles of ``fn`` over ``calls`` (after one warm-up call)."""
    fn(calls[0])
    latencies, images = [], 0
    start, cpu_start = time.perf_counter(), time.process_time()
    for arg in calls:
        t = time.perf_counter()
        fn(arg)
        latencies.append(time.perf_counter() - t)
        images += len(arg)
    total, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    p50, p90, p99 = np.percentile(np.array(latencies) * 1000, [50, 90, 99])
    return {
        "images_per_s": images / total,
        "latency_ms": {"p50": p50, "p90": p90, "p99": p99},
        # CPU time of all this process's threads: steadier than wall time on a shared machine.
        "cpu_ms_per_image": cpu * 1000 / images,
        "calls": len(calls),
    }


def _median_cpu_ms(fn: Callable[[Any], Any], args: Sequence[Any]) -> float:
    """Median CPU time of ``fn`` per argument, all threads of this process counted."""
    times = []
    for arg in args:
        t = time.process_time()
        fn(arg)
        times.append(time.process_time() - t)
    return statistics.median(times) * 1000


def _megapixels(payload: bytes) -> float:
    with Image.open(io.BytesIO(payload)) as img:
        return img.width * img.height / 1e6


def _machine(classifier: OnnxClassifier) -> dict[str, Any]:
    import onnxruntime

    cpuinfo = Path("/proc/cpuinfo")
    names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")] if cpuinfo.exists() else []
    return {
        "cpu": names[0] if names else platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__,
        "providers": classifier.providers,
        "options": classifier.options,
    }


if __name__ == "__main__":
    sys.exit(main())
