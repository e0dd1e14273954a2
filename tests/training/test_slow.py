import json
import os
from pathlib import Path

import pytest

from training.config import TrainConfig
from training.recipe import run

DATASET = Path(os.environ.get("CIVIC_DATASET", Path(__file__).parents[3] / "shared/datasets/civic-photos-dev"))


@pytest.mark.slow
def test_few_label_training_on_the_shared_dataset_is_far_above_chance(tmp_path):
    if not DATASET.is_dir():
        pytest.skip(f"dataset not found at {DATASET} (set CIVIC_DATASET)")
    config = TrainConfig(data=str(DATASET), out=str(tmp_path / "model"), per_class=10, holdout_per_class=10,
                         epochs=1, epoch_images=32, image_size=160, resize_size=183)
    meta = json.loads((run(config) / "metadata.json").read_text())
    assert meta["metrics"]["evaluated_on"] == "holdout"
    assert meta["metrics"]["macro_f1"] >= 0.75  # chance is 0.25 for four classes
