import json
import math

import numpy as np
import pytest
import torch

from training.data import load_samples
from training.model import create_model, layer_groups
from training.recipe import (
    HEAD_L2_CHOICES, Images, Recipe, paired_gain_z, param_groups, resolve_device, run, set_trainable, spec_for,
)


def _backbone_state(model):
    return {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("classifier.")}


@pytest.fixture
def recipe_and_images(image_folder, tmp_path, tiny_config):
    config = tiny_config(image_folder, tmp_path / "out")
    classes = ["graffiti", "no_issue", "pothole"]
    samples = load_samples(image_folder)
    recipe = Recipe(config, classes, torch.device("cpu"))
    spec = spec_for(config)
    return recipe, Images(samples[::2], spec, classes, "train"), Images(samples[1::2], spec, classes, "val")


def test_phase1_trains_the_head_and_leaves_backbone_and_bn_statistics_untouched(recipe_and_images):
    recipe, train, val = recipe_and_images
    model = create_model(3, pretrained=True)
    before, head_before = _backbone_state(model), model.get_classifier().weight.clone()
    history, calibration, train_head = recipe.phase1(model, train, val)
    after = _backbone_state(model)
    assert any("running_mean" in k for k in before)
    for key, value in before.items():
        assert torch.equal(value, after[key]), key
    assert not torch.equal(head_before, model.get_classifier().weight)
    # Cross-validation chose the L2 strength and the temperature; the head was then refitted on train + val.
    assert history[0]["cv_folds"] == 5 and history[0]["head_l2"] in HEAD_L2_CHOICES
    assert history[0]["images"] == len(train.labels) + len(val.labels)
    assert calibration.metrics["method"] == "5-fold cross-validation"
    assert calibration.metrics["n_images"] == history[0]["images"]  # every image scored out of fold
    # T is fitted on those logits; it stays 1 only when none was wrong (nothing to recalibrate on)
    assert calibration.temperature != 1.0 or calibration.metrics["accuracy"] == 1.0
    assert not torch.equal(train_head["weight"], model.get_classifier().weight)


def test_phase2_that_never_beats_phase1_leaves_phase1s_head_fitted_on_every_image(recipe_and_images, image_folder):
    recipe, train, val = recipe_and_images
    recipe.config.epochs = 0  # no epoch can beat the start
    phase1_model = create_model(3, pretrained=True)
    _, calibration, _ = Recipe(recipe.config, recipe.classes, recipe.device).phase1(phase1_model, train, val)
    samples = load_samples(image_folder)
    trained = recipe.fit(samples[::2], samples[1::2])
    torch.testing.assert_close(trained.model.state_dict(), phase1_model.state_dict())
    assert trained.calibration == calibration


def test_phase2_keeps_bn_statistics_and_frozen_groups_fixed(recipe_and_images):
    recipe, train, val = recipe_and_images
    recipe.config.epochs, recipe.config.unfreeze_per_epoch, recipe.config.patience = 1, 2, 5
    recipe.config.phase2_min_z = -math.inf  # keep the epoch whatever its val loss: this test is about what it changed
    model = create_model(3, pretrained=True)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    history, kept = recipe.phase2(model, train, val, pretrained=True)
    assert kept and history[-1]["kept"]
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert not {k for k in changed if "running_" in k or "num_batches" in k}
    assert any(k.startswith("blocks.6.") for k in changed)  # third group from the top was unfrozen
    assert not any(k.startswith(("blocks.5.", "conv_stem")) for k in changed)


def test_phase2_gain_within_the_val_noise_is_rejected_and_the_start_restored(recipe_and_images):
    recipe, train, val = recipe_and_images
    recipe.config.epochs, recipe.config.patience = 1, 5
    recipe.config.phase2_min_z = math.inf  # no gain is ever enough
    model = create_model(3, pretrained=True)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    history, kept = recipe.phase2(model, train, val, pretrained=True)
    assert not kept
    torch.testing.assert_close(model.state_dict(), before)


def test_paired_gain_counts_standard_errors_of_the_per_photo_difference():
    before = np.array([1.0, 1.0, 1.0, 1.0])
    assert paired_gain_z(before, before - np.array([0.1, 0.3, 0.1, 0.3])) == pytest.approx(0.2 / (0.1155 / 2), rel=1e-3)
    assert paired_gain_z(before, before + 0.1) <= 0
    assert paired_gain_z(before[:1], before[:1] - 1) == 0.0  # one photo: no evidence


def test_set_trainable_freezes_all_but_the_top_groups_and_puts_bn_in_eval():
    model = create_model(3, pretrained=False)
    set_trainable(model, 3, train_bn=False)
    trainable = {name for name, mods in layer_groups(model) if all(p.requires_grad for m in mods for p in m.parameters())}
    assert trainable == {"block6", "head", "classifier"}
    assert not any(p.requires_grad for p in model.blocks[5].parameters())
    assert not model.bn2.training and model.training


def test_layer_wise_learning_rates_shrink_by_the_configured_factor_towards_the_stem():
    model = create_model(3, pretrained=False)
    groups = param_groups(model, lr=1e-3, lr_decay=2.6, weight_decay=0.01)
    assert [g["name"] for g in groups][::9] == ["stem", "classifier"]
    assert groups[-1]["lr"] == pytest.approx(1e-3)
    for lower, upper in zip(groups, groups[1:]):
        assert upper["lr"] / lower["lr"] == pytest.approx(2.6)
    optimizer = torch.optim.AdamW(groups)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 / 2.6**9)
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(list(model.parameters()))


def test_unknown_device_lists_the_choices():
    with pytest.raises(ValueError, match="auto, cpu, cuda"):
        resolve_device("tpu")


def test_run_writes_a_model_directory_and_evaluates_the_holdout(image_folder, tmp_path, tiny_config):
    out = run(tiny_config(image_folder, tmp_path / "model", holdout_per_class=2, parent_version="v1"))
    assert {"model.onnx", "metadata.json", "config.json", "split.jsonl", "history.json", "evaluation.json",
            "confusion_matrix.png", "reliability.png"} <= {p.name for p in out.iterdir()}
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["parent_version"] == "v1" and meta["classes"] == ["graffiti", "no_issue", "pothole"]
    assert meta["metrics"]["evaluated_on"] == "holdout" and meta["metrics"]["n_images"] == 6
    assert meta["training_data"]["n_images"] == 18
    assert json.loads((out / "config.json").read_text())["holdout_per_class"] == 2
    splits = [json.loads(line)["split"] for line in (out / "split.jsonl").read_text().splitlines()]
    assert splits.count("holdout") == 6


def test_linear_probe_and_scratch_runs_skip_their_phase(image_folder, tmp_path, tiny_config):
    probe = run(tiny_config(image_folder, tmp_path / "probe", linear_probe=True))
    scratch = run(tiny_config(image_folder, tmp_path / "scratch", pretrained=False))
    probe_phases = {h["phase"] for h in json.loads((probe / "history.json").read_text())}
    scratch_phases = {h["phase"] for h in json.loads((scratch / "history.json").read_text())}
    assert probe_phases == {1} and scratch_phases == {2}
