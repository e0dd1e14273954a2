"""Confidence routing: what happens to a report once the model has spoken. Pure logic.

Part of the report lifecycle (beside reports.workflow), not of the classifier: intake redoes it when
a citizen confirms or changes the category, and reports may not import classifier."""
from __future__ import annotations

import hashlib
from collections.abc import Collection
from dataclasses import dataclass

from reports.categories import NO_ISSUE
from reports.workflow import Status


@dataclass(frozen=True)
class Decision:
    status: Status  # triaged or needs review: the classifier's moves in reports.workflow
    predicted_slug: str
    probability: float
    auto_triaged: bool
    possibly_not_issue: bool
    citizen_model_disagree: bool
    spot_check: bool = False  # would have been auto-triaged; sent to review to measure live precision


def spot_check_drawn(*, report_id: int, share: float) -> bool:
    """Whether a report is one of the `share` (0-1) of auto-triages sent to review as spot checks.
    Deterministic per report (a hash of its id, evenly spread), so a retry draws the same."""
    if share <= 0:
        return False
    digest = hashlib.sha256(f"spot-check:{report_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def route(*, top_k: list[tuple[str, float]], thresholds: dict[str, float], default_threshold: float,
          citizen_slug: str | None, auto_off: Collection[str] = (), spot_check: bool = False,
          unknown: bool = False) -> Decision:
    """Confident prediction of a category -> triaged (auto, spot-checkable);
    anything else -> needs review. `no_issue` is flagged, never auto-rejected.
    A confident prediction that contradicts the citizen's category is flagged
    and left for staff rather than auto-triaged.

    `thresholds` maps each active category slug to its auto-triage threshold;
    a slug missing from it is not a servable category. A slug in `auto_off`
    never auto-triages (no derived threshold, or switched off by the quality
    guard). `spot_check`: this report is drawn as a spot check, so a would-be
    auto-triage goes to review instead, marked `spot_check`. `unknown`: the photo is unlike every
    class the model knows (open set), so whatever its top class and probability it goes to review,
    and is never flagged "possibly not an issue".
    """
    slug, probability = top_k[0]
    confident = probability >= thresholds.get(slug, default_threshold)
    is_category = slug in thresholds
    disagree = bool(citizen_slug) and confident and slug != citizen_slug
    would_auto = confident and is_category and not disagree and slug not in auto_off and not unknown
    auto = would_auto and not spot_check
    return Decision(
        status=Status.TRIAGED if auto else Status.NEEDS_REVIEW,
        predicted_slug=slug,
        probability=probability,
        auto_triaged=auto,
        possibly_not_issue=slug == NO_ISSUE and confident and not unknown,
        citizen_model_disagree=disagree,
        spot_check=would_auto and spot_check,
    )
