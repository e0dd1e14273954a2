"""inference/modelformat.py: the model directory contract both sides share."""
import json
import shutil

import pytest

from inference import modelformat
from inference.modelformat import ModelError, load_model


@pytest.fixture
def model_copy(onnx_model_dir, tmp_path):
    path = shutil.copytree(onnx_model_dir, tmp_path / "model")

    def edit(**changes):
        meta = json.loads((path / modelformat.METADATA_FILE).read_text())
        (path / modelformat.METADATA_FILE).write_text(json.dumps({**meta, **changes}))

    return path, edit


def test_training_writes_the_names_and_format_serving_reads(onnx_model_dir):
    import onnx

    graph = onnx.load(str(onnx_model_dir / modelformat.MODEL_FILE)).graph
    assert [i.name for i in graph.input] == [modelformat.INPUT_NAME]
    assert [o.name for o in graph.output] == [modelformat.OUTPUT_NAME]
    assert modelformat.read_metadata(onnx_model_dir)["format"] == modelformat.FORMAT_VERSION


def test_another_format_version_is_refused_by_name(model_copy):
    path, edit = model_copy
    edit(format=2)
    with pytest.raises(ModelError, match="unsupported model format 2; this code reads format 1"):
        load_model(path)


@pytest.mark.parametrize("preprocess", [[224, 256], "bicubic", {"interpolation": "lanczos9"}])
def test_a_malformed_preprocess_block_is_a_model_error(model_copy, preprocess):
    path, edit = model_copy
    edit(preprocess=preprocess)
    with pytest.raises(ModelError, match="invalid value"):
        load_model(path)


def test_an_open_set_block_without_a_threshold_is_a_model_error(model_copy):
    path, edit = model_copy
    edit(open_set={"method": "knn_cosine"})
    with pytest.raises(ModelError, match="open_set needs a numeric threshold"):
        load_model(path)
