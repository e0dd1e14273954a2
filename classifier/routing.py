"""Confidence routing: what happens to a report once the model has spoken. Pure logic."""
from __future__ import annotations

from dataclasses import dataclass

NO_ISSUE = "no_issue"


@dataclass(frozen=True)
class Decision:
    status: str  # a reports.Report.Status value
    predicted_slug: str
    probability: float
    auto_triaged: bool
    possibly_not_issue: bool
    citizen_model_disagree: bool


def route(*, top_k: list[tuple[str, float]], thresholds: dict[str, float], default_threshold: float,
          citizen_slug: str | None) -> Decision:
    """Confident prediction of a category -> triaged (auto, spot-checkable);
    anything else -> needs review. `no_issue` is flagged, never auto-rejected.
    A confident prediction that contradicts the citizen's category is flagged
    and left for staff rather than auto-triaged.

    `thresholds` maps each active category slug to its auto-triage threshold;
    a slug missing from it is not a servable category.
    """
    slug, probability = top_k[0]
    confident = probability >= thresholds.get(slug, default_threshold)
    is_category = slug in thresholds
    disagree = bool(citizen_slug) and confident and slug != citizen_slug
    auto = confident and is_category and not disagree
    return Decision(
        status="triaged" if auto else "needs_review",
        predicted_slug=slug,
        probability=probability,
        auto_triaged=auto,
        possibly_not_issue=slug == NO_ISSUE and confident,
        citizen_model_disagree=disagree,
    )
