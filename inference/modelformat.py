"""The model directory contract (docs/MODEL_FORMAT.md), written once for both sides.

Training writes a model directory with these names and this metadata;
serving, ``training evaluate`` and the Django registry read it back through
:func:`load_model`. Standard library and :mod:`inference.preprocess` only.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inference.preprocess import PreprocessSpec

FORMAT_VERSION = 1  # metadata.json "format": what this code writes and reads
MODEL_FILE = "model.onnx"
METADATA_FILE = "metadata.json"
HOLDOUT_PREDICTIONS_FILE = "holdout_predictions.jsonl"  # optional: per-photo holdout probabilities
INPUT_NAME = "input"  # float32 [N, 3, S, S]
OUTPUT_NAME = "logits"  # float32 [N, C], before temperature scaling
UNKNOWN_OUTPUT = "unknown_score"  # optional float32 [N]: higher = less like the training photos
REQUIRED_METADATA = ("format", "version", "classes", "preprocess", "temperature", "onnx_sha256")


class ModelError(Exception):
    """A model directory that cannot be served: missing, malformed or corrupt."""


@dataclass(frozen=True)
class LoadedModel:
    """A validated model directory; ``onnx_bytes`` are the bytes whose sha256 was checked."""

    path: Path
    version: str
    classes: tuple[str, ...]
    spec: PreprocessSpec
    temperature: float
    metadata: dict[str, Any]
    onnx_bytes: bytes
    unknown_threshold: float | None = None  # metadata's open_set.threshold; None = no open-set output


def sha256_hex(data: bytes) -> str:
    """The ``onnx_sha256`` of a model file's bytes."""
    return hashlib.sha256(data).hexdigest()


def read_metadata(model_dir: str | Path) -> dict[str, Any]:
    """The parsed ``metadata.json`` of a model directory (not validated: see :func:`load_model`)."""
    return json.loads((Path(model_dir) / METADATA_FILE).read_text())


def write_metadata(model_dir: str | Path, metadata: dict[str, Any]) -> None:
    (Path(model_dir) / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")


def load_model(model_dir: str | Path) -> LoadedModel:
    """Read and validate ``model.onnx`` + ``metadata.json``; raise :class:`ModelError` if unusable.

    Checks the required metadata keys and the sha256 of the ONNX file. It does
    not build an inference session (see :class:`inference.runtime.OnnxClassifier`),
    so a file that matches its hash but is not a valid graph is only caught there.
    """
    path = Path(model_dir)
    where = path / METADATA_FILE
    try:
        meta = read_metadata(path)
        onnx_bytes = (path / MODEL_FILE).read_bytes()
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read model directory {path}: {exc}") from exc
    if not isinstance(meta, dict):
        raise ModelError(f"{where} is not a JSON object")
    missing = [key for key in REQUIRED_METADATA if key not in meta]
    if missing:
        raise ModelError(f"{where} lacks {', '.join(missing)}")
    if meta["format"] != FORMAT_VERSION:
        raise ModelError(f"{path}: unsupported model format {meta['format']!r}; this code reads format {FORMAT_VERSION}")
    digest = sha256_hex(onnx_bytes)
    if digest != meta["onnx_sha256"]:
        raise ModelError(
            f"{path / MODEL_FILE} has sha256 {digest} but metadata says {meta['onnx_sha256']}: "
            "the file is corrupt or does not belong to this metadata"
        )
    try:
        spec = PreprocessSpec.from_dict(meta["preprocess"])
        temperature = float(meta["temperature"])
        classes = tuple(str(c) for c in meta["classes"])
    except (AttributeError, TypeError, ValueError) as exc:
        raise ModelError(f"{where}: invalid value: {exc}") from exc
    if temperature <= 0 or not classes:
        raise ModelError(f"{where}: temperature must be > 0 and classes non-empty")
    threshold = None
    if meta.get("open_set") is not None:
        try:
            threshold = float(meta["open_set"]["threshold"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{where}: open_set needs a numeric threshold: {exc}") from exc
    return LoadedModel(
        path=path,
        version=str(meta["version"]),
        classes=classes,
        spec=spec,
        temperature=temperature,
        metadata=meta,
        onnx_bytes=onnx_bytes,
        unknown_threshold=threshold,
    )
