"""The classifier backend named by the ``CLASSIFIER`` setting (``classifier.onnx.OnnxClassifier``).

The core (model format, preprocessing, ONNX Runtime) lives in :mod:`inference`,
importable without Django; this module keeps the setting's dotted path and the
names the Django layer uses.
"""
from inference.modelformat import LoadedModel, ModelError, load_model
from inference.runtime import OnnxClassifier, Prediction, RuntimeSetupError, check_single_runtime

__all__ = ["LoadedModel", "ModelError", "OnnxClassifier", "Prediction", "RuntimeSetupError", "check_single_runtime",
           "load_model"]
