"""Precision, recall, F1, confusion matrices and calibration error: numpy only.

One definition for training's evaluation (the promotion gate reads its
per-class numbers) and the model panel's live precision/recall against
staff labels.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

ECE_BINS = 15


@dataclass(frozen=True)
class ClassScore:
    """One class's row of a confusion matrix; None where the ratio has no denominator."""

    precision: float | None  # right / predicted as this class
    recall: float | None  # right / truly this class
    f1: float | None
    support: int  # truly this class


def confusion_matrix(truth: Sequence[int], predicted: Sequence[int], n_classes: int) -> np.ndarray:
    """``cm[t, p]``: how many of class ``t`` were predicted as ``p`` (class indices)."""
    cm = np.zeros((n_classes, n_classes), dtype=int)
    np.add.at(cm, (np.asarray(truth, dtype=int), np.asarray(predicted, dtype=int)), 1)
    return cm


def class_scores(cm: np.ndarray | Sequence[Sequence[int]]) -> list[ClassScore]:
    """Per class (rows: truth, columns: prediction): precision, recall, F1 and support."""
    cm = np.asarray(cm)
    scores = []
    for i in range(len(cm)):
        tp, predicted, support = int(cm[i, i]), int(cm[:, i].sum()), int(cm[i, :].sum())
        precision = tp / predicted if predicted else None
        recall = tp / support if support else None
        f1 = (2 * precision * recall / (precision + recall)
              if precision is not None and recall is not None and precision + recall else None)
        scores.append(ClassScore(precision, recall, f1, support))
    return scores


def reliability_bins(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> list[dict]:
    """Per confidence bin: ``count``, mean ``confidence`` and ``accuracy`` (empty bins omitted)."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    out = []
    for b in range(bins):
        mask = which == b
        if mask.any():
            out.append({"lower": float(edges[b]), "upper": float(edges[b + 1]), "count": int(mask.sum()),
                        "confidence": float(confidence[mask].mean()), "accuracy": float(correct[mask].mean())})
    return out


def ece(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error of the top-1 confidence, equal-width bins."""
    n = len(labels)
    return float(sum(b["count"] / n * abs(b["accuracy"] - b["confidence"]) for b in reliability_bins(probs, labels, bins)))


def ece_floor(probs: np.ndarray, bins: int = ECE_BINS, draws: int = 200, seed: int = 0) -> float:
    """The ECE a perfectly calibrated model with these probabilities would still show on this many photos.

    Labels are drawn from ``probs`` themselves (so the model is calibrated by
    construction) ``draws`` times and the mean ECE is returned: the sampling
    noise of the estimator. An ECE target below it cannot be shown on such a
    holdout, whatever the model (docs/BENCHMARKS.md has typical values).
    """
    if not len(probs):
        return 0.0
    rng = np.random.default_rng(seed)
    cumulative = np.cumsum(probs / probs.sum(axis=1, keepdims=True), axis=1)
    scores = []
    for _ in range(draws):
        drawn = (rng.random((len(probs), 1)) > cumulative[:, :-1]).sum(axis=1)
        scores.append(ece(probs, drawn, bins))
    return float(np.mean(scores))


def classification_report(labels: np.ndarray, probs: np.ndarray, classes: Sequence[str]) -> dict:
    """accuracy, macro_f1, per_class {precision, recall, f1, support}, confusion_matrix, ece, n_images."""
    labels = np.asarray(labels)
    pred = probs.argmax(axis=1)
    cm = confusion_matrix(labels, pred, len(classes))
    per_class = {  # an undefined ratio counts as 0 here: the gate compares numbers
        name: {"precision": score.precision or 0.0, "recall": score.recall or 0.0, "f1": score.f1 or 0.0,
               "support": score.support}
        for name, score in zip(classes, class_scores(cm))
    }
    present = [c for c in classes if per_class[c]["support"] > 0]
    return {
        "accuracy": float((pred == labels).mean()) if len(labels) else 0.0,
        "macro_f1": float(np.mean([per_class[c]["f1"] for c in present])) if present else 0.0,
        "per_class": per_class,
        "confusion_matrix": cm.tolist(),
        "ece": ece(probs, labels) if len(labels) else 0.0,
        "n_images": int(len(labels)),
    }
