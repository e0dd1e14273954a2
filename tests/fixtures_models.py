"""Real ONNX models for tests and benchmarks: timm Lite0 with a freshly initialised head, exported by
training.export. The one place a test model is made.

The labels such a model gives are meaningless, but it is the real network
run by ONNX Runtime, so shapes, speed, preprocessing and calibration are
exercised for real. Needs the ``train`` extra (torch, timm, onnx).
"""
from __future__ import annotations

from pathlib import Path

from inference.preprocess import PreprocessSpec

CLASSES = ("fly_tipping", "graffiti", "no_issue", "pothole")
SEED = 0


def make_test_model(num_classes: int = len(CLASSES), *, pretrained: bool = False):
    """The torch model :func:`export_test_model` exports: the same weights on every call (seeded).

    ``pretrained`` starts from the ImageNet backbone (cached timm weights), whose features mean something."""
    import torch

    from training.model import create_model

    with torch.random.fork_rng():
        torch.manual_seed(SEED)
        return create_model(num_classes, pretrained=pretrained).eval()


def export_test_model(
    out_dir: Path,
    classes: tuple[str, ...] = CLASSES,
    version: str = "test-1",
    *,
    temperature: float = 1.0,
    spec: PreprocessSpec = PreprocessSpec(),
    pretrained: bool = False,
) -> Path:
    """Write a model directory (model.onnx + metadata.json) for ``classes``; returns ``out_dir``."""
    from training.export import export_model

    return export_model(
        make_test_model(len(classes), pretrained=pretrained),
        classes=list(classes),
        out_dir=Path(out_dir),
        preprocess=spec,
        temperature=temperature,
        version=version,
        training_data={"n_images": 0, "source": "freshly initialised head (tests)"},
    )


def export_constant_model(out_dir: Path, *, predicts: str = "pothole", classes: tuple[str, ...] = CLASSES,
                          version: str = "bad-1", unknown_threshold: float | None = None) -> Path:
    """A deliberately bad model: whatever the photo, it says ``predicts`` with probability ~1
    (the head's weights zeroed, one large bias). The real network, run by ONNX Runtime.

    With ``unknown_threshold`` it also has the open-set output, its bank a few random feature
    vectors: the score (a cosine distance) is in [0, 2], so a threshold of 0 flags every photo
    unknown and one above 2 none."""
    import numpy as np
    import torch

    from training.export import export_model
    from training.openset import OpenSet, normalise

    model = make_test_model(len(classes))
    head = model.get_classifier()
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
        head.bias[classes.index(predicts)] = 30.0
    open_set = None
    if unknown_threshold is not None:
        head_chunks = head.chunks
        bank = normalise(torch.randn(5, sum(head_chunks), generator=torch.Generator().manual_seed(0)), head_chunks)
        open_set = OpenSet(bank=bank, threshold=unknown_threshold, k=1, quantile=0.95, held_out_scores=np.zeros(5))
    return export_model(model, classes=list(classes), out_dir=Path(out_dir), preprocess=PreprocessSpec(),
                        temperature=1.0, version=version, open_set=open_set,
                        training_data={"n_images": 0, "source": f"constant {predicts} (tests)"})
