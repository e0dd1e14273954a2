"""The inference core shared by serving and training: numpy, Pillow and onnxruntime, never Django or torch.

- :mod:`inference.modelformat`: the model directory contract (file and tensor names, format, validation);
- :mod:`inference.preprocess`: decoding and the eval transform, numbers from a model's metadata;
- :mod:`inference.runtime`: ONNX Runtime sessions and batched calibrated predictions;
- :mod:`inference.metrics`: precision, recall, F1, confusion matrices and calibration error.
"""
