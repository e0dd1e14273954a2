"""Retention: reporter contact details are erased REPORTER_CONTACT_RETENTION_DAYS after a report closes.

The reporter's and the "also reported" people's names and addresses go, and so do the copies
other apps keep (reports.signals.contact_details_erasing: notifications blanks its messages).
The report, its photo and its audit trail stay. Each erasure is one `contact_erased` event that
names what went, never the values. Only a closed report has `closed_at` (reopening clears it),
so an open report is never erased and closing again starts the period again.
`manage.py erase_contact_details` runs it nightly.
"""
from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from . import workflow
from .models import Report, ReportEvent, ReportSupporter
from .services import record_event
from .signals import contact_details_erasing

logger = logging.getLogger(__name__)
ACTOR = "retention"


def reports_due_for_erasure(*, now: datetime | None = None, days: int | None = None) -> QuerySet[Report]:
    """Reports closed at least `days` (REPORTER_CONTACT_RETENTION_DAYS) ago that still hold a
    contact detail, their own or a supporter's. None when the setting is 0 (keep for ever)."""
    days = settings.REPORTER_CONTACT_RETENTION_DAYS if days is None else days
    if days <= 0:
        return Report.objects.none()
    cutoff = (now or timezone.now()) - timedelta(days=days)
    supporters = ReportSupporter.objects.filter(report=OuterRef("pk")).exclude(reporter_name="", reporter_email="")
    return (Report.objects.filter(closed_at__lte=cutoff, status__in=workflow.CLOSED)
            .filter(~Q(reporter_name="") | ~Q(reporter_email="") | Exists(supporters)))


def describe(counts: Counter) -> str:
    """'1 reporter name, 2 also-reported contacts': what was erased, never the values."""
    return ", ".join(f"{n} {what}" for what, n in counts.items())


def report_erase_contact(*, report: Report, dry_run: bool = False) -> Counter:
    """Erase `report`'s contact details and record the `contact_erased` event; what was (with
    dry_run: would be) erased, by kind. Call inside transaction.atomic() holding the report's row lock."""
    counts = Counter({"reporter name": int(bool(report.reporter_name)),
                      "reporter email": int(bool(report.reporter_email))})
    supporters = report.supporters.exclude(reporter_name="", reporter_email="")
    counts["also-reported contacts"] = (supporters.count() if dry_run
                                        else supporters.update(reporter_name="", reporter_email=""))
    for _receiver, found in contact_details_erasing.send(sender=Report, report=report, dry_run=dry_run):
        counts.update(found or {})
    counts = +counts  # drop the zeros
    if dry_run or not counts:
        return counts
    Report.objects.filter(pk=report.pk).update(reporter_name="", reporter_email="")
    report.reporter_name = report.reporter_email = ""
    record_event(report=report, actor_label=ACTOR, action=ReportEvent.Action.CONTACT_ERASED,
                 field="contact details", note=f"Erased after the retention period: {describe(counts)}.")
    return counts


def contact_details_erase_due(*, now: datetime | None = None, days: int | None = None, batch_size: int = 200,
                              dry_run: bool = False) -> Counter:
    """Erase every report due (reports_due_for_erasure); the totals, with "reports" and any "failed".

    Idempotent: an erased report is no longer due. Ids are read `batch_size` at a time and each
    report is erased in its own transaction under its row lock (one busy elsewhere is left for
    the next run), so a long run holds few locks and one failing report stops no other."""
    totals: Counter = Counter()
    last = 0
    while ids := list(reports_due_for_erasure(now=now, days=days).filter(pk__gt=last).order_by("pk")
                      .values_list("pk", flat=True)[:batch_size]):
        last = ids[-1]
        for pk in ids:
            try:
                with transaction.atomic():
                    report = (reports_due_for_erasure(now=now, days=days).filter(pk=pk)
                              .select_for_update(skip_locked=True).first())
                    if report is None:  # reopened, erased or locked since the batch was read
                        continue
                    counts = report_erase_contact(report=report, dry_run=dry_run)
            except Exception:  # noqa: BLE001 - logged and counted; the others still go
                logger.exception("report %s: contact details not erased", pk)
                totals["failed"] += 1
                continue
            if counts:
                totals["reports"] += 1
                totals.update(counts)
    if totals["reports"] and not dry_run:
        logger.info("contact details erased from %s reports (%s)", totals["reports"], describe(totals))
    return totals
