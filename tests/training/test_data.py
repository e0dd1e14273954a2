import json

import numpy as np
import pytest
from PIL import Image

from inference.preprocess import PreprocessSpec, preprocess, to_array
from training.config import TrainConfig
from training.data import (
    Augment, Sample, class_names, load_for_training, load_samples, stratified_folds, stratified_take,
    write_manifest,
)
from training.recipe import split_samples

SPEC = PreprocessSpec(input_size=64, resize_size=72)


def test_image_folder_labels_come_from_folder_names(image_folder):
    samples = load_samples(image_folder)
    assert len(samples) == 24
    assert class_names(samples) == ["graffiti", "no_issue", "pothole"]
    assert all(s.path.parent.name == s.label and s.split == "train" for s in samples)


def test_jsonl_and_csv_manifests_read_the_same(image_folder, tmp_path):
    rows = [{"path": f"photos/pothole/00{i}.jpg", "label": "pothole", "report_id": 10 + i, "split": s}
            for i, s in enumerate(["train", "val", "holdout"])]
    jsonl = tmp_path / "m.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    csv = tmp_path / "m.csv"
    csv.write_text("path,label,report_id,split\n" + "".join(f"{r['path']},pothole,{r['report_id']},{r['split']}\n" for r in rows))
    for manifest in (jsonl, csv):
        samples = load_samples(manifest)
        assert [s.split for s in samples] == ["train", "val", "holdout"]
        assert [s.report_id for s in samples] == ["10", "11", "12"]
        assert all(s.path.is_file() for s in samples)


def test_manifest_with_an_unknown_split_names_the_valid_ones(tmp_path):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"path": "a.jpg", "label": "x", "split": "test"}) + "\n")
    with pytest.raises(ValueError, match="train, val, holdout"):
        load_samples(manifest)


def test_written_manifest_reads_back(image_folder, tmp_path):
    samples = load_samples(image_folder)[:3]
    write_manifest(samples, tmp_path / "out.jsonl")
    assert [(s.path.resolve(), s.label) for s in load_samples(tmp_path / "out.jsonl")] == [(s.path.resolve(), s.label) for s in samples]


def test_stratified_take_is_seeded_and_per_class(image_folder):
    samples = load_samples(image_folder)
    taken, rest = stratified_take(samples, per_class=3, seed=1)
    assert sorted(s.label for s in taken) == ["graffiti"] * 3 + ["no_issue"] * 3 + ["pothole"] * 3
    assert not set(taken) & set(rest) and len(taken) + len(rest) == len(samples)
    assert stratified_take(list(reversed(samples)), per_class=3, seed=1)[0] == taken
    assert stratified_take(samples, per_class=3, seed=2)[0] != taken


def test_holdout_never_leaks_into_training_whatever_the_seed_or_budget(image_folder):
    samples = load_samples(image_folder)
    holdouts = []
    for seed in (0, 1, 2):
        for per_class in (None, 3):
            split = split_samples(samples, TrainConfig(seed=seed, per_class=per_class, holdout_per_class=2))
            held = {s.path for s in split.holdout}
            assert len(held) == 6
            assert not held & {s.path for s in split.train + split.val}
            assert not {s.path for s in split.train} & {s.path for s in split.val}
            holdouts.append(held)
    assert all(h == holdouts[0] for h in holdouts)  # one holdout for every seed


def test_manifest_holdout_rows_are_never_trained_on(image_folder):
    samples = [Sample(s.path, s.label, None, "holdout" if i % 4 == 0 else "train")
               for i, s in enumerate(load_samples(image_folder))]
    split = split_samples(samples, TrainConfig(per_class=2))
    assert {s.path for s in split.holdout} == {s.path for s in samples if s.split == "holdout"}
    assert not {s.path for s in split.holdout} & {s.path for s in split.train + split.val}


def test_training_eval_arrays_are_the_serving_preprocess(image_folder):
    path = next((image_folder / "pothole").iterdir())
    crop, small = load_for_training(path, SPEC)
    np.testing.assert_array_equal(to_array(crop, SPEC), preprocess(path.read_bytes(), SPEC))
    assert min(small.size) == SPEC.resize_size


def test_augment_is_seeded_and_sized():
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (90, 120, 3), dtype=np.uint8))
    a = Augment()(img, SPEC, np.random.default_rng(3))
    b = Augment()(img, SPEC, np.random.default_rng(3))
    assert a.shape == (3, 64, 64) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)


def test_stratified_folds_put_every_class_in_every_fold_and_are_seeded():
    labels = np.repeat([0, 1, 2], [5, 7, 12])
    folds = stratified_folds(labels, 5, seed=3)
    for fold in range(5):
        assert set(labels[folds == fold]) == {0, 1, 2}
    assert np.bincount(folds[labels == 2]).tolist() == [3, 3, 2, 2, 2]
    assert (stratified_folds(labels, 5, seed=3) == folds).all()
    assert not (stratified_folds(labels, 5, seed=4) == folds).all()
