"""Auto-triage thresholds derived from the frozen holdout, with a stated guarantee. Pure logic (no Django).

The guarantee (Learn then Test, Angelopoulos et al. 2021, with fixed-sequence
family-wise control over a fixed grid of candidate thresholds): for a
category c and its derived threshold t, *with probability at least
`confidence` (default 95 %) over the draw of the holdout, at least
`target_precision` (default 97 %) of the photos the model predicts as c with
probability >= t are really c*, for photos like the holdout's (drawn from the
same distribution). The candidates in `CANDIDATES` are tested in a fixed
order, from the highest down, each with a one-sided Clopper-Pearson lower
confidence bound at level 1 - confidence; testing stops at the first that
fails, and the threshold is the last that passed. Because the order is fixed
before seeing the data, this controls the chance of any false pass at
1 - confidence without a Bonferroni division (fixed-sequence testing), so
it needs fewer photos than testing every candidate at (1 - confidence) / 9.
Choosing the smallest passing probability among all the holdout's values
without such a procedure would not keep the guarantee (it picks the luckiest
of many tests).

The price of the guarantee is sample size: even with every prediction right,
the lower bound reaches 0.97 only from about 100 holdout photos above the
threshold. A category without enough gets no threshold ("needs more verified
photos") and does not auto-triage.
"""
from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from statistics import NormalDist

# Where `python -m training evaluate --predictions` output lives in a model directory
# (docs/MODEL_FORMAT.md): one JSON object per holdout photo.
from inference.modelformat import HOLDOUT_PREDICTIONS_FILE  # noqa: F401  (re-exported for retrain, quality)
# Candidate thresholds, fixed before seeing any data (a data-dependent grid would void the guarantee).
CANDIDATES: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.97, 0.99)
METHOD = "learn-then-test: one-sided Clopper-Pearson lower bound, fixed-sequence testing from the highest candidate down"


def clopper_pearson_lower(successes: int, trials: int, alpha: float) -> float:
    """One-sided exact lower confidence bound (level 1 - alpha) of a binomial proportion:
    the p at which P(X >= successes | trials, p) = alpha. 0 for no successes."""
    if not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes} of {trials}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if successes == 0:
        return 0.0
    if successes == trials:
        return alpha ** (1.0 / trials)
    low, high = 0.0, 1.0
    for _ in range(100):  # bisection: the upper tail grows with p
        mid = (low + high) / 2
        if _binomial_upper_tail(successes, trials, mid) < alpha:
            low = mid
        else:
            high = mid
    return low


def _binomial_upper_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), 0 < p < 1, summed in log space (no overflow for large n)."""
    log_p, log_q = math.log(p), math.log1p(-p)
    lg = math.lgamma
    return math.fsum(math.exp(lg(n + 1) - lg(i + 1) - lg(n - i + 1) + i * log_p + (n - i) * log_q)
                     for i in range(k, n + 1))


def wilson_interval(successes: int, trials: int, confidence: float) -> tuple[float, float]:
    """Two-sided Wilson score interval of a binomial proportion at `confidence` (e.g. 0.95)."""
    if trials <= 0:
        return 0.0, 1.0
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class ThresholdEvidence:
    """Why a category got its threshold (or none). `n`, `correct`, `precision` and
    `lower_bound` are at the chosen threshold or, when none qualified, at the candidate
    that came closest (the highest lower bound)."""
    label: str
    threshold: float | None  # None: no candidate qualifies ("needs more verified photos")
    at: float  # the candidate threshold the numbers below are measured at
    n: int  # holdout photos predicted as `label` with probability >= the threshold
    correct: int  # of those, really `label`
    precision: float | None
    lower_bound: float  # one-sided Clopper-Pearson lower bound at level `confidence`
    predicted: int  # holdout photos predicted as `label` at any probability
    support: int  # holdout photos whose true label is `label`

    def as_dict(self) -> dict:
        return asdict(self)


def derive_thresholds(*, predictions: Iterable[tuple[str, dict[str, float]]], labels: Sequence[str],
                      target_precision: float, confidence: float,
                      candidates: Sequence[float] = CANDIDATES) -> dict[str, ThresholdEvidence]:
    """The smallest candidate threshold of each label in `labels` whose precision lower bound
    reaches `target_precision` (see the module docstring for the guarantee).

    `predictions`: (true label, {class: probability}) per holdout photo; the model's
    prediction is the most probable class, as serving routes it.
    """
    if not 0 < target_precision <= 1:
        raise ValueError(f"target precision must be in (0, 1], got {target_precision}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if not candidates:
        raise ValueError("no candidate thresholds")
    alpha = 1 - confidence  # fixed-sequence testing: every test at the full level (module docstring)
    by_label: dict[str, list[tuple[float, bool]]] = {label: [] for label in labels}
    support = dict.fromkeys(labels, 0)
    for truth, probabilities in predictions:
        if truth in support:
            support[truth] += 1
        if not probabilities:
            continue
        predicted = max(probabilities, key=probabilities.get)
        if predicted in by_label:
            by_label[predicted].append((float(probabilities[predicted]), truth == predicted))
    result = {}
    for label, scored in by_label.items():
        tested = []
        for t in sorted(candidates):
            kept = [right for p, right in scored if p >= t]
            n, correct = len(kept), sum(kept)
            bound = clopper_pearson_lower(correct, n, alpha) if n else 0.0
            tested.append(ThresholdEvidence(label, t, t, n, correct, correct / n if n else None, bound,
                                            len(scored), support[label]))
        passing = None
        for e in reversed(tested):  # from the highest candidate down; the first failure ends the sequence
            if e.lower_bound < target_precision:
                break
            passing = e
        if passing:
            result[label] = passing
        else:  # the evidence closest to qualifying (highest bound; the lowest threshold on a tie)
            best = max(tested, key=lambda e: (e.lower_bound, -e.at))
            result[label] = ThresholdEvidence(**{**asdict(best), "threshold": None})
    return result


def read_predictions(path: Path) -> list[tuple[str, dict[str, float]]]:
    """(label, probabilities) per line of a `python -m training evaluate --predictions` file.
    Raises ValueError naming the line for a malformed one."""
    rows = []
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            rows.append((str(row["label"]), {str(k): float(v) for k, v in row["probabilities"].items()}))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{path}:{number}: not a prediction line ({exc})") from exc
    return rows
