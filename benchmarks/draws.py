"""Paired draws for head ablations on cached features: many holdouts, many K-per-class samples.

A single 160-photo holdout cannot resolve a point of macro-F1 (one photo
moves it by about 0.006); 64 paired draws can. A draw is a seeded
``holdout_per_class`` holdout (seed 1000 + h) plus K photos per class sampled
from the rest (seed s; ``all`` takes the rest, one draw per holdout). Every
variant is scored on the same draws, so its difference from the first
variant is paired.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from training import data


def draws(samples: Sequence[data.Sample], k: str, *, holdout_seeds: int, seeds: int,
          holdout_per_class: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(holdout rows, training rows): indices into ``samples`` for each draw."""
    index = {str(s.path): i for i, s in enumerate(samples)}
    rows = lambda chosen: torch.tensor([index[str(s.path)] for s in chosen])  # noqa: E731
    for h in range(holdout_seeds):
        holdout, pool = data.stratified_take(samples, per_class=holdout_per_class, seed=1000 + h)
        for seed in range(1 if k == "all" else seeds):
            chosen = pool if k == "all" else data.stratified_take(pool, per_class=int(k), seed=seed)[0]
            yield rows(holdout), rows(chosen)


def table_rows(k: str, scores: dict[str, list[float]]) -> list[str]:
    """Markdown rows: each variant's mean macro-F1, its paired difference from the first variant with the
    standard error, and the draws it won and lost."""
    first = np.array(next(iter(scores.values())))
    out = []
    for name, values in scores.items():
        delta = np.array(values) - first
        se = delta.std(ddof=1) / np.sqrt(len(delta)) if len(delta) > 1 else float("nan")
        out.append(f"| {k} | {name} | {np.mean(values):.3f} | {delta.mean():+.3f} +- {se:.3f} "
                   f"| {(delta > 0).sum()} / {(delta < 0).sum()} |")
    return out
