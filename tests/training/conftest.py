"""Small generated ImageFolder trees and configs: the training tests run in seconds, without a database."""
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from training.config import TrainConfig

COLOURS = {"graffiti": (200, 40, 40), "no_issue": (40, 200, 40), "pothole": (40, 40, 200)}


def make_image_folder(root: Path, per_class: int = 8, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for label, colour in COLOURS.items():
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = (np.array(colour) + rng.normal(0, 40, (90, 120, 3))).clip(0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / label / f"{i:03d}.jpg", quality=90)
    return root


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    return make_image_folder(tmp_path / "photos")


@pytest.fixture
def tiny_config():
    """Build a config small enough to train in a couple of seconds on 64 px images."""

    def build(data: Path, out: Path, **overrides) -> TrainConfig:
        values = dict(data=str(data), out=str(out), image_size=64, resize_size=72, cache_views=2,
                      epochs=2, epoch_images=12, batch_size=6, threads=2, phase2="on")
        return TrainConfig(**(values | overrides))

    return build
