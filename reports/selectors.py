"""Read-only queries for public views and APIs."""
from __future__ import annotations

from django.db.models import QuerySet

from .models import Report, ReportEvent


def public_reports() -> QuerySet[Report]:
    """Reports as the public may see them (no reporter details are ever rendered from these)."""
    return Report.objects.select_related("final_category", "citizen_category", "predicted_category", "duplicate_of")


def report_by_reference(reference: str) -> Report | None:
    return public_reports().filter(service_request_id=reference.upper()).first()


def public_notes(report: Report) -> list[ReportEvent]:
    return list(report.events.filter(action="note", public=True).order_by("created_at"))


def public_status(report: Report) -> Report:
    """The report whose status the citizen should see: the original when this one is a duplicate."""
    return report.duplicate_of if report.status == Report.Status.DUPLICATE and report.duplicate_of else report
