"""Open set: the k-NN score, its held-out threshold, and the exported unknown_score output."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from classifier.onnx import OnnxClassifier
from training.openset import KnnScore, energy, fit_open_set, knn_score, normalise
from training.recipe import run


def test_knn_score_is_the_cosine_distance_to_the_kth_neighbour():
    bank = normalise(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), (2,))
    q = normalise(torch.tensor([[1.0, 0.0]]), (2,))
    assert knn_score(bank, q, 1).item() == pytest.approx(0.0, abs=1e-6)
    assert knn_score(bank, q, 2).item() == pytest.approx(1 - 2 ** -0.5, abs=1e-6)  # the (1, 1) photo
    assert knn_score(bank, q, 3).item() == pytest.approx(1.0, abs=1e-6)


def test_threshold_flags_the_quantile_of_held_out_known_photos_and_far_photos():
    rng = np.random.default_rng(0)
    centres = np.eye(8)[:3] * 5
    feats = torch.tensor(np.concatenate([c + rng.normal(0, 1, (60, 8)) for c in centres]), dtype=torch.float32)
    labels = np.repeat([0, 1, 2], 60)
    os_ = fit_open_set(feats, labels, (8,), k=5, quantile=0.9)
    assert (os_.held_out_scores >= os_.threshold).mean() == pytest.approx(0.1, abs=0.02)
    known = torch.tensor(centres[1] + rng.normal(0, 1, (50, 8)), dtype=torch.float32)
    unknown = torch.tensor(np.eye(8)[5] * 5 + rng.normal(0, 1, (50, 8)), dtype=torch.float32)  # a fourth class
    score = lambda x: knn_score(os_.bank, normalise(x, (8,)), 5).numpy()  # noqa: E731
    assert (score(known) >= os_.threshold).mean() < 0.25
    assert (score(unknown) >= os_.threshold).mean() > 0.9
    assert os_.to_metadata()["threshold"] == os_.threshold and os_.to_metadata()["k"] == 5
    # the exported module computes the same score from raw (unnormalised) features
    torch.testing.assert_close(KnnScore(os_.bank, (8,), 5)(unknown), torch.from_numpy(score(unknown)))


def test_energy_rule_flags_low_logits_the_distance_misses_and_the_score_is_the_or_of_both():
    rng = np.random.default_rng(1)
    centres = np.eye(8)[:3] * 5
    feats = torch.tensor(np.concatenate([c + rng.normal(0, 1, (60, 8)) for c in centres]), dtype=torch.float32)
    labels = np.repeat([0, 1, 2], 60)
    oof = np.eye(3)[labels] * 6 + rng.normal(0, 1, (180, 3))  # confident out-of-fold logits for known photos
    os_ = fit_open_set(feats, labels, (8,), k=1, quantile=0.95, held_out_logits=oof, temperature=2.0,
                       energy_quantile=0.9)
    assert os_.threshold == 0.0 and os_.energy.threshold == pytest.approx(np.quantile(energy(oof, 2.0), 0.9))
    assert os_.knn.threshold == pytest.approx(np.quantile(os_.held_out_scores, 0.95))
    meta = os_.to_metadata()
    assert meta["method"] == "knn_cosine_or_energy" and meta["energy"]["temperature"] == 2.0
    # a photo amid the training photos but with flat logits: the distance passes it, the energy flags it
    near = feats[:4] + 0.01
    flat, sharp = torch.zeros(4, 3), torch.tensor(np.eye(3)[[0, 0, 0, 0]] * 6, dtype=torch.float32)
    score = os_.scorer((8,))
    assert (score(near, flat) >= 0).all() and (score(near, sharp) < 0).all()
    far = torch.tensor(np.eye(8)[6] * 5 + rng.normal(0, 1, (4, 8)), dtype=torch.float32)
    assert (score(far, sharp) >= 0).all()  # far from every training photo: the distance flags it
    # by hand: the larger margin over each threshold, in units of the held-out spread
    by_hand = torch.maximum(
        (knn_score(os_.bank, normalise(far, (8,)), 1) - os_.knn.threshold) / os_.knn.scale,
        (energy(sharp, 2.0) - os_.energy.threshold) / os_.energy.scale)
    torch.testing.assert_close(score(far, sharp), by_hand)
    # without logits, or with the rule off, the score is the distance as before
    assert fit_open_set(feats, labels, (8,), held_out_logits=oof, energy_quantile=0).energy is None
    assert fit_open_set(feats, labels, (8,)).to_metadata()["method"] == "knn_cosine"


def test_trained_model_exports_unknown_score_and_serving_flags_unlike_photos(image_folder, tmp_path, tiny_config):
    out = run(tiny_config(image_folder, tmp_path / "out", linear_probe=True, open_set_k=3))
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["open_set"]["method"] == "knn_cosine_or_energy" and meta["open_set"]["bank_size"] == 24
    classifier = OnnxClassifier(out, {"DEVICE": "cpu"})
    like = next((image_folder / "pothole").iterdir())
    stripes = np.zeros((90, 120, 3), np.uint8)
    stripes[:, ::8] = 255  # black and white stripes: nothing like the flat colour classes
    Image.fromarray(stripes).save(tmp_path / "odd.png")
    known, odd = classifier.predict([like, tmp_path / "odd.png"])
    assert known.unknown_score is not None and odd.unknown_score > known.unknown_score
    assert odd.unknown and odd.unknown_score >= meta["open_set"]["threshold"]
    assert not known.unknown
