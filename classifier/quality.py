"""Auto-triage that can be trusted: derived thresholds, spot checks and the live quality guard.

- **Derived thresholds.** At every activation of a model (a retrain's promotion,
  `activate_model`, a rollback) its thresholds are derived from its holdout
  predictions (`holdout_predictions.jsonl` in the model directory; see
  classifier/thresholds.py for the guarantee), stored on `ModelVersion.thresholds`
  with the evidence and applied to each `Category.auto_triage_threshold`, one
  `AutoTriageChange` per category. A category with no qualifying threshold does
  not auto-triage ("needs more verified photos") until a supervisor overrides
  it. A model without holdout predictions keeps the current thresholds (said on
  `ModelVersion.thresholds` and on the model panel).
- **Spot checks.** A deterministic SPOT_CHECK_SHARE of would-be auto-triages go to
  review instead, each recorded as a `SpotCheck` (classifier.services).
- **Live quality guard.** Live precision of a category since the active model's
  activation: staff decisions on reports that model auto-triaged or spot-checked
  as that category (verified as it = right; corrected or rejected = wrong). Once a
  category has QUALITY_GUARD_MIN_DECISIONS of them and the upper end of the
  Wilson interval (AUTO_TRIAGE_CONFIDENCE) is below AUTO_TRIAGE_TARGET_PRECISION,
  `quality_guard_check` switches its auto-triage off (`AutoTriageSwitchOff`, an
  `AutoTriageChange`) and queues a retrain (classifier.runs, trigger "quality").
  It comes back on at the next activation.
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, Q
from django.utils import timezone

from reports.categories import NO_ISSUE
from reports.models import Category, Report

from .models import AutoTriageChange, AutoTriageSwitchOff, ModelVersion, RetrainRun, SpotCheck
from .thresholds import (CANDIDATES, HOLDOUT_PREDICTIONS_FILE, METHOD, derive_thresholds, read_predictions,
                         wilson_interval)
from .training_data import verified_reports

logger = logging.getLogger(__name__)
Kind = AutoTriageChange.Kind
NEEDS_MORE = "needs more verified photos"
SWITCHED_OFF = "switched off by the live quality guard"
GUARD = "quality guard"
OFF_VALUE = 1.0  # what Category.auto_triage_threshold holds while no derived threshold qualifies


def _active() -> ModelVersion | None:
    return ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).first()


# Derived thresholds -----------------------------------------------------------------------------

def thresholds_for_model(*, model: ModelVersion) -> dict:
    """What `ModelVersion.thresholds` holds: the thresholds derived from the model directory's
    holdout predictions at the current settings, per category with its evidence, or
    {"derived": False, "reason": ...} when there are none to derive from."""
    target, confidence = settings.AUTO_TRIAGE_TARGET_PRECISION, settings.AUTO_TRIAGE_CONFIDENCE
    base = {"target_precision": target, "confidence": confidence, "method": METHOD, "candidates": list(CANDIDATES),
            "computed_at": timezone.now().isoformat()}
    path = model.directory / HOLDOUT_PREDICTIONS_FILE
    try:
        rows = read_predictions(path)
    except FileNotFoundError:
        return {**base, "derived": False,
                "reason": f"no holdout predictions ({HOLDOUT_PREDICTIONS_FILE}) in the model directory: "
                          "the categories' current thresholds were kept"}
    except (OSError, ValueError) as exc:
        return {**base, "derived": False,
                "reason": f"holdout predictions unreadable ({exc}): the categories' current thresholds were kept"}
    labels = [c for c in model.classes if c != NO_ISSUE]
    evidence = derive_thresholds(predictions=rows, labels=labels, target_precision=target, confidence=confidence)
    return {**base, "derived": True, "n_holdout": len(rows),
            "per_class": {label: e.as_dict() for label, e in evidence.items()}}


def describe_evidence(evidence: dict, *, target: float, confidence: float) -> str:
    """One sentence for the audit trail and the panel."""
    precision = f"{evidence['precision']:.0%}" if evidence.get("precision") is not None else "—"
    numbers = (f"{evidence['correct']} of {evidence['n']} holdout photos right at p >= {evidence['at']:.2f} "
               f"({precision}; {confidence:.0%} lower bound {evidence['lower_bound']:.3f})")
    if evidence.get("threshold") is None:
        return f"{NEEDS_MORE}: no threshold reaches {target:.0%} precision with {confidence:.0%} confidence; " \
               f"closest: {numbers}"
    return f"derived: {numbers} >= {target:.0%} target"


def auto_triage_on_activation(*, model: ModelVersion, user=None) -> dict:
    """Recompute and apply auto-triage for a model that has just become active, and turn
    back on every category the quality guard had switched off. Returns the stored thresholds.

    Call inside the activating transaction (classifier.services.model_activate), after
    `model` is marked active.
    """
    now = timezone.now()
    actor_label = "" if user else "system"
    for off in (AutoTriageSwitchOff.objects.select_for_update().select_related("category")
                .filter(switched_on_at__isnull=True)):
        off.switched_on_at, off.switched_on_reason = now, f"model {model.version} activated"
        off.save(update_fields=["switched_on_at", "switched_on_reason"])
        AutoTriageChange.objects.create(
            category=off.category, model_version=model.version, kind=Kind.SWITCHED_ON, old_threshold=None,
            new_threshold=off.category.auto_triage_threshold, actor=user, actor_label=actor_label,
            reason=f"back on: model {model.version} activated (switched off under {off.model_version}: "
                   f"{off.reason})"[:500])
    derived = thresholds_for_model(model=model)
    model.thresholds = derived
    model.save(update_fields=["thresholds"])
    if not derived["derived"]:
        logger.info("model %s: %s", model.version, derived["reason"])
        return derived
    target, confidence = derived["target_precision"], derived["confidence"]
    categories = Category.objects.select_for_update().filter(slug__in=list(derived["per_class"]))
    for category in categories:
        evidence = derived["per_class"][category.slug]
        old, new = category.auto_triage_threshold, evidence["threshold"]
        category.auto_triage_threshold = OFF_VALUE if new is None else new
        category.save(update_fields=["auto_triage_threshold"])
        AutoTriageChange.objects.create(
            category=category, model_version=model.version, kind=Kind.DERIVED, old_threshold=old, new_threshold=new,
            actor=user, actor_label=actor_label,
            reason=describe_evidence(evidence, target=target, confidence=confidence)[:500],
            evidence={**evidence, "target_precision": target, "confidence": confidence})
    logger.info("model %s: thresholds derived for %d categories", model.version, len(derived["per_class"]))
    return derived


def threshold_override(*, category: Category, user, threshold: float, reason: str) -> AutoTriageChange:
    """Record a supervisor's threshold for `category` (the caller checks the permission and
    saves the category). An override also lifts "needs more verified photos" for the active
    model; it does not lift a quality-guard switch-off, which only a promotion ends."""
    active = _active()
    policy = auto_triage_policy()
    old = None if category.slug in policy.off else category.auto_triage_threshold
    return AutoTriageChange.objects.create(
        category=category, model_version=active.version if active else "", kind=Kind.OVERRIDE,
        old_threshold=old, new_threshold=threshold, actor=user, reason=reason[:500])


@dataclass(frozen=True)
class AutoTriagePolicy:
    """What routing applies: the threshold of each active category, and the categories that
    do not auto-triage whatever the probability, with why."""
    thresholds: dict[str, float]
    off: dict[str, str]


def auto_triage_policy() -> AutoTriagePolicy:
    thresholds = dict(Category.objects.filter(active=True).values_list("slug", "auto_triage_threshold"))
    off: dict[str, str] = {}
    active = _active()
    if active is not None and (active.thresholds or {}).get("derived"):
        overridden = set(AutoTriageChange.objects.filter(kind=Kind.OVERRIDE, model_version=active.version)
                         .values_list("category__slug", flat=True))
        for slug, evidence in active.thresholds.get("per_class", {}).items():
            if evidence.get("threshold") is None and slug not in overridden:
                off[slug] = NEEDS_MORE
    for slug in AutoTriageSwitchOff.objects.filter(switched_on_at__isnull=True).values_list("category__slug",
                                                                                          flat=True):
        off[slug] = SWITCHED_OFF
    return AutoTriagePolicy(thresholds=thresholds, off=off)


# Spot checks ------------------------------------------------------------------------------------

def spot_check_record(*, report: Report, category: Category, probability: float, model_version: str) -> SpotCheck:
    """Mark `report` as a spot check (call in the transaction that routes it)."""
    check, _ = SpotCheck.objects.update_or_create(report=report, defaults={
        "model_version": model_version, "category": category, "probability": probability,
        "share": settings.SPOT_CHECK_SHARE})
    return check


# Live precision and the guard -------------------------------------------------------------------

@dataclass(frozen=True)
class LivePrecision:
    label: str  # the category the model predicted
    decisions: int  # staff decisions on its auto-triaged or spot-checked reports
    right: int  # of those, verified as the predicted category
    low: float  # Wilson interval at AUTO_TRIAGE_CONFIDENCE
    high: float

    @property
    def precision(self) -> float | None:
        return self.right / self.decisions if self.decisions else None


def live_precision(*, version: str, since: dt.datetime | None) -> list[LivePrecision]:
    """Per predicted category, staff decisions given since `since` on the reports `version`
    auto-triaged or sent as spot checks; worst first. Duplicates are left out (as in training)."""
    qs = (verified_reports().filter(model_version=version, predicted_category__isnull=False)
          .filter(Q(auto_triaged=True) | Q(spot_check__model_version=version)))
    if since is not None:
        qs = qs.filter(verified_at__gte=since)
    decisions: dict[str, int] = {}
    right: dict[str, int] = {}
    for predicted, label, n in (qs.order_by().values_list("predicted_label", "training_label")
                                .annotate(n=Count("pk", distinct=True))):
        decisions[predicted] = decisions.get(predicted, 0) + n
        if label == predicted:
            right[predicted] = right.get(predicted, 0) + n
    confidence = settings.AUTO_TRIAGE_CONFIDENCE
    scores = [LivePrecision(label, n, right.get(label, 0), *wilson_interval(right.get(label, 0), n, confidence))
              for label, n in decisions.items()]
    return sorted(scores, key=lambda s: (s.high, s.label))


def open_switch_offs() -> list[AutoTriageSwitchOff]:
    return list(AutoTriageSwitchOff.objects.filter(switched_on_at__isnull=True)
                .select_related("category", "retrain_run").order_by("switched_off_at"))


def quality_guard_check() -> list[AutoTriageSwitchOff]:
    """Switch off auto-triage of every category whose live precision under the active model
    is credibly below the target; returns the new switch-offs.

    Call after a staff decision commits (console.services does, next to the retrain
    triggers). Each switch-off is recorded once (a partial unique index: two decisions
    committing together switch a category off once) and queues one retrain with the
    numbers as its reason, unless a retrain is already pending or running.
    """
    active = _active()
    if active is None:
        return []
    target, minimum = settings.AUTO_TRIAGE_TARGET_PRECISION, max(settings.QUALITY_GUARD_MIN_DECISIONS, 1)
    already = set(AutoTriageSwitchOff.objects.filter(switched_on_at__isnull=True).values_list("category__slug",
                                                                                              flat=True))
    switched = []
    for score in live_precision(version=active.version, since=active.activated_at):
        if score.label in already or score.decisions < minimum or score.high >= target:
            continue
        off = _switch_off(active=active, score=score, target=target)
        if off is not None:
            switched.append(off)
    return switched


def _switch_off(*, active: ModelVersion, score: LivePrecision, target: float) -> AutoTriageSwitchOff | None:
    category = Category.objects.filter(slug=score.label).first()
    if category is None:
        return None
    confidence = settings.AUTO_TRIAGE_CONFIDENCE
    reason = (f"{category.name}: {score.right} of {score.decisions} staff decisions on auto-triaged or spot-checked "
              f"reports agreed with {active.version} since its activation ({score.precision:.0%}; "
              f"{confidence:.0%} Wilson interval {score.low:.2f}-{score.high:.2f}, below the {target:.0%} target)")
    evidence = {"decisions": score.decisions, "right": score.right, "precision": score.precision,
                "wilson_low": score.low, "wilson_high": score.high, "target_precision": target,
                "confidence": confidence, "min_decisions": settings.QUALITY_GUARD_MIN_DECISIONS,
                "since": active.activated_at.isoformat() if active.activated_at else None}
    try:
        with transaction.atomic():
            off = AutoTriageSwitchOff.objects.create(category=category, model_version=active.version,
                                                     reason=reason[:500], evidence=evidence)
            AutoTriageChange.objects.create(
                category=category, model_version=active.version, kind=Kind.SWITCHED_OFF,
                old_threshold=category.auto_triage_threshold, new_threshold=None, actor_label=GUARD,
                reason=reason[:500], evidence=evidence)
    except IntegrityError:  # another process switched it off meanwhile
        return None
    logger.warning("auto-triage switched off: %s", reason)
    from .runs import open_retrain_run, retrain_request

    run = retrain_request(trigger=RetrainRun.Trigger.QUALITY, reason=f"live quality guard: {reason}", force=True,
                          active_version=active.version,
                          evidence={"keys": [f"quality:{category.slug}"], "switch_off": off.pk, **evidence})
    if run is None:
        current = open_retrain_run()
        off.evidence["retrain"] = (f"not queued: run {current.pk} was already {current.state}" if current
                                   else "not queued: a retrain was already pending or running")
        off.save(update_fields=["evidence"])
    else:
        off.retrain_run = run
        off.save(update_fields=["retrain_run"])
    return off
