import json

import numpy as np
import pytest
import torch
from PIL import Image

from inference.preprocess import PreprocessSpec, decode, preprocess
from inference.runtime import OnnxClassifier
from tests.fixtures_models import export_test_model, make_test_model
from training.cli import main
from training.data import load_samples
from training.evaluate import onnx_logits

SPEC = PreprocessSpec(input_size=64, resize_size=72)
CLASSES = ("graffiti", "no_issue", "pothole")


def _exported(tmp_path, temperature=1.0):
    model_dir = export_test_model(tmp_path / "m", CLASSES, temperature=temperature, spec=SPEC, pretrained=True)
    return make_test_model(len(CLASSES), pretrained=True), model_dir


def test_evaluate_json_prints_one_object_with_the_schema(image_folder, tmp_path, capsys):
    _, model_dir = _exported(tmp_path, temperature=1.3)
    assert main(["evaluate", "--model", str(model_dir), "--data", str(image_folder), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {"accuracy", "macro_f1", "per_class", "confusion_matrix", "ece", "n_images"} <= set(report)
    assert report["n_images"] == 24 and report["temperature"] == 1.3
    assert set(report["per_class"]["pothole"]) == {"precision", "recall", "f1", "support"}
    assert np.array(report["confusion_matrix"]).sum() == 24
    assert (model_dir / "confusion_matrix.png").stat().st_size and (model_dir / "reliability.png").stat().st_size


def test_evaluate_rejects_labels_the_model_does_not_know(image_folder, tmp_path, capsys):
    _, model_dir = _exported(tmp_path)
    (image_folder / "graffiti").rename(image_folder / "litter")
    assert main(["evaluate", "--model", str(model_dir), "--data", str(image_folder)]) == 2
    assert "graffiti, no_issue, pothole" in capsys.readouterr().err


def test_eval_transform_gives_the_serving_logits(image_folder, tmp_path):
    model, model_dir = _exported(tmp_path)
    paths = [s.path for s in load_samples(image_folder)[:4]]
    served = np.stack([preprocess(decode(p), SPEC) for p in paths])
    with torch.no_grad():
        expected = model(torch.from_numpy(served)).numpy()
    assert np.abs(onnx_logits(model_dir, paths) - expected).max() <= 1e-4


def test_evaluate_predictions_writes_each_photos_probabilities(image_folder, tmp_path, capsys):
    _, model_dir = _exported(tmp_path)
    out = tmp_path / "holdout_predictions.jsonl"
    assert main(["evaluate", "--model", str(model_dir), "--data", str(image_folder), "--predictions", str(out),
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == report["n_images"] == 24
    assert {"path", "label", "source", "probabilities"} == set(rows[0])
    assert set(rows[0]["probabilities"]) == {"graffiti", "no_issue", "pothole"}
    assert all(abs(sum(r["probabilities"].values()) - 1) < 1e-4 for r in rows)
    right = sum(max(r["probabilities"], key=r["probabilities"].get) == r["label"] for r in rows)
    assert right / len(rows) == pytest.approx(report["accuracy"])  # the same predictions as the report


def test_evaluate_measures_the_served_path_with_its_reduced_scale_decode(tmp_path):
    """A large JPEG is decoded at reduced scale when served: evaluate must see those logits, not a full decode's."""
    _, model_dir = _exported(tmp_path)
    rng = np.random.default_rng(0)
    photo = tmp_path / "big.jpg"
    Image.fromarray(rng.integers(0, 255, (1200, 1600, 3), dtype=np.uint8)).save(photo, quality=90)
    served, _ = OnnxClassifier(model_dir, {"DEVICE": "cpu"}).predict_logits([photo])
    full = preprocess(photo, SPEC, fast_decode=False)
    with torch.no_grad():
        full_decode = make_test_model(len(CLASSES), pretrained=True)(torch.from_numpy(full)[None]).numpy()
    assert np.abs(served - full_decode).max() > 1e-3  # the two decodes really differ on this photo
    np.testing.assert_allclose(onnx_logits(model_dir, [photo]), served, atol=1e-5)


def test_evaluate_refuses_a_model_serving_would_refuse(image_folder, tmp_path, capsys):
    _, model_dir = _exported(tmp_path)
    meta = json.loads((model_dir / "metadata.json").read_text())
    (model_dir / "metadata.json").write_text(json.dumps({**meta, "onnx_sha256": "0" * 64}))
    assert main(["evaluate", "--model", str(model_dir), "--data", str(image_folder)]) == 2
    assert "sha256" in capsys.readouterr().err


def test_evaluate_by_source_equals_evaluating_each_source_alone(image_folder, tmp_path, capsys):
    """retrain gates on the whole holdout and on the council's own photos: one pass gives both."""
    _, model_dir = _exported(tmp_path)
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("".join(
        json.dumps({"path": str(s.path), "label": s.label, "source": "local" if i % 3 == 0 else "bootstrap"}) + "\n"
        for i, s in enumerate(load_samples(image_folder))))

    def evaluate(*extra):
        assert main(["evaluate", "--model", str(model_dir), "--data", str(manifest), "--json",
                     "--plots-dir", str(tmp_path / "plots"), *extra]) == 0
        return json.loads(capsys.readouterr().out)

    together = evaluate("--by-source")
    assert set(together["by_source"]) == {"local", "bootstrap"}
    for source in ("local", "bootstrap"):
        alone = evaluate("--source", source)
        assert together["by_source"][source]["confusion_matrix"] == alone["confusion_matrix"]
        for key in ("n_images", "accuracy", "macro_f1", "ece"):
            assert together["by_source"][source][key] == pytest.approx(alone[key]), (source, key)
    assert (tmp_path / "plots" / "local" / "confusion_matrix.png").is_file()
