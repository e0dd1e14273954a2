"""Evaluate an exported model directory on the served path: what is evaluated is what is served.

Photos go through :class:`inference.runtime.OnnxClassifier`, as in the web
process and the worker: the same model validation, session options and
reduced-scale JPEG decode, so the promotion gate judges the served numbers.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from inference.metrics import classification_report, ece, ece_floor, reliability_bins  # noqa: E402
from inference.modelformat import ModelError  # noqa: E402
from inference.runtime import OnnxClassifier, softmax  # noqa: E402
from training.data import Sample  # noqa: E402

BATCH = 32  # photos per progress step


def served_classifier(model_dir: Path, options: dict | None = None) -> OnnxClassifier:
    """The model as serving runs it; ``options`` override :data:`inference.runtime.DEFAULT_OPTIONS`
    (keys as in the ``CLASSIFIER`` setting's ``OPTIONS``). A directory serving would refuse is a ValueError."""
    try:
        return OnnxClassifier(model_dir, options)
    except ModelError as exc:
        raise ValueError(str(exc)) from exc


def onnx_logits(model: Path | OnnxClassifier, paths: Sequence[Path]) -> np.ndarray:
    """Raw logits (before temperature) for image files, decoded and run exactly as serving does."""
    classifier = model if isinstance(model, OnnxClassifier) else served_classifier(model)
    out = [np.zeros((0, len(classifier.model.classes)), np.float32)]
    try:
        for start in tqdm(range(0, len(paths), BATCH), desc="evaluate", leave=False):
            out.append(classifier.predict_logits(list(paths[start:start + BATCH]))[0])
    except ModelError as exc:  # a graph ONNX Runtime cannot load
        raise ValueError(str(exc)) from exc
    return np.concatenate(out)


def evaluate_model(model_dir: Path, samples: Sequence[Sample], *, plots_dir: Path | None = None,
                   predictions: Path | None = None, by_source: bool = False) -> dict:
    """Metrics of the model on ``samples`` with the metadata temperature; writes two PNGs.

    Every sample label must be one of the model's classes. The plots
    (``confusion_matrix.png``, ``reliability.png``) go to ``plots_dir``,
    by default the model directory. With ``predictions``, also writes one JSON
    line per sample there (path, label, source, calibrated probability per class):
    what the serving side derives its auto-triage thresholds from. With ``by_source``, the
    report also holds ``by_source``: the same metrics for each sample source present (local,
    bootstrap), from the same single pass over the photos, with plots in ``plots_dir/<source>``.
    """
    classifier = served_classifier(model_dir)
    meta = classifier.model.metadata
    classes = list(classifier.model.classes)
    unknown = sorted({s.label for s in samples} - set(classes))
    if unknown:
        raise ValueError(f"labels {unknown} are not classes of this model; it knows {', '.join(classes)}")
    labels = np.array([classes.index(s.label) for s in samples], dtype=np.int64)
    logits = onnx_logits(classifier, [s.path for s in samples])
    temperature = classifier.model.temperature
    probs = softmax(logits, temperature)
    if predictions is not None:
        write_predictions(Path(predictions), samples, probs, classes)
    plots_dir = Path(plots_dir or model_dir)
    report = _report(logits, probs, labels, classes, meta, plots_dir)
    if by_source:
        sources = np.array([s.source for s in samples])
        report["by_source"] = {
            source: _report(logits[sources == source], probs[sources == source], labels[sources == source],
                            classes, meta, plots_dir / source)
            for source in sorted(set(sources))
        }
    return report


def _report(logits: np.ndarray, probs: np.ndarray, labels: np.ndarray, classes: list[str], meta: dict,
            plots_dir: Path) -> dict:
    report = classification_report(labels, probs, classes)
    report["ece_uncalibrated"] = ece(softmax(logits), labels) if len(labels) else 0.0
    report["ece_floor"] = ece_floor(probs)  # what sampling noise alone gives on this many photos
    report["temperature"] = meta["temperature"]
    report["model_version"] = meta["version"]
    plots_dir.mkdir(parents=True, exist_ok=True)
    plot_confusion_matrix(np.array(report["confusion_matrix"]), classes, plots_dir / "confusion_matrix.png")
    plot_reliability(probs, labels, plots_dir / "reliability.png",
                     title=f"ECE {report['ece']:.3f} (T = {meta['temperature']:.2f})")
    return report


def write_predictions(path: Path, samples: Sequence[Sample], probs: np.ndarray, classes: Sequence[str]) -> None:
    """One JSON object per line: {"path", "label", "source", "probabilities": {class: p}}."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as out:
        for sample, row in zip(samples, probs):
            out.write(json.dumps({"path": str(sample.path), "label": sample.label, "source": sample.source,
                                  "probabilities": {c: round(float(p), 6) for c, p in zip(classes, row)}}) + "\n")


def plot_confusion_matrix(cm: np.ndarray, classes: Sequence[str], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(1.2 * len(classes) + 2, 1.2 * len(classes) + 1.5))
    ax.imshow(cm, cmap="Blues")
    for (i, j), n in np.ndenumerate(cm):
        ax.text(j, i, str(n), ha="center", va="center", color="white" if n > cm.max() / 2 else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_reliability(probs: np.ndarray, labels: np.ndarray, path: Path, *, title: str) -> None:
    bins = reliability_bins(probs, labels)
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    ax.bar([b["lower"] for b in bins], [b["accuracy"] for b in bins], width=[b["upper"] - b["lower"] for b in bins],
           align="edge", edgecolor="black", alpha=0.7, label="accuracy")
    ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], "o", color="C1", label="mean confidence")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
