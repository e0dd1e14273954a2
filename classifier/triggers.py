"""Retrain when the evidence says so: staff corrections of the active model since its activation.

A *correction* is a staff label (a verified or corrected category, or a
rejection as "not an issue", which is the label no_issue) on a report the
active model classified, where that label differs from the model's
`predicted_label`. The model saying no_issue of a report staff rejected is
agreement. Two triggers, each firing at most once per active model:

- "corrections": RETRAIN_AFTER_CORRECTIONS corrections in all;
- "share:<label>": among the reports staff gave <label> (no_issue for
  rejections), at least RETRAIN_CORRECTION_MIN_VERIFIED, of which a share
  of at least RETRAIN_CORRECTION_SHARE had been predicted otherwise.

`retrain_if_evidence` runs after each staff decision commits and queues one
retrain (classifier.runs) when a trigger is due and has not fired yet.
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Count

from .models import ModelVersion, RetrainRun
from .training_data import verified_reports

logger = logging.getLogger(__name__)
TOTAL_KEY = "corrections"
SHARE_PREFIX = "share:"


def is_correction(*, predicted: str, label: str) -> bool:
    """Staff's label differs from the model's prediction (both slugs, no_issue included)."""
    return bool(predicted) and predicted != label


@dataclass(frozen=True)
class LabelEvidence:
    label: str  # staff's label: a category slug or no_issue
    verified: int  # reports the model classified that staff gave this label
    corrected: int  # of those, the ones the model had predicted otherwise

    @property
    def share(self) -> float:
        return self.corrected / self.verified if self.verified else 0.0


@dataclass(frozen=True)
class CorrectionEvidence:
    version: str
    since: dt.datetime | None  # the version's activation
    verified: int  # staff labels on reports this version classified, since `since`
    corrections: int
    per_label: tuple[LabelEvidence, ...]  # most corrected first


def correction_evidence(*, version: str, since: dt.datetime | None) -> CorrectionEvidence:
    """Count staff labels and corrections of `version`'s predictions given since `since` (one query).
    The labels are those that train (training_data.verified_reports: duplicates left out)."""
    qs = verified_reports().filter(model_version=version).exclude(predicted_label="")
    if since is not None:
        qs = qs.filter(verified_at__gte=since)
    verified: dict[str, int] = {}
    corrected: dict[str, int] = {}
    for predicted, label, n in (qs.order_by().values_list("predicted_label", "training_label")
                                .annotate(n=Count("pk"))):
        verified[label] = verified.get(label, 0) + n
        if is_correction(predicted=predicted, label=label):
            corrected[label] = corrected.get(label, 0) + n
    per_label = tuple(sorted((LabelEvidence(label, n, corrected.get(label, 0)) for label, n in verified.items()),
                             key=lambda e: (-e.corrected, -e.verified, e.label)))
    return CorrectionEvidence(version=version, since=since, verified=sum(verified.values()),
                              corrections=sum(corrected.values()), per_label=per_label)


@dataclass(frozen=True)
class Trigger:
    key: str  # "corrections" or "share:<label>": fires once per active model
    reason: str


def due_triggers(evidence: CorrectionEvidence, *, after_corrections: int, share: float,
                 min_verified: int) -> list[Trigger]:
    """The triggers the evidence satisfies (a threshold of 0 turns its trigger off)."""
    due = []
    if after_corrections > 0 and evidence.corrections >= after_corrections:
        due.append(Trigger(TOTAL_KEY, f"{evidence.corrections} staff corrections of {evidence.version} since "
                                      f"activation (threshold {after_corrections})"))
    if share > 0:
        for e in evidence.per_label:
            if e.verified >= max(min_verified, 1) and e.share >= share:
                due.append(Trigger(SHARE_PREFIX + e.label,
                                   f"{e.label}: {e.corrected} of {e.verified} verified corrected ({e.share:.0%}; "
                                   f"threshold {share:.0%} of at least {min_verified})"))
    return due


def fired_trigger_keys(*, version: str) -> set[str]:
    """Evidence triggers that already queued a retrain while `version` was active (whatever came of it)."""
    keys: set[str] = set()
    for evidence in RetrainRun.objects.filter(trigger=RetrainRun.Trigger.CORRECTIONS,
                                              active_version=version).values_list("evidence", flat=True):
        keys.update((evidence or {}).get("keys", []))
    return keys


def _thresholds() -> dict:
    return {"after_corrections": settings.RETRAIN_AFTER_CORRECTIONS, "share": settings.RETRAIN_CORRECTION_SHARE,
            "min_verified": settings.RETRAIN_CORRECTION_MIN_VERIFIED}


@dataclass(frozen=True)
class TriggerStatus:
    """What the model panel shows: progress toward the triggers for the active model."""
    evidence: CorrectionEvidence
    after_corrections: int
    share: float
    min_verified: int
    fired: frozenset[str]

    @property
    def total_fired(self) -> bool:
        return TOTAL_KEY in self.fired

    @property
    def labels(self) -> list[tuple[LabelEvidence, bool]]:
        """Each label's evidence, and whether its share trigger already fired for this model."""
        return [(e, SHARE_PREFIX + e.label in self.fired) for e in self.evidence.per_label]


def trigger_status(*, active: ModelVersion | None) -> TriggerStatus | None:
    if active is None:
        return None
    return TriggerStatus(evidence=correction_evidence(version=active.version, since=active.activated_at),
                         fired=frozenset(fired_trigger_keys(version=active.version)), **_thresholds())


def retrain_if_evidence() -> RetrainRun | None:
    """Queue one retrain if a trigger is due that has not fired for the active model yet.

    Call after a staff decision commits (it reads committed labels). Returns the
    queued run, or None: no active model, nothing due, or a retrain already
    pending or running (the trigger then stays unfired and is checked again at
    the next decision).
    """
    active = ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).first()
    if active is None:
        return None
    evidence = correction_evidence(version=active.version, since=active.activated_at)
    fired = fired_trigger_keys(version=active.version)
    due = [t for t in due_triggers(evidence, **_thresholds()) if t.key not in fired]
    if not due:
        return None
    from .runs import retrain_request

    return retrain_request(
        trigger=RetrainRun.Trigger.CORRECTIONS, reason="; ".join(t.reason for t in due), force=True,
        active_version=active.version,
        evidence={"keys": [t.key for t in due], "corrections": evidence.corrections, "verified": evidence.verified,
                  "per_label": {e.label: [e.corrected, e.verified] for e in evidence.per_label}})
