"""Write a model directory (``model.onnx`` + ``metadata.json``) as docs/MODEL_FORMAT.md defines it."""
from __future__ import annotations

import copy
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from inference.modelformat import (
    FORMAT_VERSION,
    INPUT_NAME,
    MODEL_FILE,
    OUTPUT_NAME,
    UNKNOWN_OUTPUT,
    read_metadata,
    sha256_hex,
    write_metadata,
)
from inference.preprocess import PreprocessSpec
from training.model import architecture
from training.openset import OpenSet

OPSET = 17
PARITY_ATOL = 1e-4  # max abs logit difference allowed between torch and ONNX Runtime


def export_model(
    model: nn.Module,
    *,
    classes: list[str],
    out_dir: Path,
    preprocess: PreprocessSpec,
    temperature: float = 1.0,
    version: str | None = None,
    metrics: dict | None = None,
    training_data: dict | None = None,
    parent_version: str | None = None,
    open_set: OpenSet | None = None,
    backbone: str = "lite0",
) -> Path:
    """Export ``model`` to ONNX in ``out_dir`` and write its metadata; returns ``out_dir``.

    ``model`` must output raw logits in the order of ``classes``. It is
    exported in eval mode on the CPU (a copy: the caller's model is left as
    it was); the export is checked with ``onnx.checker`` and against torch on
    a batch of two random inputs, raising ``AssertionError`` on a mismatch.
    With ``open_set`` the graph has a second output, ``unknown_score``
    (:meth:`training.openset.OpenSet.scorer` on the features the head reads and its logits), and
    metadata.json an ``open_set`` block with its threshold.
    """
    if temperature <= 0:
        raise ValueError("temperature must be > 0")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = out_dir / MODEL_FILE
    model = copy.deepcopy(model).cpu().float().eval()
    outputs = [OUTPUT_NAME]
    if open_set is not None:
        model = _WithOpenSet(model, open_set.scorer(model.get_classifier().chunks))
        outputs.append(UNKNOWN_OUTPUT)
    size = preprocess.input_size
    sample = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model(sample)
        expected = [t.numpy() for t in (expected if isinstance(expected, tuple) else (expected,))]
    if expected[0].shape != (2, len(classes)):
        raise ValueError(f"model outputs {expected[0].shape[1]} logits for {len(classes)} classes")
    torch.onnx.export(
        model,
        (sample,),
        str(onnx_path),
        input_names=[INPUT_NAME],
        output_names=outputs,
        dynamic_axes={INPUT_NAME: {0: "N"}, **{name: {0: "N"} for name in outputs}},
        opset_version=OPSET,
        dynamo=False,
    )
    onnx.checker.check_model(str(onnx_path), full_check=True)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    for name, want, got in zip(outputs, expected, session.run(outputs, {INPUT_NAME: sample.numpy()})):
        diff = float(np.abs(got - want).max())
        assert diff <= PARITY_ATOL, f"ONNX Runtime {name} differs from torch by {diff:.2e} > {PARITY_ATOL}"

    digest = sha256_hex(onnx_path.read_bytes())
    now = datetime.now(timezone.utc).replace(microsecond=0)
    metadata = {
        "format": FORMAT_VERSION,
        "version": version or f"{now:%Y%m%d-%H%M}-{digest[:6]}",
        "architecture": architecture(backbone),  # which --backbone the model was trained on
        "classes": list(classes),
        "preprocess": preprocess.to_dict(),
        "temperature": float(temperature),
        "onnx_sha256": digest,
        "parent_version": parent_version,
        "created": now.isoformat(),
        "training_data": training_data or {},
        "metrics": metrics or {},
    }
    if open_set is not None:
        metadata["open_set"] = open_set.to_metadata()
    write_metadata(out_dir, metadata)
    return out_dir


class _WithOpenSet(nn.Module):
    """Logits and the open-set score from one pass through the backbone."""

    def __init__(self, model: nn.Module, scorer: nn.Module):
        super().__init__()
        self.model, self.scorer = model, scorer

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.model.features(x)
        logits = self.model.get_classifier()(feats)
        return logits, self.scorer(feats, logits)


def update_metrics(model_dir: Path, metrics: dict) -> None:
    """Replace the ``metrics`` block of a model directory's metadata.json (model.onnx and its hash untouched)."""
    meta = read_metadata(model_dir)
    meta["metrics"] = metrics
    write_metadata(model_dir, meta)
