#!/usr/bin/env bash
# Check the classifier on a GPU machine; prints one JSON object, exits non-zero on a failed check.
#
#   deploy/gpu-check.sh [MODEL_DIR] [IMAGES_DIR]
#
# Needs, installed beforehand (this script installs nothing):
#   - a venv with the project and the gpu extra: pip install -e '.[gpu]'
#     (onnxruntime-gpu ONLY: with the CPU wheel also present the check fails, as the service would)
#   - an NVIDIA driver + the CUDA/cuDNN libraries onnxruntime-gpu is built for
#   - without MODEL_DIR: the train extra too (torch, timm, onnx): `python -m training train` then
#     trains a small model (random backbone, open-set output included) on synthesised photos
# PYTHON selects the interpreter (default: python). Without IMAGES_DIR, 12 MP JPEGs are synthesised.
#
# Checks: 1. CUDAExecutionProvider is the session's first provider with DEVICE=cuda (reported
# too: whether every node runs on it, i.e. a session with CPU fallback disabled builds);
# 2. CPU and CUDA probabilities agree: max abs diff <= 1e-3 on the same photos;
# 3. reports batched throughput: model alone and end to end (bytes -> probabilities).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
MODEL_DIR=${1:-}
IMAGES_DIR=${2:-}

if [[ -z "$MODEL_DIR" ]]; then
    WORK=$(mktemp -d)
    MODEL_DIR=$WORK/model
    "$PYTHON" - "$WORK/photos" <<'PY'
import sys
from pathlib import Path

import numpy as np
from PIL import Image

rng = np.random.default_rng(0)
for label, colour in {"graffiti": (200, 40, 40), "no_issue": (40, 200, 40), "pothole": (40, 40, 200)}.items():
    (Path(sys.argv[1]) / label).mkdir(parents=True)
    for i in range(6):
        pixels = (np.array(colour) + rng.normal(0, 40, (480, 640, 3))).clip(0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(Path(sys.argv[1]) / label / f"{i}.jpg", quality=90)
PY
    "$PYTHON" -m training train --data "$WORK/photos" --out "$MODEL_DIR" --no-pretrained --epochs 0 \
        --cv-folds 2 --cache-views 2 --version gpu-check-1 >&2
fi

exec "$PYTHON" - "$MODEL_DIR" "$IMAGES_DIR" <<'PY'
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from inference.modelformat import MODEL_FILE
from inference.preprocess import IMAGE_SUFFIXES, decode
from inference.runtime import OnnxClassifier, check_single_runtime, session_options

sys.path.insert(0, "benchmarks")
from serving_bench import timed  # noqa: E402  (the one timing helper)

MAX_PROB_DIFF = 1e-3
model_dir, images_dir = Path(sys.argv[1]), sys.argv[2]
check_single_runtime()
import onnxruntime as ort  # noqa: E402  (after the check: a mixed install can fail at import)

failures = []


def synthetic_photos(n=16):
    rng = np.random.default_rng(0)
    photos = []
    for _ in range(n):
        small = rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)
        img = np.asarray(Image.fromarray(small).resize((4032, 3024), Image.Resampling.BICUBIC), dtype=np.int16)
        img = np.clip(img + rng.integers(-8, 9, img.shape, dtype=np.int16), 0, 255).astype(np.uint8)
        out = io.BytesIO()
        Image.fromarray(img).save(out, "JPEG", quality=90)
        photos.append(out.getvalue())
    return photos


if images_dir:
    files = sorted(p for p in Path(images_dir).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    photos = [p.read_bytes() for p in files[:64]]
else:
    photos = synthetic_photos()

cuda = OnnxClassifier(model_dir, {"DEVICE": "cuda"})
cpu = OnnxClassifier(model_dir, {"DEVICE": "cpu"})
providers = cuda.providers
if providers[0] != "CUDAExecutionProvider":
    failures.append(f"CUDA session uses {providers}")

# The served session's options, but it may not fall back to CPU: builds only if every node has a CUDA kernel.
wanted = ["CUDAExecutionProvider", "CPUExecutionProvider"]
opts = session_options(ort, providers=wanted)
opts.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
try:
    ort.InferenceSession(str(model_dir / MODEL_FILE), opts, providers=wanted)
    all_nodes_on_cuda = True
except Exception:  # onnxruntime's own exception types; informational: ORT may keep tiny shape ops on CPU
    all_nodes_on_cuda = False

p_cuda, p_cpu = cuda.predict_proba(photos), cpu.predict_proba(photos)
max_diff = float(np.abs(p_cuda - p_cpu).max())
if max_diff > MAX_PROB_DIFF:
    failures.append(f"CPU and CUDA probabilities differ by {max_diff:.2e} > {MAX_PROB_DIFF}")


def gpu_name():
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True)
        return out.stdout.strip() or ort.get_device()
    except OSError:
        return ort.get_device()


def throughput(fn, batch, calls):
    """``timed`` (after its warm-up call: cuDNN autotuning, allocations) on ``calls`` calls with ``batch``."""
    return {"batch": len(batch), **timed(fn, [batch] * calls)}


arrays = np.stack([cuda.preprocess(p) for p in photos])
model_alone = {
    str(bs): throughput(cuda.run_arrays, np.resize(arrays, (bs, *arrays.shape[1:])), 200 // bs + 20)
    for bs in (1, 8, 32)
}
batch = [photos[i % len(photos)] for i in range(64)]
report = {
    "ok": not failures,
    "failures": failures,
    "gpu": gpu_name(),
    "onnxruntime": ort.__version__,
    "providers": providers,
    "all_nodes_on_cuda": all_nodes_on_cuda,
    "photos": len(photos),
    "photo_size": list(decode(photos[0]).size),
    "max_abs_prob_diff_cpu_vs_cuda": max_diff,
    "model_alone_cuda": model_alone,
    "end_to_end_cuda_batch64": throughput(cuda.predict_proba, batch, 8),
    "end_to_end_cpu_batch64": throughput(cpu.predict_proba, batch, 3),
}
print(json.dumps(report, indent=2))
sys.exit(0 if report["ok"] else 1)
PY
