"""The report lifecycle in one place: the statuses, which may follow which and who makes
each move, open and closed for Open311, and reopening.

Pure: plain data and functions, no database. The console's status menu, every writer
(reports.services.report_transition) and the tests read this one table. Permissions
are the caller's business; this module only says when one is needed (`is_reopen`).
"""
from __future__ import annotations

from enum import StrEnum

from django.db.models import TextChoices


class Status(TextChoices):
    PENDING = "pending_classification", "Pending classification"
    NEEDS_REVIEW = "needs_review", "Needs review"
    TRIAGED = "triaged", "Triaged"
    IN_PROGRESS = "in_progress", "In progress"
    FIXED = "fixed", "Fixed"
    CLOSED = "closed", "Closed"
    REJECTED = "rejected", "Rejected"
    DUPLICATE = "duplicate", "Duplicate"


class By(StrEnum):
    """Who moves a report; each has its own moves."""

    STAFF = "staff"  # the console's status menu, and verifying (console.services)
    MERGE = "merge"  # staff marking a duplicate: needs the original, so never in the status menu
    CLASSIFIER = "classifier"  # routing once the model has spoken, or when no model can
    CITIZEN = "citizen"  # the citizen's own label contradicting an auto-triage; "still not fixed"


S = Status
# Waiting for a person's first decision.
INTAKE = frozenset({S.PENDING, S.NEEDS_REVIEW})
# Open311 has two states; everything not finished is "open".
CLOSED = frozenset({S.FIXED, S.CLOSED, S.REJECTED, S.DUPLICATE})
OPEN = frozenset(S) - CLOSED
# Leaving a closed status is a reopen (staff with the reopen permission), to one of these.
REOPEN_TARGETS = frozenset({S.NEEDS_REVIEW, S.TRIAGED, S.IN_PROGRESS})
# A rejected report's label is "no issue", a duplicate's the original's: reopen before relabelling.
RELABEL_NEEDS_REOPEN = frozenset({S.REJECTED, S.DUPLICATE})
# The reporter may say "still not fixed" about these (reopening to needs review).
CITIZEN_REOPENS = frozenset({S.FIXED, S.CLOSED})

MOVES: dict[By, dict[str, frozenset[str]]] = {
    By.STAFF: {
        S.PENDING: frozenset({S.TRIAGED, S.REJECTED}),
        S.NEEDS_REVIEW: frozenset({S.TRIAGED, S.REJECTED}),
        S.TRIAGED: frozenset({S.IN_PROGRESS, S.FIXED, S.CLOSED, S.REJECTED, S.NEEDS_REVIEW}),
        S.IN_PROGRESS: frozenset({S.TRIAGED, S.FIXED, S.CLOSED}),
        **{closed: REOPEN_TARGETS for closed in CLOSED},
    },
    By.MERGE: {status: frozenset({S.DUPLICATE}) for status in OPEN},
    By.CLASSIFIER: {S.PENDING: frozenset({S.TRIAGED, S.NEEDS_REVIEW})},
    # The reporter's "still not fixed" (their private link) reopens a finished report for a person to
    # look at again; rejected and duplicate stay staff decisions.
    By.CITIZEN: {S.TRIAGED: frozenset({S.NEEDS_REVIEW}),
                 **{done: frozenset({S.NEEDS_REVIEW}) for done in CITIZEN_REOPENS}},
}


class TransitionRefused(ValueError):
    """The move is not in the table; the message says which are."""


def is_open(status: str) -> bool:
    return status not in CLOSED


def is_reopen(frm: str) -> bool:
    """Leaving `frm` is a reopen, which needs the reopen permission."""
    return frm in CLOSED


def needs_label_first(frm: str, to: str, *, by: By, has_category: bool) -> bool:
    """Staff triage a report waiting for review by verifying its category, so a move to
    triaged without a staff label is refused (the classifier's auto-triage has none)."""
    return by == By.STAFF and frm in INTAKE and to == S.TRIAGED and not has_category


def after_verify(frm: str) -> str | None:
    """The status a staff label moves a report in `frm` to, or None where it stays."""
    return S.TRIAGED if frm in INTAKE else None


def targets(frm: str, *, by: By = By.STAFF, has_category: bool, may_reopen: bool = True) -> frozenset[str]:
    """Statuses `by` may move a report in `frm` to now (the console's status menu)."""
    if is_reopen(frm) and not may_reopen:
        return frozenset()
    return frozenset(to for to in MOVES[by].get(frm, frozenset())
                     if not needs_label_first(frm, to, by=by, has_category=has_category))


def check_transition(frm: str, to: str, *, by: By = By.STAFF, has_category: bool) -> None:
    """Raise TransitionRefused unless `by` may move a report from `frm` to `to`.
    `has_category`: the report has a staff label (final category)."""
    if to not in S.values:
        raise TransitionRefused(f"Unknown status {to!r}; choose one of {', '.join(S.values)}.")
    allowed = MOVES[by].get(frm, frozenset())
    if to not in allowed:
        raise TransitionRefused(f"Cannot go from {frm} to {to}; allowed: {', '.join(sorted(allowed)) or 'none'}.")
    if needs_label_first(frm, to, by=by, has_category=has_category):
        raise TransitionRefused("Verify the category first; verifying marks the report triaged.")
