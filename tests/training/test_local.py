"""Local adaptation and the feature cache: sources in manifests, source weights, cached features."""
import dataclasses
import json

import numpy as np
import pytest
import torch

from training.data import load_samples, write_manifest
from training.model import create_model
from training.features import Encoder, FeatureCache, Images, spec_for
from training.head import fit_head, sample_weights
from training.recipe import run


def test_sample_weights_balance_classes_and_give_local_photos_their_share():
    labels = np.array([0] * 8 + [1] * 4)
    local = np.array([True, True] + [False] * 6 + [False] * 4)
    w = sample_weights(labels, local, 0.5)
    assert w.mean() == pytest.approx(1.0)
    assert w[labels == 0].sum() == pytest.approx(w[labels == 1].sum())  # classes weigh the same
    assert w[:2].sum() == pytest.approx(w[2:8].sum())  # class 0's two local photos carry half of it
    # share 0: every photo of a class weighs the same, whatever its source
    w0 = sample_weights(labels, local, 0.0)
    assert np.allclose(w0[labels == 0], w0[0]) and w0[labels == 0].sum() == pytest.approx(w0[labels == 1].sum())
    # a class with only one source is not reweighted
    assert np.allclose(w[labels == 1], w[8])


def test_source_weighting_moves_the_fitted_head_toward_the_local_photos():
    """Two local photos of class 1 sit in class 0's region; weighted up, the head follows them."""
    rng = np.random.default_rng(0)
    x0, x1 = rng.normal([2, 0], 0.3, (40, 2)), rng.normal([-2, 0], 0.3, (40, 2))
    odd = rng.normal([1.5, 0], 0.1, (2, 2))  # local photos labelled 1, inside class 0
    feats = torch.tensor(np.concatenate([x0, x1, odd]), dtype=torch.float32)[None]
    labels = torch.tensor([0] * 40 + [1] * 42)
    local = np.r_[np.zeros(80, bool), np.ones(2, bool)]
    probe = torch.tensor([[1.5, 0.0]])
    p = {}
    for share in (0.0, 0.95):
        head = torch.nn.Linear(2, 2)
        w = torch.from_numpy(sample_weights(labels.numpy(), local, share))
        fit_head(head, feats, labels, torch.arange(82), l2=1e-3, max_iter=200, weights=w)
        p[share] = torch.softmax(head(probe), 1)[0, 1].item()
    assert p[0.0] < 0.5 < p[0.95]


def test_manifest_source_round_trips_and_local_flag_marks_photos_local(image_folder, tmp_path, tiny_config):
    samples = load_samples(image_folder)
    assert {s.source for s in samples} == {"bootstrap"}
    manifest = tmp_path / "m.jsonl"
    write_manifest([dataclasses.replace(s, source="local") if i % 2 else s for i, s in enumerate(samples)], manifest)
    again = load_samples(manifest)
    assert [s.source for s in again] == ["local" if i % 2 else "bootstrap" for i in range(len(samples))]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"path": str(samples[0].path), "label": "pothole", "source": "twitter"}) + "\n")
    with pytest.raises(ValueError, match="unknown source 'twitter'"):
        load_samples(bad)
    out = run(tiny_config(image_folder, tmp_path / "out", local=str(image_folder), linear_probe=True))
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["training_data"]["per_source"] == {"bootstrap": len(samples), "local": len(samples)}


def _encode(config, samples, classes, model):
    images = Images(samples, spec_for(config), classes, "t")
    return Encoder(config, torch.device("cpu")).feature_views(model, images, config.cache_views), images


def test_feature_cache_is_hit_for_unchanged_photos_and_matches_a_fresh_encoding(image_folder, tmp_path, tiny_config):
    samples = load_samples(image_folder)
    classes = sorted({s.label for s in samples})
    model = create_model(len(classes)).eval()
    cached = tiny_config(image_folder, tmp_path / "o", feature_cache=str(tmp_path / "cache"), cache_views=3)
    first, _ = _encode(cached, samples, classes, model)
    files = sorted((tmp_path / "cache").rglob("*.npy"))
    assert len(files) == 3 * len(samples)  # one per photo and view
    second, images = _encode(cached, samples, classes, model)
    torch.testing.assert_close(first, second)
    assert not images._decoded  # every view came from the cache: nothing was decoded
    fresh, _ = _encode(dataclasses.replace(cached, feature_cache=""), samples, classes, model)
    torch.testing.assert_close(first, fresh, atol=1e-5, rtol=1e-4)  # augmented views are seeded per photo
    assert sorted((tmp_path / "cache").rglob("*.npy")) == files


def test_feature_cache_misses_for_a_new_photo_or_another_backbone(image_folder, tmp_path, tiny_config, monkeypatch):
    samples = load_samples(image_folder)
    classes = sorted({s.label for s in samples})
    model = create_model(len(classes)).eval()
    config = tiny_config(image_folder, tmp_path / "o", feature_cache=str(tmp_path / "cache"), cache_views=1)
    _encode(config, samples[:-1], classes, model)
    _, images = _encode(config, samples, classes, model)
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == len(samples)  # only the new photo was encoded
    assert list(images._decoded) == [len(samples) - 1]  # ... and only it was decoded
    # other weights (or another architecture / feature levels / preprocessing) -> another key: all miss
    monkeypatch.setattr("training.features.weights_sha256", lambda backbone: "0" * 64)
    _encode(config, samples, classes, model)
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == 2 * len(samples)
    _encode(dataclasses.replace(config, stage_features=False), samples, classes, create_model(len(classes), stage_features=False).eval())
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == 3 * len(samples)
    _encode(dataclasses.replace(config, backbone="lite1"), samples, classes, create_model(len(classes), backbone="lite1").eval())
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == 4 * len(samples)


def test_a_corrupt_cache_file_is_recomputed(tmp_path):
    cache = FeatureCache(tmp_path, "k")
    cache.put("ab" * 32, "view0", np.ones(3, np.float32))
    path = next(tmp_path.rglob("*.npy"))
    path.write_bytes(b"not numpy")
    assert cache.get("ab" * 32, "view0") is None


def test_cross_validation_judges_the_l2_with_the_weights_the_head_is_fitted_with():
    """A 6-photo class beside two of 60: the CV criterion is the weighted out-of-fold NLL, so the small
    class counts as much as a big one when the head's L2 is chosen (not 6 photos in 126)."""
    from training.head import HEAD_L2_CHOICES, cross_validate_head
    from training.metrics import nll_per_sample

    rng = np.random.default_rng(1)
    counts = (60, 60, 6)
    feats = torch.tensor(np.concatenate([rng.normal(3 * np.eye(3)[c], 1.5, (n, 3)) for c, n in enumerate(counts)]),
                         dtype=torch.float32)[None]
    labels = torch.tensor(np.repeat([0, 1, 2], counts))
    w = torch.from_numpy(sample_weights(labels.numpy(), np.zeros(len(labels), bool), 0.0))
    loss, l2, temperature, oof = cross_validate_head(torch.nn.Linear(3, 3), feats, labels, folds=3, seed=0,
                                                     max_iter=100, weights=w)
    per_photo = nll_per_sample(oof, labels.numpy(), temperature)
    assert l2 in HEAD_L2_CHOICES
    assert loss == pytest.approx(float((w.numpy() * per_photo).sum() / w.numpy().sum()), rel=1e-6)
    assert loss != pytest.approx(float(per_photo.mean()), rel=1e-3)  # not the mean over photos
    plain, *_ = cross_validate_head(torch.nn.Linear(3, 3), feats, labels, folds=3, seed=0, max_iter=100)
    assert np.isfinite(plain)
