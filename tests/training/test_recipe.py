import json
import math

import numpy as np
import pytest
import torch

from PIL import Image

from training.data import load_samples
from training.features import Images, spec_for
from training.finetune import paired_gain_z, param_groups, set_trainable
from training.head import HEAD_L2_CHOICES
from training.model import create_model, layer_groups
from training.recipe import Outcome, Recipe, resolve_device, run


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
    phase1 = recipe.phase1(model, train, val)
    history, calibration = [phase1.history], phase1.calibration
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
    assert not torch.equal(phase1.train_only["weight"], model.get_classifier().weight)


def test_phase2_that_never_beats_phase1_leaves_phase1s_head_fitted_on_every_image(recipe_and_images, image_folder):
    recipe, train, val = recipe_and_images
    recipe.config.epochs = 0  # no epoch can beat the start
    phase1_model = create_model(3, pretrained=True)
    calibration = Recipe(recipe.config, recipe.classes, recipe.device).phase1(phase1_model, train, val).calibration
    samples = load_samples(image_folder)
    trained = recipe.fit(samples[::2], samples[1::2])
    torch.testing.assert_close(trained.model.state_dict(), phase1_model.state_dict())
    assert trained.calibration == calibration
    assert trained.outcome is Outcome.PHASE2_REJECTED


def test_phase2_keeps_bn_statistics_and_frozen_groups_fixed(recipe_and_images):
    recipe, train, val = recipe_and_images
    recipe.config.epochs, recipe.config.unfreeze_per_epoch, recipe.config.patience = 1, 2, 5
    recipe.config.phase2_min_z = -math.inf  # keep the epoch whatever its val loss: this test is about what it changed
    model = create_model(3, pretrained=True)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    tuned = recipe.phase2(model, train, val, pretrained=True)
    assert tuned.kept and tuned.history[-1]["kept"]
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
    assert not recipe.phase2(model, train, val, pretrained=True).kept
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


def test_a_larger_backbone_is_trained_exported_and_recorded_in_the_model_format(image_folder, tmp_path, tiny_config):
    out = run(tiny_config(image_folder, tmp_path / "lite2", backbone="lite2", phase2="off", holdout_per_class=2))
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["architecture"] == "tf_efficientnet_lite2"  # what a council's model was trained on
    assert json.loads((out / "config.json").read_text())["backbone"] == "lite2"
    assert meta["metrics"]["evaluated_on"] == "holdout"  # served through ONNX Runtime on the holdout


def test_linear_probe_and_scratch_runs_skip_their_phase_and_say_so_in_history(image_folder, tmp_path, tiny_config):
    probe = json.loads((run(tiny_config(image_folder, tmp_path / "probe", linear_probe=True)) / "history.json").read_text())
    scratch = json.loads((run(tiny_config(image_folder, tmp_path / "scratch", pretrained=False)) / "history.json").read_text())
    assert probe["outcome"] == "probe" and {h["phase"] for h in probe["steps"]} == {1}
    assert scratch["outcome"] == "scratch" and {h["phase"] for h in scratch["steps"]} == {2}


def _similar_colours_folder(root, per_class=8):
    """Three classes of noisy, nearly equal colours: phase 1's head is unsure, so a phase 2 epoch can beat it."""
    rng = np.random.default_rng(0)
    for label, colour in {"graffiti": (130, 110, 110), "no_issue": (110, 130, 110), "pothole": (110, 110, 130)}.items():
        (root / label).mkdir(parents=True)
        for i in range(per_class):
            pixels = (np.array(colour) + rng.normal(0, 40, (90, 120, 3))).clip(0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / label / f"{i:03d}.jpg", quality=90)
    return root


OUTCOMES = {  # config overrides, whether there is a val split, the calibration's method
    Outcome.PROBE: (dict(linear_probe=True), True, "5-fold cross-validation"),
    Outcome.PHASE1_ONLY: ({}, False, "5-fold cross-validation"),
    Outcome.PHASE2_KEPT: (dict(lr=1e-5, patience=5, phase2_min_z=-math.inf), True, "validation split"),
    Outcome.PHASE2_REJECTED: (dict(phase2_min_z=math.inf), True, "5-fold cross-validation"),
    Outcome.SCRATCH: (dict(pretrained=False), True, "validation split"),
}


@pytest.mark.parametrize("outcome", list(Outcome))
def test_each_path_through_fit_ends_in_its_outcome(outcome, tmp_path, tiny_config):
    overrides, with_val, method = OUTCOMES[outcome]
    photos = _similar_colours_folder(tmp_path / "photos")
    config = tiny_config(photos, tmp_path / "out", **overrides)
    samples = load_samples(photos)
    torch.manual_seed(0)
    trained = Recipe(config, ["graffiti", "no_issue", "pothole"], torch.device("cpu")).fit(
        *((samples[::2], samples[1::2]) if with_val else (samples, [])))
    assert trained.outcome is outcome
    assert trained.calibration.metrics["method"] == method
    phases = {h["phase"] for h in trained.history}
    assert (1 in phases) == (outcome is not Outcome.SCRATCH)
    assert (2 in phases) == (outcome in (Outcome.PHASE2_KEPT, Outcome.PHASE2_REJECTED, Outcome.SCRATCH))
    assert any(h.get("kept") for h in trained.history) == (outcome is Outcome.PHASE2_KEPT)
    assert (trained.open_set is None) == (outcome is Outcome.SCRATCH)


def test_a_linear_probe_from_random_weights_is_refused_with_the_flags_to_change(image_folder, tmp_path, tiny_config):
    """It used to train nothing at all and export the random model."""
    with pytest.raises(ValueError, match="--linear-probe .* --no-pretrained"):
        run(tiny_config(image_folder, tmp_path / "out", linear_probe=True, pretrained=False))
    assert not (tmp_path / "out").exists()


def test_phase2_auto_is_skipped_without_cuda_and_a_bad_choice_is_refused(tmp_path, tiny_config):
    """On CPU phase 2's gate rejected it in every measured run, at 150-440 s a retrain: ``auto`` skips it there."""
    photos = _similar_colours_folder(tmp_path / "photos")
    samples = load_samples(photos)
    classes = ["graffiti", "no_issue", "pothole"]
    for phase2, expected in (("auto", Outcome.PHASE1_ONLY), ("off", Outcome.PHASE1_ONLY),
                             ("on", Outcome.PHASE2_REJECTED)):
        config = tiny_config(photos, tmp_path / "out", phase2=phase2, phase2_min_z=math.inf)
        trained = Recipe(config, classes, torch.device("cpu")).fit(samples[::2], samples[1::2])
        assert trained.outcome is expected
        assert (2 in {h["phase"] for h in trained.history}) == (phase2 == "on")
    with pytest.raises(ValueError, match="--phase2 'sometimes'; choose auto, on, off"):
        Recipe(tiny_config(photos, tmp_path / "out", phase2="sometimes"), classes, torch.device("cpu"))
