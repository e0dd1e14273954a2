"""Staff actions on reports. Every function checks the actor's permission itself
(views stay thin and cannot forget), takes the version the actor saw, and
writes one ReportEvent per changed field.

Concurrency: each action locks the report row (`select_for_update`) and
compares `Report.version` with the version the actor's form was rendered
with; a mismatch raises `VersionConflict` carrying the current state and
nothing is written. Every successful change bumps the version.

Which status may follow which is reports.workflow's; status changes are written by
reports.services.report_transition. Here: who may, and with which version.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from reports import workflow
from reports.assignment import assign_team, routed_by_hand, team_set_by_hand
from reports.models import Category, Report, ReportEvent, Team
from reports.services import record_event, report_transition
from reports.targets import report_set_due_dates
from reports.validation import clean_text
from reports.workflow import By

from .models import ReportAssignment

logger = logging.getLogger(__name__)
S = Report.Status

A = ReportEvent.Action

@dataclass(frozen=True)
class RejectReason:
    label: str  # what staff pick from
    public_note: str  # what the citizen reads (status page, Open311 status_notes)


# Canned reasons for rejecting; the key is stored on Report.reject_reason. Only
# "not_council" says the photo shows no council issue: the others reject reports
# of real problems (on private land, already reported, already fixed, unclear).
REJECT_REASONS: dict[str, RejectReason] = {
    "not_council": RejectReason(_("Not a council matter"),
                                _("This is not something the council looks after.")),
    "private_land": RejectReason(_("Private land"),
                                 _("This is on private land, so the council cannot deal with it; "
                                   "the landowner is responsible.")),
    "duplicate": RejectReason(_("Duplicate of another report"),
                              _("This problem has already been reported, and we are dealing with it there.")),
    "already_fixed": RejectReason(_("Already fixed"), _("This has already been fixed.")),
    "not_enough_info": RejectReason(_("Not enough information"),
                                    _("We could not tell what the problem is or where it is from the photo "
                                      "and details sent. Please report it again with a clearer photo.")),
}


class VersionConflict(Exception):
    """Someone else changed the report since the actor loaded it. `current` is the fresh row."""

    def __init__(self, current: Report):
        self.current = current
        super().__init__(f"report {current.service_request_id} is at version {current.version}")


def require(user: AbstractBaseUser, perm: str) -> None:
    if not user.has_perm(perm):
        raise PermissionDenied(f"You need the '{perm.split('.')[-1]}' permission for this.")


def allowed_statuses(report: Report, user: AbstractBaseUser) -> list[str]:
    """Statuses `user` may move `report` to now (for the status menu)."""
    targets = workflow.targets(report.status, has_category=report.final_category_id is not None,
                               may_reopen=user.has_perm("console.reopen_report"))
    return [value for value, _ in S.choices if value in targets]


def check_set_status(*, report: Report, staff: AbstractBaseUser) -> None:
    """PermissionDenied unless `staff` may change `report`'s status as it is now: the set_status
    permission, and out of a closed status the reopen permission too. (Which target is
    allowed is reports.workflow's question, asked by report_transition.)"""
    require(staff, "console.set_status")
    if workflow.is_reopen(report.status):
        require(staff, "console.reopen_report")


def _lock(report: Report, expected_version: int) -> Report:
    """The report's row, locked. Call inside transaction.atomic()."""
    locked = Report.objects.select_for_update().get(pk=report.pk)
    if locked.version != int(expected_version):
        raise VersionConflict(current=locked)
    return locked


def _save(report: Report, fields: list[str]) -> None:
    """Save a change that leaves the status as it is (a status change is report_transition's)."""
    report.version += 1
    report.save(update_fields=[*fields, "version", "updated_at"])


def _slug(category: Category | None) -> str:
    return category.slug if category else ""


def _after_label_commit(report: Report) -> None:
    """Once a staff label on a report the model classified commits, the one place that reacts:
    first the live quality guard (classifier.quality: a category whose live precision is
    credibly below target stops auto-triaging and queues a retrain), then the correction
    triggers (classifier.triggers). Never fails the decision: errors are logged."""
    if not report.predicted_label:
        return

    def check() -> None:
        from classifier.quality import quality_guard_check
        from classifier.triggers import retrain_if_evidence

        try:
            for off in quality_guard_check():
                logger.warning("after a decision on %s: %s", report.service_request_id, off.reason)
        except Exception:
            logger.exception("live quality guard check failed after a decision on %s", report.service_request_id)
        run = retrain_if_evidence()
        if run is not None:
            logger.info("retrain %s queued after a decision on %s: %s", run.pk, report.service_request_id, run.reason)

    transaction.on_commit(check, robust=True)


def report_verify(*, report: Report, staff: AbstractBaseUser, category: Category, expected_version: int) -> Report:
    """Set the staff label. Agreeing with the model is a 'verify', differing a 'correct'.
    A report still waiting for review becomes triaged. Rejected or duplicate
    reports must be reopened first (their label is 'no_issue' / the original's)."""
    require(staff, "console.verify_report")
    if not category.active:
        raise ValidationError({"category": f"Category {category.slug!r} is not active."})
    with transaction.atomic():
        r = _lock(report, expected_version)
        if r.status in workflow.RELABEL_NEEDS_REOPEN:
            raise ValidationError(f"This report is {r.get_status_display().lower()}; reopen it before relabelling.")
        before, shown_before = r.final_category, r.category
        r.final_category, r.verified_by, r.verified_at = category, staff, timezone.now()
        fields = ["final_category", "verified_by", "verified_at"]
        record_event(report=r, actor=staff, action=A.VERIFY if category.slug == r.predicted_label else A.CORRECT,
                     field="final_category", from_value=_slug(before), to_value=category.slug,
                     note=f"model said {r.predicted_label or 'nothing'}")
        fields += report_set_due_dates(r)  # a new category, new targets
        to = workflow.after_verify(r.status)
        if to is None:
            _save(r, fields)
        else:
            report_transition(report=r, to=to, actor=staff, fields=fields)
        if r.category != shown_before or not routed_by_hand(r):  # a team chosen by hand holds for its category
            assign_team(report=r, actor=staff)
        _after_label_commit(r)
    return r


def _reject_reason(reason: str) -> RejectReason:
    if reason not in REJECT_REASONS:
        choices = "; ".join(f"{key} ({r.label})" for key, r in REJECT_REASONS.items())
        raise ValidationError({"reason": f"Rejecting needs a reason; choose one of: {choices}."})
    return REJECT_REASONS[reason]


def report_set_status(*, report: Report, staff: AbstractBaseUser, status: str, expected_version: int,
                      note: str = "", reason: str = "") -> Report:
    """Move along the workflow. Rejecting is also a label: it needs a `reason`
    (a REJECT_REASONS key, stored on the report and the reject event), records who
    decided, clears the final category and tells the citizen why in a public note.
    Leaving fixed/closed/rejected/duplicate needs the reopen permission."""
    require(staff, "console.set_status")
    if status not in S.values:
        raise ValidationError({"status": f"Unknown status {status!r}; choose one of {', '.join(S.values)}."})
    rejection = _reject_reason(reason) if status == S.REJECTED else None
    with transaction.atomic():
        r = _lock(report, expected_version)
        check_set_status(report=r, staff=staff)
        fields = []  # a move report_transition refuses rolls back the reject event too
        if rejection is not None:
            previous_label = r.final_category
            r.final_category, r.verified_by, r.verified_at = None, staff, timezone.now()
            r.reject_reason = reason
            fields += ["final_category", "verified_by", "verified_at", "reject_reason"]
            record_event(report=r, actor=staff, action=A.REJECT, field="final_category",
                         from_value=_slug(previous_label), to_value="no_issue",
                         note=f"reason: {reason} ({rejection.label}); model said {r.predicted_label or 'nothing'}")
            _after_label_commit(r)
        report_transition(report=r, to=status, actor=staff, fields=fields,
                          note=note or (str(rejection.label) if rejection else ""))
        if rejection is not None:  # the latest public note is Open311's status_notes
            record_event(report=r, actor=staff, action=A.NOTE, note=str(rejection.public_note), public=True)
    return r


def report_mark_duplicate(*, report: Report, original: Report, staff: AbstractBaseUser,
                          expected_version: int) -> Report:
    """`report` becomes a duplicate of `original`; the citizen's page then shows the original's status."""
    require(staff, "console.merge_duplicates")
    if original.pk == report.pk:
        raise ValidationError("A report cannot be a duplicate of itself.")
    if original.status == S.DUPLICATE:
        raise ValidationError(f"{original} is itself a duplicate; merge into "
                              f"{original.duplicate_of or 'its original'} instead.")
    with transaction.atomic():
        r = _lock(report, expected_version)
        if not workflow.is_open(r.status):
            raise ValidationError(f"This report is already {r.get_status_display().lower()}.")
        if Report.objects.filter(duplicate_of=r).exists():
            raise ValidationError("Other reports are duplicates of this one; merge the other way round.")
        r.duplicate_of = original
        record_event(report=r, actor=staff, action=A.DUPLICATE, field="duplicate_of",
                     to_value=original.service_request_id)
        report_transition(report=r, to=S.DUPLICATE, by=By.MERGE, actor=staff, fields=["duplicate_of"])
    return r


def report_add_note(*, report: Report, staff: AbstractBaseUser, text: str, public: bool) -> ReportEvent:
    """Notes never conflict (append-only), so no version check. Public ones show in Open311 status_notes."""
    require(staff, "console.add_note")
    text = clean_text(text, field="note", label="Note", max_length=2000)  # the intake's character rules too
    if not text:
        raise ValidationError({"note": "The note is empty."})
    with transaction.atomic():
        Report.objects.filter(pk=report.pk).update(updated_at=timezone.now())
        return record_event(report=report, actor=staff, action=A.NOTE, note=text, public=public)


def report_assign(*, report: Report, staff: AbstractBaseUser, assignee: AbstractBaseUser | None,
                  team: Team | None, expected_version: int) -> Report:
    """Assign to a person (console.ReportAssignment; None unassigns) and set the responsible team
    (Report.team; None: no team). A team other than the current one is an override of the
    routing, written by reports.assignment like a rule's (the `assigned` event, forwarding to an
    outside body, the citizen's notice); it holds until the report's category changes. Each
    changed part records its event; a change bumps the version."""
    require(staff, "console.assign_report")
    if assignee is not None and not assignee.has_perm("console.view_console"):
        raise ValidationError({"assignee": f"{assignee.get_username()} is not console staff."})
    with transaction.atomic():
        r = _lock(report, expected_version)
        if team is not None and not team.active and team.pk != r.team_id:
            raise ValidationError({"team": f"Team {team.name} is not active; choose an active team."})
        current = ReportAssignment.objects.filter(report=r).select_related("assignee").first()
        before = current.assignee if current else None
        changed = team_set_by_hand(report=r, team=team, actor=staff)
        if assignee != before:
            if assignee is None:
                ReportAssignment.objects.filter(report=r).delete()
            else:
                ReportAssignment.objects.update_or_create(report=r, defaults={
                    "assignee": assignee, "assigned_by": staff, "assigned_at": timezone.now()})
            record_event(report=r, actor=staff, action=A.ASSIGN, field="assignee",
                         from_value=before.get_username() if before else "",
                         to_value=assignee.get_username() if assignee else "")
            changed = True
        if changed:
            _save(r, [])
    return r


@dataclass
class BulkResult:
    done: list[str] = field(default_factory=list)  # references changed
    conflicts: list[str] = field(default_factory=list)  # changed by someone else meanwhile
    errors: dict[str, str] = field(default_factory=dict)  # reference -> reason


def _bulk(selection: Iterable[tuple[int, int]], action, check=None) -> BulkResult:
    """Apply `action(report, version)` to each (pk, version), each report in its own savepoint,
    so one conflict or refused move does not undo the rest.

    Permission is all-or-nothing: every selected row is locked first and `check(report)` run
    on each; if it raises PermissionDenied for any, nothing is changed and ValidationError
    names every refused report (rather than changing some and stopping with a 403)."""
    result = BulkResult()
    selection = list(selection)
    with transaction.atomic():
        reports = {r.pk: r for r in Report.objects.select_for_update().filter(pk__in=[pk for pk, _ in selection])
                   .order_by("pk")}  # one lock order, so two bulk actions cannot deadlock
        refused: dict[str, list[str]] = {}
        for report in reports.values() if check else ():
            try:
                check(report)
            except PermissionDenied as exc:
                refused.setdefault(str(exc), []).append(report.service_request_id)
        if refused:
            raise ValidationError([f"Nothing was changed. Refused for {', '.join(sorted(refs))}: {why}"
                                   for why, refs in refused.items()], code="permission")
        for pk, version in selection:
            report = reports.get(pk)
            if report is None:
                continue
            try:
                with transaction.atomic():
                    action(report, version)
            except VersionConflict:
                result.conflicts.append(report.service_request_id)
            except ValidationError as exc:
                result.errors[report.service_request_id] = " ".join(exc.messages)
            else:
                result.done.append(report.service_request_id)
    return result


def report_bulk_verify(*, selection: Iterable[tuple[int, int]], staff: AbstractBaseUser,
                       category: Category) -> BulkResult:
    require(staff, "console.verify_report")
    return _bulk(selection, lambda r, v: report_verify(report=r, staff=staff, category=category, expected_version=v))


def report_bulk_set_status(*, selection: Iterable[tuple[int, int]], staff: AbstractBaseUser,
                           status: str, reason: str = "") -> BulkResult:
    """Raises ValidationError, changing nothing, when `staff` may not move some of the reports
    (closed ones without the reopen permission)."""
    require(staff, "console.set_status")
    if status == S.REJECTED:
        _reject_reason(reason)  # one clear error rather than one per report
    return _bulk(selection, lambda r, v: report_set_status(report=r, staff=staff, status=status, expected_version=v,
                                                           reason=reason),
                 check=lambda r: check_set_status(report=r, staff=staff))


def category_set_threshold(*, category: Category, staff: AbstractBaseUser, threshold: float,
                           reason: str) -> Category:
    """A supervisor's override of a category's auto-triage threshold, audited (who, when, old,
    new, why: classifier.models.AutoTriageChange). Applies to reports classified from now
    on; earlier routing is not redone. The next promotion derives thresholds afresh."""
    require(staff, "console.edit_thresholds")
    reason = reason.strip()
    if not reason:
        raise ValidationError({"reason": "Say why you override the threshold; it is kept in the audit trail."})
    from classifier.quality import threshold_override

    with transaction.atomic():
        category = Category.objects.select_for_update().get(pk=category.pk)
        old = category.auto_triage_threshold
        threshold_override(category=category, user=staff, threshold=threshold, reason=reason)  # before the change
        category.auto_triage_threshold = threshold
        category.full_clean()
        category.save(update_fields=["auto_triage_threshold"])
    logger.info("auto-triage threshold of %s changed %s -> %s by %s: %s", category.slug, old, threshold, staff, reason)
    return category


def model_retrain(*, staff: AbstractBaseUser):
    """Queue a forced retrain (the nightly run skips when too few new labels) and return its
    RetrainRun. Returns at once: the training runs on the "training" task backend (its own
    worker; a background thread in the demo). A request already queued whose task was lost
    (the demo server restarted) is sent again; one already running raises ValidationError."""
    require(staff, "console.retrain_model")
    from classifier.models import RetrainRun
    from classifier.runs import open_retrain_run, retrain_request, retrain_run_dispatch

    for _attempt in range(3):  # an open run may finish between the two looks
        run = retrain_request(trigger=RetrainRun.Trigger.STAFF, reason=f"Retrain now by {staff.get_username()}",
                              requested_by=staff, force=True)
        if run is not None:
            logger.info("retrain %s queued by %s", run.pk, staff)
            return run
        current = open_retrain_run()
        if current is not None and current.state == RetrainRun.State.PENDING:
            retrain_run_dispatch(run=current)
            return current
        if current is not None:
            raise ValidationError(f"A retrain is already running (run {current.pk}, since "
                                  f"{timezone.localtime(current.started_at):%d %b %H:%M}: {current.reason}).")
    raise ValidationError("Could not queue the retrain; try again.")


def model_rollback(*, staff: AbstractBaseUser):
    """Reactivate the previously active model version (classifier.services does the work)."""
    require(staff, "console.rollback_model")
    from classifier.services import model_rollback as rollback

    return rollback(user=staff)
