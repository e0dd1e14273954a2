import pytest

from tests.fixtures_models import export_test_model, make_test_model


@pytest.fixture(scope="session")
def onnx_model_dir(tmp_path_factory):
    """A real Lite0 model directory (4 classes, fresh head, version "test-1"), exported once per session."""
    pytest.importorskip("torch")
    return export_test_model(tmp_path_factory.mktemp("models") / "test-1")


@pytest.fixture(scope="session")
def torch_test_model():
    """The torch model whose weights ``onnx_model_dir`` holds."""
    pytest.importorskip("torch")
    return make_test_model()
