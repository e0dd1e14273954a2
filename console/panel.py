"""Model panel: how the active model does against staff labels (read-only)."""
from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Count, F, Q
from django.db.models.functions import TruncWeek
from django.utils import timezone
from django.utils.safestring import mark_safe

from classifier.models import AutoTriageChange, ModelVersion, SpotCheck
from classifier.quality import auto_triage_policy, describe_evidence, live_precision, open_switch_offs
from classifier.runs import open_retrain_run, recent_retrain_runs
from classifier.training_data import label_photos
from classifier.triggers import is_correction, trigger_status
from inference.metrics import class_scores
from reports.categories import NO_ISSUE
from reports.models import Category, Report, staff_labelled_q
from reports.selectors import label_names

from . import charts


@dataclass
class ClassScore:
    label: str
    precision: float | None
    recall: float | None
    f1: float | None
    support: int  # staff labels of this class


def model_quality(*, version: str, since: dt.datetime | None = None) -> dict:
    """Precision/recall/F1 per class of `version`'s predictions against staff labels
    given since `since` (activation). Rejected reports count as the class no_issue."""
    qs = Report.objects.staff_labelled().filter(model_version=version).exclude(predicted_label="")
    if since is not None:
        qs = qs.filter(verified_at__gte=since)
    pairs: dict[tuple[str, str], int] = {}
    for predicted, truth, n in (qs.order_by().values_list("predicted_label", "training_label")
                                .annotate(n=Count("pk"))):
        pairs[(truth, predicted)] = pairs.get((truth, predicted), 0) + n
    order = list(Category.objects.order_by("order", "name").values_list("slug", flat=True)) + [NO_ISSUE]
    seen = {label for pair in pairs for label in pair}
    labels = [s for s in order if s in seen] + sorted(seen - set(order))
    counts = [[pairs.get((t, p), 0) for p in labels] for t in labels]
    scores = [ClassScore(label, s.precision, s.recall, s.f1, s.support)
              for label, s in zip(labels, class_scores(counts))]  # training's evaluation uses the same definition
    total = sum(pairs.values())
    correct = sum(n for (t, p), n in pairs.items() if t == p)
    matrix = list(zip(labels, counts))
    return {"labels": labels, "scores": scores, "matrix": matrix, "total": total,
            "accuracy": correct / total if total else None}


def auto_triage_stats(*, version: str) -> dict:
    classified = Report.objects.filter(model_version=version).exclude(predicted_label="")
    agg = classified.aggregate(
        classified=Count("pk"),
        auto=Count("pk", filter=Q(auto_triaged=True)),
        checked=Count("pk", filter=Q(auto_triaged=True) & staff_labelled_q()),
        correct=Count("pk", filter=Q(auto_triaged=True, final_category__slug=F("predicted_label")) & staff_labelled_q()),
    )
    agg["rate"] = agg["auto"] / agg["classified"] if agg["classified"] else None
    agg["accuracy"] = agg["correct"] / agg["checked"] if agg["checked"] else None
    return agg


HOLDOUT_SOURCES = (("local", "this council's photos"), ("bootstrap", "bootstrap photos"))


def holdout_by_source(version) -> list[dict]:
    """Holdout numbers per source of a ModelVersion, as the retrain run that built it recorded
    them (none for older or hand-registered models): the council's own photos first."""
    by_source = (version.promotion_report or {}).get("candidate_holdout_by_source") or {}
    return [{"source": source, "name": name, "macro_f1": m.get("macro_f1"), "n_images": m.get("n_images")}
            for source, name in HOLDOUT_SOURCES if (m := by_source.get(source))]


def retrain_runs_context(*, active) -> dict:
    """Recent retrain runs (why, who, outcome) and progress toward the correction triggers."""
    from classifier.retrain import promotion_shortfalls

    return {"retrain_runs": recent_retrain_runs(limit=10), "open_run": open_retrain_run(),
            "triggers": trigger_status(active=active), "retrain_shortfalls": promotion_shortfalls()}


@dataclass
class ThresholdRow:
    category: Category
    known: bool  # the active model has this class
    off_reason: str  # why it does not auto-triage now ("" if it does)
    derived: dict | None  # the active model's evidence for it (classifier.thresholds.ThresholdEvidence)
    derived_reason: str  # that evidence in words
    latest: object | None  # the latest AutoTriageChange (derived or override)
    live: object | None  # classifier.quality.LivePrecision since activation


def auto_triage_context(*, active) -> dict:
    """Thresholds with the evidence behind them, the live quality guard's switch-offs and
    numbers, and the audit trail of auto-triage changes."""
    categories = list(Category.objects.order_by("order", "name"))
    derivation = (active.thresholds or None) if active else None
    per_class = (derivation or {}).get("per_class", {}) if (derivation or {}).get("derived") else {}
    policy = auto_triage_policy()
    live = {s.label: s for s in live_precision(version=active.version, since=active.activated_at)} if active else {}
    latest: dict[int, object] = {}
    for change in (AutoTriageChange.objects.filter(kind__in=["derived", "override"])
                   .select_related("actor").order_by("category_id", "-created_at", "-id")
                   .distinct("category_id")):
        latest[change.category_id] = change
    rows = []
    for c in categories:
        evidence = per_class.get(c.slug)
        reason = describe_evidence(evidence, target=derivation["target_precision"],
                                   confidence=derivation["confidence"]) if evidence else ""
        rows.append(ThresholdRow(c, bool(active) and c.slug in active.classes, policy.off.get(c.slug, ""),
                                 evidence, reason, latest.get(c.pk), live.get(c.slug)))
    spot_checks = None
    if active is not None:
        spot_checks = SpotCheck.objects.filter(model_version=active.version).aggregate(
            drawn=Count("pk"), decided=Count("pk", filter=staff_labelled_q("report__")))
    return {"threshold_rows": rows, "switch_offs": open_switch_offs(), "derivation": derivation,
            "guard": {"target": settings.AUTO_TRIAGE_TARGET_PRECISION, "confidence": settings.AUTO_TRIAGE_CONFIDENCE,
                      "spot_check_share": settings.SPOT_CHECK_SHARE,
                      "min_decisions": settings.QUALITY_GUARD_MIN_DECISIONS},
            "threshold_changes": list(AutoTriageChange.objects.select_related("category", "actor")[:20]),
            "spot_checks": spot_checks}


@dataclass(frozen=True)
class NewCategory:
    """A category staff use that the active model does not know yet, with its verified photos
    toward the bar a new class must reach to be trained on (classifier.training_data)."""
    category: Category
    photos: int  # verified reports + training examples of it
    train: int  # of those, outside the holdout (as the next export would split them)
    holdout: int
    needed: int  # MIN_PHOTOS_NEW_CLASS

    @property
    def ready(self) -> bool:
        return self.train >= self.needed


def new_categories(*, active) -> list[NewCategory]:
    """Active categories, and any inactive one with verified photos, that `active` (the active
    ModelVersion, or None: every category is new) has no class for; in panel order."""
    photos = label_photos()
    known = set(active.classes) if active else set()
    needed = settings.MIN_PHOTOS_NEW_CLASS
    rows = []
    for c in Category.objects.order_by("order", "name"):
        p = photos.get(c.slug)
        if c.slug in known or (not c.active and p is None):
            continue
        rows.append(NewCategory(c, p.photos if p else 0, p.train if p else 0, p.holdout if p else 0, needed))
    return rows


@dataclass(frozen=True)
class DriftWeek:
    """One ISO week (local time) of live evidence about the model in service, whichever version."""
    start: dt.date  # its Monday
    verified: int  # staff labels given this week on reports a model classified (duplicates left out)
    corrected: int  # of those, a label other than the model's prediction (classifier.triggers)
    spot_decided: int  # spot checks staff decided this week
    spot_right: int  # of those, verified as the category the model predicted
    classified: int  # reports a model classified this week
    unknown: int  # of those, flagged unlike every training class (predicted_unknown)

    @property
    def label(self) -> str:
        return charts.week_label(self.start)

    @property
    def correction_rate(self) -> float | None:
        return self.corrected / self.verified if self.verified else None

    @property
    def spot_precision(self) -> float | None:
        return self.spot_right / self.spot_decided if self.spot_decided else None

    @property
    def unknown_share(self) -> float | None:
        return self.unknown / self.classified if self.classified else None


DRIFT_WEEKS = 12


def drift_weeks(*, weeks: int = DRIFT_WEEKS, now: dt.datetime | None = None) -> list[DriftWeek]:
    """The current ISO week and the `weeks` - 1 before it, oldest first (three GROUP BY
    queries): staff decisions count in the week they were given, classifications in the
    week they were made."""
    tz = timezone.get_current_timezone()
    today = timezone.localtime(now or timezone.now(), tz).date()
    first = today - dt.timedelta(days=today.weekday() + 7 * (weeks - 1))
    since = timezone.make_aware(dt.datetime.combine(first, dt.time.min), tz)
    until = timezone.make_aware(dt.datetime.combine(first + dt.timedelta(weeks=weeks), dt.time.min), tz)
    counts = {first + dt.timedelta(weeks=i): Counter() for i in range(weeks)}

    def week(value: dt.datetime) -> Counter:
        return counts[timezone.localtime(value, tz).date()]

    decisions = (Report.objects.staff_labelled().filter(verified_at__gte=since, verified_at__lt=until)
                 .exclude(predicted_label="").exclude(model_version="")
                 .annotate(week=TruncWeek("verified_at", tzinfo=tz)).order_by()
                 .values_list("week", "predicted_label", "training_label").annotate(n=Count("pk")))
    for monday, predicted, label, n in decisions:
        c = week(monday)
        c["verified"] += n
        if is_correction(predicted=predicted, label=label):
            c["corrected"] += n
    spot_checks = (SpotCheck.objects.filter(staff_labelled_q("report__"), report__verified_at__gte=since,
                                            report__verified_at__lt=until)
                   .annotate(week=TruncWeek("report__verified_at", tzinfo=tz)).order_by().values_list("week")
                   .annotate(decided=Count("pk"),
                             right=Count("pk", filter=Q(report__final_category_id=F("category_id"))
                                         & ~Q(report__status=Report.Status.REJECTED))))
    for monday, decided, right in spot_checks:
        week(monday).update(spot_decided=decided, spot_right=right)
    classified = (Report.objects.filter(classified_at__gte=since, classified_at__lt=until).exclude(model_version="")
                  .annotate(week=TruncWeek("classified_at", tzinfo=tz)).order_by().values_list("week")
                  .annotate(n=Count("pk"), unknown=Count("pk", filter=Q(predicted_unknown=True))))
    for monday, n, unknown in classified:
        week(monday).update(classified=n, unknown=unknown)
    return [DriftWeek(start, c["verified"], c["corrected"], c["spot_decided"], c["spot_right"], c["classified"],
                      c["unknown"]) for start, c in counts.items()]


def model_activations(*, since: dt.date) -> list[charts.Marker]:
    """Each model version's (latest) activation on or after `since`, local time, oldest first."""
    start = timezone.make_aware(dt.datetime.combine(since, dt.time.min))
    return [charts.Marker(timezone.localtime(at), version) for version, at in
            ModelVersion.objects.filter(activated_at__gte=start).order_by("activated_at")
            .values_list("version", "activated_at")]


def _ratio(n: int, d: int) -> str:
    return f"{n} of {d}" if d else "none"


def drift_chart(weeks: list[DriftWeek], activations: list[charts.Marker]) -> str:
    """The drift plot (inline SVG) of `weeks`, with the activations as vertical lines."""
    series = [
        charts.Series("correction", "Staff correction rate", [w.correction_rate for w in weeks],
                      [f"{_ratio(w.corrected, w.verified)} staff labels corrected" for w in weeks]),
        charts.Series("spot-check", "Spot-check precision", [w.spot_precision for w in weeks],
                      [f"{_ratio(w.spot_right, w.spot_decided)} spot checks right" for w in weeks]),
        charts.Series("unknown", "Unknown photos", [w.unknown_share for w in weeks],
                      [f"{_ratio(w.unknown, w.classified)} classified photos unknown" for w in weeks]),
    ]
    return charts.weekly_share_chart(
        weeks=[w.start for w in weeks], series=series, markers=activations, chart_id="drift-chart",
        title="Model drift per week",
        description=f"Per ISO week from {weeks[0].label} to {weeks[-1].label}, as a share from 0 to 100%: the staff "
                    "correction rate (staff labels that differ from the model's prediction, of all staff labels on "
                    "classified reports), the spot-check precision (spot checks staff verified as the predicted "
                    "category, of those decided) and the share of classified photos flagged unknown. A week "
                    "without data leaves a gap. The table below lists the numbers.")


def drift_context() -> dict:
    weeks = drift_weeks()
    activations = model_activations(since=weeks[0].start)
    # Safe: charts escapes every text it puts in the markup.
    return {"drift": weeks, "drift_activations": activations, "drift_svg": mark_safe(drift_chart(weeks, activations))}


def model_panel_context(user) -> dict:
    versions = list(ModelVersion.objects.select_related("activated_by").order_by("-created_at")[:20])
    active = next((v for v in versions if v.status == "active"), None) or \
        ModelVersion.objects.filter(status="active").select_related("activated_by").first()
    for v in versions:
        v.holdout_by_source = holdout_by_source(v)
    waiting = Report.objects.staff_labelled()
    if versions:
        waiting = waiting.filter(verified_at__gt=versions[0].created_at)
    return {
        "active": active,
        "versions": versions,
        "active_holdout_by_source": holdout_by_source(active) if active else [],
        "quality": model_quality(version=active.version, since=active.activated_at) if active else None,
        "auto": auto_triage_stats(version=active.version) if active else None,
        "waiting_labels": waiting.count(),
        **retrain_runs_context(active=active),
        **auto_triage_context(active=active),
        "new_categories": new_categories(active=active),
        **drift_context(),
        "min_photos_new_class": settings.MIN_PHOTOS_NEW_CLASS,
        "categories": Category.objects.order_by("order", "name"),
        "label_names": label_names(),
        "can": {p: user.has_perm(f"console.{p}") for p in ("edit_thresholds", "retrain_model", "rollback_model")},
    }
