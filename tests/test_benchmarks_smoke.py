"""Every benchmark script runs end to end on tiny data, so a refactor cannot silently break one.

The numbers they print here mean nothing (a few generated photos, one draw);
what is checked is that each script starts, runs every part and exits 0.
Each runs as a subprocess, as a person runs it (``python benchmarks/x.py``).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import pytest
import torch
from PIL import Image

from inference.preprocess import PreprocessSpec
from tests.fixtures_models import export_test_model, make_test_model

REPO = Path(__file__).resolve().parents[1]
DATASET = REPO.parent / "shared" / "datasets" / "civic-photos-dev"
DEV_CLASSES = {"fly_tipping": (120, 90, 40), "graffiti": (200, 40, 40), "no_issue": (40, 200, 40),
               "pothole": (40, 40, 200)}

pytestmark = pytest.mark.slow  # each computes real Lite0 features


def photo_folder(root: Path, classes: dict, per_class: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    for label, colour in classes.items():
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = (np.array(colour) + rng.normal(0, 40, (90, 120, 3))).clip(0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / label / f"{seed}-{i:02d}.jpg", quality=90)
    return root


@pytest.fixture(scope="module")
def dev(tmp_path_factory) -> Path:
    return photo_folder(tmp_path_factory.mktemp("dev"), DEV_CLASSES, per_class=6, seed=0)


@pytest.fixture(scope="module")
def local(tmp_path_factory) -> Path:
    classes = {k: DEV_CLASSES[k] for k in ("fly_tipping", "no_issue")}
    return photo_folder(tmp_path_factory.mktemp("local"), classes, per_class=6, seed=1)


def run(script: str, *args, env: dict | None = None) -> str:
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / script), *map(str, args)], cwd=REPO,
                            capture_output=True, text=True, timeout=900,
                            env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})
    assert result.returncode == 0, f"{script} exited {result.returncode}:\n{result.stderr[-3000:]}"
    return result.stdout


def test_serving_bench_with_the_torch_baseline(tmp_path, dev):
    spec = PreprocessSpec(input_size=64, resize_size=72)
    model = export_test_model(tmp_path / "model", spec=spec)
    checkpoint = tmp_path / "state_dict.pt"
    torch.save(make_test_model().state_dict(), checkpoint)
    out = run("serving_bench.py", "--model", model, "--images", dev, "--device", "cpu", "--n", 4, "--batch", 2,
              "--torch-checkpoint", checkpoint)
    assert '"speedup_vs_naive"' in out and '"end_to_end_batched"' in out


@pytest.mark.skipif(not DATASET.is_dir(), reason=f"needs the shared dataset {DATASET}")
def test_classify_bench(tmp_path):
    out = run("classify_bench.py", "--work", tmp_path, "--input-size", 64, "--runs", 1, "--phone-photos", 2,
              "--accuracy-photos", 4, "--n", 4, "--batch", 2)
    assert '"reduced_scale_decode"' in out


def test_train_bench(tmp_path, dev):
    run("train_bench.py", "--data", dev, "--out", tmp_path, "--per-class", 2, "--methods", "probe", "--seeds", 0,
        "--holdout-per-class", 2, "--set", "image_size=64", "resize_size=72", "cache_views=2", "cv_folds=2")


def test_head_ablation(dev):
    run("head_ablation.py", "--data", dev, "--per-class", 2, "--seeds", 0, "--views", 2, "--holdout-per-class", 2)


def test_probe_ablation(dev):
    run("probe_ablation.py", "--data", dev, "--per-class", 2, "--holdout-seeds", 1, "--seeds", 1,
        "--holdout-per-class", 2)


def test_resolution_ablation(dev):
    run("resolution_ablation.py", "--data", dev, "--sizes", 64, "--per-class", 2, "--holdout-seeds", 1, "--seeds", 1,
        "--holdout-per-class", 2)


def test_local_bench_and_openset_bench(tmp_path, dev, local):
    cache = tmp_path / "features"
    run("local_bench.py", "--dev", dev, "--local", local, "--feature-cache", cache, "--holdout-per-class", 3,
        "--k", "2:2", "--shares", 0.5, "--seeds", 1)
    run("openset_bench.py", "--dev", dev, "--local", local, "--feature-cache", cache, "--holdout-per-class", 3,
        "--new-class-photos", 2, "--seeds", 1)


def test_cv_weighting(tmp_path, dev):
    out = run("cv_weighting.py", "--data", dev, "--feature-cache", tmp_path / "features", "--holdout-seeds", 1,
              "--holdout-per-class", 3)
    assert "mean over photos" in out


def test_local_ceiling(dev, local):
    run("local_ceiling.py", "--local", local, "--dev", dev, "--part", "frozen", "finetune", "imagenet", "dev",
        "--sizes", 64,
        "--holdout-per-class", 3, "--dev-per-class", 2, "all", "--dev-holdout-seeds", 1, "--dev-seeds", 1,
        "--draws", 1, "--finetune-draws", 1, "--epochs", 1, "--train", 2, 2)


def test_unlabelled_local(dev, local, tmp_path):
    out = run("unlabelled_local.py", "--local", local, "--dev", dev, "--holdout-per-class", 3, "--k", "0:0", "2:2",
              "--draws", 1, "--feature-cache", tmp_path / "cache")
    assert "| 2:2 | spread |" in out and "| 0:0 | adabn |" in out


def test_console_bench():
    """On its own database (the name must contain "bench"), beside the test database."""
    url = urlsplit(os.environ.get("DATABASE_URL", "postgis://civic@127.0.0.1:54339/civic"))
    bench_url = urlunsplit(url._replace(path=f"{url.path.rstrip('/')}_smoke_bench"))
    out = run("console_bench.py", "--reports", 200, "--runs", 1, env={"DATABASE_URL": bench_url})
    assert out.strip()


def test_console_bench_with_baseline_selectors():
    """Each page timed beside console/selectors.py as at a commit (HEAD here, so it always exists)."""
    url = urlsplit(os.environ.get("DATABASE_URL", "postgis://civic@127.0.0.1:54339/civic"))
    bench_url = urlunsplit(url._replace(path=f"{url.path.rstrip('/')}_smoke_bench"))
    out = run("console_bench.py", "--reports", 200, "--runs", 1, "--baseline-selectors", "HEAD",
              env={"DATABASE_URL": bench_url})
    assert "| HEAD: median ms | queries |" in out and "| queue (default: needs review, least confident first) |" in out


def test_performance_bench_with_its_baseline():
    """The performance page's bench, its baseline (the page at BASELINE_COMMIT) beside it."""
    url = urlsplit(os.environ.get("DATABASE_URL", "postgis://civic@127.0.0.1:54339/civic"))
    bench_url = urlunsplit(url._replace(path=f"{url.path.rstrip('/')}_perf_smoke_bench"))
    out = run("performance_bench.py", "--reports", 200, "--runs", 1, "--baseline", env={"DATABASE_URL": bench_url})
    assert "| performance page, default 90 days |" in out and "baseline" in out
