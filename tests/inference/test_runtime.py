"""inference/ on a real exported Lite0 model: loading, validation, batched calibrated predictions."""
import io
import json
import os
import shutil
import sys

import numpy as np
import pytest
from PIL import Image

from inference.modelformat import LoadedModel, ModelError, load_model
from inference.preprocess import decode, preprocess
from inference.runtime import OnnxClassifier, Prediction, RuntimeSetupError, check_single_runtime, softmax
from tests.fixtures_models import CLASSES

CPU = {"DEVICE": "cpu"}


def photo(seed: int, size=(800, 600), fmt="JPEG") -> bytes:
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)).resize(size, Image.Resampling.BICUBIC)
    out = io.BytesIO()
    img.save(out, fmt, quality=90)
    return out.getvalue()


@pytest.fixture
def model_copy(onnx_model_dir, tmp_path):
    """A writable copy of the test model, and a function to edit its metadata."""
    path = shutil.copytree(onnx_model_dir, tmp_path / "model")

    def edit(**changes):
        meta = json.loads((path / "metadata.json").read_text())
        (path / "metadata.json").write_text(json.dumps({**meta, **changes}))

    return path, edit


def test_load_model_reads_the_metadata(onnx_model_dir):
    model = load_model(onnx_model_dir)
    assert isinstance(model, LoadedModel)
    assert model.version == "test-1" and model.classes == CLASSES and model.temperature == 1.0
    assert model.spec.input_size == 224


def test_missing_metadata_keys_are_named(model_copy):
    path, _ = model_copy
    meta = json.loads((path / "metadata.json").read_text())
    del meta["temperature"], meta["classes"]
    (path / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="lacks classes, temperature"):
        load_model(path)


def test_a_missing_model_file_is_a_model_error(model_copy):
    path, _ = model_copy
    (path / "model.onnx").unlink()
    with pytest.raises(ModelError, match="cannot read"):
        load_model(path)


def test_sha256_mismatch_is_a_model_error(model_copy):
    path, edit = model_copy
    edit(onnx_sha256="0" * 64)
    with pytest.raises(ModelError, match="sha256"):
        load_model(path)


def test_truncated_model_file_fails_its_hash(model_copy):
    path, _ = model_copy
    data = (path / "model.onnx").read_bytes()
    (path / "model.onnx").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="corrupt"):
        OnnxClassifier(path, CPU)


def test_corrupt_model_with_a_matching_hash_fails_when_the_session_is_built(model_copy):
    import hashlib

    path, edit = model_copy
    garbage = b"not an onnx graph"
    (path / "model.onnx").write_bytes(garbage)
    edit(onnx_sha256=hashlib.sha256(garbage).hexdigest())
    classifier = OnnxClassifier(path, CPU)  # metadata is fine; the session is lazy
    with pytest.raises(ModelError, match="ONNX Runtime cannot load"):
        classifier.predict([photo(0)])


def test_predict_returns_sorted_calibrated_top_k(onnx_model_dir):
    classifier = OnnxClassifier(onnx_model_dir, {**CPU, "TOP_K": 2})
    (prediction,) = classifier.predict([photo(1)])
    assert isinstance(prediction, Prediction) and prediction.model_version == "test-1"
    assert len(prediction.top_k) == 2 and {s for s, _ in prediction.top_k} <= set(CLASSES)
    probs = [p for _, p in prediction.top_k]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-9
    full = classifier.predict_proba([photo(1)])
    assert full.shape == (1, 4) and full.sum() == pytest.approx(1.0)


def test_predict_accepts_bytes_paths_and_images(onnx_model_dir, tmp_path):
    classifier = OnnxClassifier(onnx_model_dir, CPU)
    data = photo(2)
    (tmp_path / "p.jpg").write_bytes(data)
    probs = classifier.predict_proba([data, tmp_path / "p.jpg", str(tmp_path / "p.jpg"), Image.open(io.BytesIO(data))])
    np.testing.assert_allclose(probs[:3], np.repeat(probs[:1], 3, axis=0), atol=1e-6)
    # An image object is already decoded (at full scale): no reduced-scale decode.
    full = preprocess(data, classifier.model.spec, fast_decode=False)
    np.testing.assert_allclose(probs[3], softmax(classifier.run_arrays(full[None]))[0], atol=1e-6)


def test_batched_predictions_match_one_at_a_time(onnx_model_dir):
    classifier = OnnxClassifier(onnx_model_dir, {**CPU, "MAX_BATCH": 3})  # 7 photos -> chunks of 3, 3, 1
    photos = [photo(i, size=(640 + 37 * i, 480)) for i in range(7)]
    batched = classifier.predict_proba(photos)
    single = np.concatenate([classifier.predict_proba([p]) for p in photos])
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_empty_input_gives_no_predictions(onnx_model_dir):
    assert OnnxClassifier(onnx_model_dir, CPU).predict([]) == []


def test_temperature_from_metadata_scales_the_logits(onnx_model_dir, model_copy):
    path, edit = model_copy
    edit(temperature=2.5)
    hot = OnnxClassifier(path, CPU)
    cold = OnnxClassifier(onnx_model_dir, CPU)
    data = [photo(3), photo(4)]
    logits = cold.run_arrays(np.stack([cold.preprocess(d) for d in data]))
    np.testing.assert_allclose(cold.predict_proba(data), softmax(logits), atol=1e-6)
    np.testing.assert_allclose(hot.predict_proba(data), softmax(logits / 2.5), atol=1e-6)
    assert not np.allclose(hot.predict_proba(data), cold.predict_proba(data), atol=1e-4)


def test_serving_matches_training_eval_on_the_same_decoded_image(onnx_model_dir, torch_test_model):
    """ONNX Runtime on the serving preprocessing == torch on the training eval transform (logits within 1e-4)."""
    import torch

    classifier = OnnxClassifier(onnx_model_dir, CPU)
    for seed in range(3):
        img = decode(photo(seed, size=(1024, 768)))
        serving = classifier.run_arrays(classifier.preprocess(img)[None])
        with torch.no_grad():
            training = torch_test_model(torch.from_numpy(preprocess(img, classifier.model.spec, fast_decode=False))[None])
        np.testing.assert_allclose(serving, training.numpy(), atol=1e-4)


def test_heic_photos_are_classified(onnx_model_dir):
    classifier = OnnxClassifier(onnx_model_dir, CPU)
    (prediction,) = classifier.predict([photo(5, fmt="HEIF")])
    assert prediction.top_k[0][0] in CLASSES


def test_cpu_device_uses_the_cpu_provider(onnx_model_dir):
    assert OnnxClassifier(onnx_model_dir, CPU).providers == ["CPUExecutionProvider"]


def test_cuda_device_without_cuda_is_a_clear_error(onnx_model_dir):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("onnxruntime-gpu is installed here")
    classifier = OnnxClassifier(onnx_model_dir, {"DEVICE": "cuda"})
    with pytest.raises(RuntimeSetupError, match="gpu"):
        classifier.predict([photo(0)])


def test_invalid_options_list_the_choices(onnx_model_dir):
    with pytest.raises(ValueError, match="choose auto, cuda, cpu"):
        OnnxClassifier(onnx_model_dir, {"DEVICE": "tpu"})
    with pytest.raises(ValueError, match="INTRA_OP_THREADS"):
        OnnxClassifier(onnx_model_dir, {"THREADS": 2})


def test_both_onnxruntime_wheels_installed_is_reported(monkeypatch):
    from importlib import metadata

    monkeypatch.setattr(metadata, "version", lambda name: "1.31.1")
    with pytest.raises(RuntimeSetupError, match="onnxruntime==1.31.1 and onnxruntime-gpu==1.31.1"):
        check_single_runtime()


def test_the_session_is_created_on_first_use_not_at_construction(onnx_model_dir):
    classifier = OnnxClassifier(onnx_model_dir, CPU)
    assert classifier._session is None
    classifier.predict([photo(0)])
    assert classifier._session is not None


@pytest.mark.skipif(sys.platform == "win32", reason="needs fork")
def test_a_classifier_used_before_a_fork_builds_a_new_session_in_the_child(onnx_model_dir):
    classifier = OnnxClassifier(onnx_model_dir, {**CPU, "INTRA_OP_THREADS": 2})
    expected = classifier.predict_proba([photo(6)])
    parent_session = classifier._session
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns into pytest
        try:
            probs = classifier.predict_proba([photo(6)])
            ok = classifier._session is not parent_session and np.allclose(probs, expected, atol=1e-6)
            os.write(write, b"ok" if ok else b"mismatch")
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        answer = pipe.read()
    os.waitpid(pid, 0)
    assert answer == b"ok"


def test_the_core_imports_neither_django_nor_torch_nor_onnxruntime_up_front():
    import subprocess

    code = (
        "import sys, inference.modelformat, inference.preprocess, inference.runtime, inference.metrics, classifier.cli; "
        "print(sorted(m for m in ('django', 'torch', 'training', 'onnxruntime', 'classifier.models')"
        " if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
