import hashlib
import json

import numpy as np
import onnx
import onnxruntime as ort
import torch

from inference.preprocess import PreprocessSpec
from training.export import export_model
from training.model import create_model

SPEC = PreprocessSpec(input_size=96, resize_size=110)


def test_export_writes_the_model_format(tmp_path):
    model = create_model(3, pretrained=False)
    out = export_model(
        model,
        classes=["a", "b", "c"],
        out_dir=tmp_path / "m",
        preprocess=SPEC,
        temperature=1.5,
        metrics={"macro_f1": 0.5},
        training_data={"n_images": 3},
        parent_version="v0",
    )
    assert sorted(p.name for p in out.iterdir()) == ["metadata.json", "model.onnx"]
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["format"] == 1
    assert meta["architecture"] == "tf_efficientnet_lite0"
    assert meta["classes"] == ["a", "b", "c"]
    assert PreprocessSpec.from_dict(meta["preprocess"]) == SPEC
    assert meta["temperature"] == 1.5
    assert meta["parent_version"] == "v0"
    assert meta["metrics"] == {"macro_f1": 0.5} and meta["training_data"] == {"n_images": 3}
    assert meta["onnx_sha256"] == hashlib.sha256((out / "model.onnx").read_bytes()).hexdigest()
    assert meta["version"] and meta["created"]


def test_exported_onnx_matches_torch_with_a_dynamic_batch(tmp_path):
    model = create_model(2, pretrained=False).eval()
    export_model(model, classes=["a", "b"], out_dir=tmp_path, preprocess=SPEC)
    graph = onnx.load(str(tmp_path / "model.onnx"))
    assert graph.opset_import[0].version >= 17
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input"]
    assert [o.name for o in session.get_outputs()] == ["logits"]
    x = np.random.default_rng(0).standard_normal((5, 3, 96, 96)).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    (actual,) = session.run(["logits"], {"input": x})
    assert actual.shape == (5, 2)
    assert np.abs(actual - expected).max() <= 1e-4


def test_export_leaves_the_callers_model_in_training_mode(tmp_path):
    model = create_model(2, pretrained=False).train()
    export_model(model, classes=["a", "b"], out_dir=tmp_path, preprocess=SPEC)
    assert model.training
