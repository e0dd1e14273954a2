"""Classification metrics, expected calibration error and temperature fitting (numpy; softmax is serving's own)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from classifier.onnx import softmax  # serving's calibrated probabilities, reused as is

ECE_BINS = 15


def nll_per_sample(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Negative log-likelihood of each row's label under ``softmax(logits / temperature)``."""
    probs = softmax(logits, temperature)
    return -np.log(probs[np.arange(len(labels)), labels] + 1e-12)


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    return float(nll_per_sample(logits, labels, temperature).mean())


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
    noise of the estimator. On 160 holdout photos and the confidences of a
    5-10-per-class model it is 0.03-0.05, so an ECE target below that cannot
    be shown on such a holdout, whatever the model.
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


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature in [0.02, 20] minimising the NLL of ``softmax(logits / T)``.

    A log-spaced grid then a finer grid around the best point: deterministic,
    and well behaved on the tiny validation sets of few-label runs. When every
    prediction is already right, the NLL only falls as T shrinks and the fit
    would run to the grid's edge (probabilities of 1.0 for everything, seen at
    10 photos a class): there is no evidence to recalibrate on, so T = 1.
    """
    if len(labels) and (logits.argmax(axis=1) == labels).all():
        return 1.0
    grid = np.geomspace(0.02, 20.0, 181)
    best = grid[np.argmin([nll(logits, labels, t) for t in grid])]
    fine = np.geomspace(max(grid[0], best / 1.06), min(grid[-1], best * 1.06), 41)
    return float(fine[np.argmin([nll(logits, labels, t) for t in fine])])


def classification_report(labels: np.ndarray, probs: np.ndarray, classes: Sequence[str]) -> dict:
    """accuracy, macro_f1, per_class {precision, recall, f1, support}, confusion_matrix, ece, n_images."""
    labels = np.asarray(labels)
    pred = probs.argmax(axis=1)
    k = len(classes)
    cm = np.zeros((k, k), dtype=int)
    np.add.at(cm, (labels, pred), 1)
    per_class = {}
    for i, name in enumerate(classes):
        tp, predicted, support = cm[i, i], cm[:, i].sum(), cm[i, :].sum()
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {"precision": float(precision), "recall": float(recall), "f1": float(f1), "support": int(support)}
    present = [c for c in classes if per_class[c]["support"] > 0]
    return {
        "accuracy": float((pred == labels).mean()) if len(labels) else 0.0,
        "macro_f1": float(np.mean([per_class[c]["f1"] for c in present])) if present else 0.0,
        "per_class": per_class,
        "confusion_matrix": cm.tolist(),
        "ece": ece(probs, labels) if len(labels) else 0.0,
        "n_images": int(len(labels)),
    }
