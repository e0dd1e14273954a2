"""Staff labels for tests: reports as a triager leaves them."""
from django.utils import timezone

from reports.models import Category, Report
from reports.services import report_create


def verified_report(photo: bytes, label: str) -> Report:
    """A citizen report a triager has labelled (rejected = no_issue)."""
    report = report_create(photo=photo, latitude=51.5, longitude=-0.12, classify=False).report
    report.verified_at = timezone.now()
    if label == "no_issue":
        report.status = Report.Status.REJECTED
    else:
        report.status, report.final_category = Report.Status.TRIAGED, Category.objects.get(slug=label)
    report.save()
    return report
