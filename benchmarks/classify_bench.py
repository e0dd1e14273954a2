"""Reproduce the classifier serving numbers in docs/BENCHMARKS.md.

1. Builds 12 MP "phone" JPEGs from the shared dataset's real photos (upscaled
   to 4032x3024, sensor-like noise, quality 90, EXIF make/model, every other
   one stored sideways with orientation 6) in a scratch folder, never in the
   repository.
2. Exports a model (timm Lite0, ImageNet backbone, fresh 4-class head) and
   its torch ``state_dict`` for the naive baseline, unless ``--model`` and
   ``--torch-checkpoint`` are given.
3. Runs ``benchmarks/serving_bench.py`` ``--runs`` times on the 12 MP photos
   and on the dataset's small photos, and reports the median of every number
   (the machine is shared: single runs are noisy).
4. Measures what reduced-scale decoding does to predictions: the same 12 MP
   photos through fast and full decoding, top-1 agreement and probability
   differences (and accuracy on the folder labels when the model knows them).

Usage: .venv/bin/python benchmarks/classify_bench.py [--work /tmp/classify-bench] [--runs 5]
Needs the ``train`` extra (torch, timm) for the export and the baseline.
"""
from __future__ import annotations

import argparse
import io
import json
import random
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from inference.preprocess import preprocess
from inference.runtime import OnnxClassifier, softmax

REPO = Path(__file__).resolve().parents[1]
DATASET = REPO.parent / "shared" / "datasets" / "civic-photos-dev"
PHONE_SIZE = (4032, 3024)  # 12 MP, 4:3


def phone_jpeg(source: Path, *, rng: np.random.Generator, sideways: bool) -> bytes:
    """A 12 MP JPEG as a phone writes it, from a real (small) photo."""
    img = Image.open(source).convert("RGB").resize(PHONE_SIZE, Image.Resampling.BICUBIC)
    noise = rng.standard_normal((PHONE_SIZE[1], PHONE_SIZE[0], 3), dtype=np.float32) * 5.0
    img = Image.fromarray(np.clip(np.asarray(img, dtype=np.float32) + noise, 0, 255).astype(np.uint8))
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "BenchPhone", "Model 12"  # Make, Model
    if sideways:  # portrait-held phones store the sensor's rows and say "rotate 90 degrees clockwise"
        img = img.transpose(Image.Transpose.ROTATE_90)
        exif[0x0112] = 6
    out = io.BytesIO()
    img.save(out, "JPEG", quality=90, exif=exif.tobytes())
    return out.getvalue()


def dataset_photos(count: int, seed: int) -> list[Path]:
    photos = sorted(DATASET.glob("*/*.jpg"))
    if not photos:
        raise SystemExit(f"error: no photos under {DATASET}")
    return random.Random(seed).sample(photos, min(count, len(photos)))


def export_bench_model(work: Path, input_size: int | None) -> tuple[Path, Path]:
    """Lite0 with its ImageNet backbone and a fresh 4-class head at ``input_size`` (default: the training
    recipe's; the resize keeps its crop_pct 0.875): model dir + state_dict file."""
    import torch

    sys.path.insert(0, str(REPO))  # the one test-model exporter is tests.fixtures_models
    from tests.fixtures_models import export_test_model, make_test_model
    from training.config import TrainConfig
    from training.recipe import spec_for

    checkpoint = work / "state_dict.pt"
    torch.save(make_test_model(pretrained=True).state_dict(), checkpoint)
    config = TrainConfig().at_input_size(input_size) if input_size else TrainConfig()
    out = export_test_model(work / "model", version="bench-1", spec=spec_for(config), pretrained=True)
    return out, checkpoint


def run_bench(model: Path, images: Path, checkpoint: Path | None, *, batch: int, n: int, runs: int) -> dict[str, Any]:
    cmd = [sys.executable, str(REPO / "benchmarks" / "serving_bench.py"), "--model", str(model), "--images", str(images),
           "--batch", str(batch), "--n", str(n)]
    if checkpoint is not None:
        cmd += ["--torch-checkpoint", str(checkpoint)]
    reports = []
    for i in range(runs):
        result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=True)
        reports.append(json.loads(result.stdout))
        print(f"  run {i + 1}/{runs}: end-to-end {reports[-1]['end_to_end_batched']['images_per_s']:.1f} images/s", file=sys.stderr)
    return {"command": " ".join(cmd), "runs": runs, "median": _median(reports), "all_runs": reports}


def _median(reports: list[Any]) -> Any:
    """Element-wise median of identically shaped JSON reports (non-numbers taken from the first)."""
    first = reports[0]
    if isinstance(first, dict):
        return {k: _median([r[k] for r in reports]) for k in first}
    if isinstance(first, (int, float)) and not isinstance(first, bool):
        return statistics.median(reports)
    return first


def decode_accuracy(model: Path, photos: list[Path], seed: int) -> dict[str, Any]:
    """Fast (reduced-scale) vs full decoding of the same 12 MP JPEGs, through the same model."""
    classifier = OnnxClassifier(model, {"DEVICE": "cpu"})
    spec, classes = classifier.model.spec, classifier.model.classes
    rng = np.random.default_rng(seed)
    fast, full, labels = [], [], []
    for i, path in enumerate(photos):
        data = phone_jpeg(path, rng=rng, sideways=i % 2 == 1)
        fast.append(preprocess(data, spec))
        full.append(preprocess(data, spec, fast_decode=False))
        labels.append(path.parent.name)
    p_fast = _proba(classifier, np.stack(fast))
    p_full = _proba(classifier, np.stack(full))
    diff = np.abs(p_fast - p_full).max(axis=1)
    report = {
        "photos": len(photos),
        "top1_agreement": float((p_fast.argmax(1) == p_full.argmax(1)).mean()),
        "max_abs_prob_diff": {"median": float(np.median(diff)), "p90": float(np.percentile(diff, 90)), "max": float(diff.max())},
        "pixel_mean_abs_diff": float(np.mean([np.abs(a - b).mean() for a, b in zip(fast, full)])),
    }
    known = [i for i, label in enumerate(labels) if label in classes]
    if known:
        truth = np.array([classes.index(labels[i]) for i in known])
        report["accuracy_on_folder_labels"] = {
            "fast": float((p_fast[known].argmax(1) == truth).mean()),
            "full": float((p_full[known].argmax(1) == truth).mean()),
        }
    return report


def _proba(classifier: OnnxClassifier, arrays: np.ndarray) -> np.ndarray:
    logits = np.concatenate([classifier.run_arrays(arrays[i : i + 16]) for i in range(0, len(arrays), 16)])
    return softmax(logits, classifier.model.temperature)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/classify-bench"), help="scratch folder (photos, model)")
    parser.add_argument("--model", type=Path, help="model directory; default: export one into --work")
    parser.add_argument("--torch-checkpoint", type=Path, help="state_dict for the naive baseline (with --model)")
    parser.add_argument("--input-size", type=int, help="the exported model's input side; default: the recipe's")
    parser.add_argument("--accuracy-model", type=Path, help="model for the decode-accuracy check; default: the bench model")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--phone-photos", type=int, default=16)
    parser.add_argument("--accuracy-photos", type=int, default=120)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--n", type=int, default=48)
    args = parser.parse_args()

    args.work.mkdir(parents=True, exist_ok=True)
    model, checkpoint = (args.model, args.torch_checkpoint) if args.model else export_bench_model(args.work, args.input_size)
    phone_dir = args.work / "phone"
    if not phone_dir.is_dir():
        phone_dir.mkdir()
        rng = np.random.default_rng(0)
        for i, path in enumerate(dataset_photos(args.phone_photos, seed=0)):
            (phone_dir / f"phone-{i:02d}.jpg").write_bytes(phone_jpeg(path, rng=rng, sideways=i % 2 == 1))

    print("12 MP phone JPEGs", file=sys.stderr)
    phone = run_bench(model, phone_dir, checkpoint, batch=args.batch, n=args.n, runs=args.runs)
    print("small photos (shared dataset, <= 640 px)", file=sys.stderr)
    small = run_bench(model, DATASET, checkpoint, batch=args.batch, n=2 * args.n, runs=args.runs)
    print("reduced-scale decode accuracy", file=sys.stderr)
    accuracy = decode_accuracy(args.accuracy_model or model, dataset_photos(args.accuracy_photos, seed=1), seed=1)
    summary = {"model": str(model), "accuracy_model": str(args.accuracy_model or model), "phone_12mp": phone, "small_photos": small, "reduced_scale_decode": accuracy}
    (args.work / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: v["median"] if isinstance(v, dict) and "median" in v else v for k, v in summary.items()}, indent=2))


if __name__ == "__main__":
    main()
