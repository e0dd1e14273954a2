#!/usr/bin/env bash
# Check a GPU node for the classifier worker; prints one JSON object.
#
#   deploy/gpu-check.sh [MODEL_DIR] [IMAGES_DIR]
#
# Runs the classifier worker's own code path, without a database: the CLASSIFIER setting from the
# environment (the node's /etc/civic/classifier.env: `set -a; . /etc/civic/classifier.env; set +a`),
# the model built as the worker's registry builds it (classifier.registry.load) with DEVICE cuda, and
# batches of photo bytes through classifier.services.predict_photos, which is what classify_reports
# runs once it has read a batch of originals. The same with DEVICE cpu is the reference.
#
# Checks, and what it prints:
#   1. CUDAExecutionProvider is the session's first provider (and, for information, whether every
#      node runs on it, i.e. a session with CPU fallback disabled builds);
#   2. CPU/GPU agreement on the same photos: max abs probability difference <= 1e-3, the same top-1
#      class and the same "unknown" flag for every photo;
#   3. throughput (photos/s, latency percentiles) of the worker's path per batch size (the worker's
#      batch is CLASSIFIER_BATCH_SIZE) on CUDA and on CPU, ONNX Runtime alone per batch on CUDA, and
#      the batch size that maximises CUDA throughput: set CLASSIFIER_BATCH_SIZE to it.
# Exit status: 0 every check passed; 1 a check failed; 2 no usable CUDA here (no GPU, no
# onnxruntime-gpu, missing CUDA libraries): the CPU numbers are still printed, so the script can be
# tried anywhere, quickly.
#
# Needs, installed beforehand (this script installs nothing):
#   - a venv with the project and the gpu extra: pip install -e '.[gpu]'
#     (onnxruntime-gpu ONLY: with the CPU wheel also present the check fails, as the service would)
#   - an NVIDIA driver + the CUDA/cuDNN libraries onnxruntime-gpu is built for
#   - without MODEL_DIR: the train extra too (torch, timm, onnx): `python -m training train` then
#     trains a small model (random backbone, open-set output included) on synthesised photos
# Environment: PYTHON (default: python), BATCH_SIZES (default 1,4,8,16,32,64), PHOTOS (photos
# synthesised without IMAGES_DIR: 12 MP JPEGs like a phone's; default 16).
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

export DJANGO_SETTINGS_MODULE=${DJANGO_SETTINGS_MODULE:-config.settings.production}
export SECRET_KEY=${SECRET_KEY:-gpu-check-signs-nothing}  # production settings insist on one
exec "$PYTHON" - "$MODEL_DIR" "$IMAGES_DIR" <<'PY'
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import django
import numpy as np
from PIL import Image

django.setup()  # settings only: nothing below opens a database connection

from django.conf import settings  # noqa: E402
from django.test.utils import override_settings  # noqa: E402

from classifier import registry  # noqa: E402
from classifier.models import ModelVersion  # noqa: E402
from classifier.services import predict_photos  # noqa: E402
from inference.modelformat import MODEL_FILE, ModelError, load_model  # noqa: E402
from inference.preprocess import IMAGE_SUFFIXES, decode  # noqa: E402
from inference.runtime import RuntimeSetupError, check_single_runtime, session_options  # noqa: E402

sys.path.insert(0, "benchmarks")
from serving_bench import timed  # noqa: E402  (the one timing helper)

MAX_PROB_DIFF = 1e-3
model_dir, images_dir = Path(sys.argv[1]).resolve(), sys.argv[2]
batch_sizes = [int(b) for b in os.environ.get("BATCH_SIZES", "1,4,8,16,32,64").split(",")]
check_single_runtime()
import onnxruntime as ort  # noqa: E402  (after the check: a mixed install can fail at import)

failures = []


def synthetic_photos(n):
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


def worker_classifier(device):
    """The classifier exactly as the worker's registry loads the active version, on `device`."""
    version = ModelVersion(version=load_model(model_dir).version, path=str(model_dir))  # MODEL_ROOT / absolute
    with override_settings(CLASSIFIER={**settings.CLASSIFIER, "DEVICE": device}):
        return registry.load(version)


def worker_path(classifier, calls_for):
    """The worker's prediction of one batch (predict_photos) timed per batch size."""
    return {str(bs): timed(lambda batch: predict_photos(classifier, batch),
                           [[photos[i % len(photos)] for i in range(bs)]] * calls_for(bs))
            for bs in batch_sizes}


def gpu_name():
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True)
        return out.stdout.strip() or ort.get_device()
    except OSError:
        return ort.get_device()


if images_dir:
    files = sorted(p for p in Path(images_dir).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    photos = [p.read_bytes() for p in files[:64]]
else:
    photos = synthetic_photos(int(os.environ.get("PHOTOS", "16")))

cpu = worker_classifier("cpu")
report = {"onnxruntime": ort.__version__, "available_providers": ort.get_available_providers(),
          "classifier_setting": {**{k: v for k, v in settings.CLASSIFIER.items() if k != "BACKEND"},
                                 "CLASSIFIER_BATCH_SIZE": settings.CLASSIFIER_BATCH_SIZE},
          "photos": len(photos), "photo_size": list(decode(photos[0]).size)}
try:
    cuda = worker_classifier("cuda")
    providers = cuda.providers  # builds the session: DEVICE cuda refuses a silent CPU fallback
except (RuntimeSetupError, ModelError) as exc:
    cuda, no_cuda = None, f"{exc.__class__.__name__}: {exc}"

if cuda is None:
    report.update(ok=False, cuda=False, failures=[f"no usable CUDA here ({no_cuda}); CPU numbers only"],
                  worker_path_cpu=worker_path(cpu, lambda bs: 2))
    print(json.dumps(report, indent=2))
    sys.exit(2)

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
on_cuda, on_cpu = predict_photos(cuda, photos), predict_photos(cpu, photos)
top1 = sum(a.top_k[0][0] == b.top_k[0][0] for a, b in zip(on_cuda, on_cpu))
unknown = sum(a.unknown == b.unknown for a, b in zip(on_cuda, on_cpu))
if max_diff > MAX_PROB_DIFF:
    failures.append(f"CPU and CUDA probabilities differ by {max_diff:.2e} > {MAX_PROB_DIFF}")
if top1 < len(photos) or unknown < len(photos):
    failures.append(f"CPU and CUDA disagree: top-1 on {len(photos) - top1}, unknown on {len(photos) - unknown} photos")

arrays = np.stack([cuda.preprocess(p) for p in photos])
model_alone = {str(bs): {"batch": bs, **timed(cuda.run_arrays, [np.resize(arrays, (bs, *arrays.shape[1:]))]
                                             * (200 // bs + 20))}
               for bs in batch_sizes}
on_gpu = worker_path(cuda, lambda bs: max(4, 256 // bs))
report.update(
    ok=not failures, cuda=True, failures=failures, gpu=gpu_name(), providers=providers,
    all_nodes_on_cuda=all_nodes_on_cuda,
    agreement={"max_abs_prob_diff": max_diff, "top1_same": f"{top1}/{len(photos)}",
               "unknown_same": f"{unknown}/{len(photos)}"},
    worker_path_cuda=on_gpu,
    best_batch_size_cuda=int(max(on_gpu, key=lambda bs: on_gpu[bs]["images_per_s"])),
    worker_path_cpu=worker_path(cpu, lambda bs: max(2, 32 // bs)),
    model_alone_cuda=model_alone,
)
print(json.dumps(report, indent=2))
sys.exit(0 if report["ok"] else 1)
PY
