"""Read-only queries for public views and APIs."""
from __future__ import annotations

from django.contrib.gis.db.models import PointField
from django.contrib.gis.db.models.lookups import BBOverlapsLookup
from django.contrib.gis.geos import Polygon
from django.db.models import QuerySet
from django.db.models.functions import Cast

from .categories import NO_ISSUE, NO_ISSUE_NAME
from .models import Category, Report, ReportEvent


def public_reports() -> QuerySet[Report]:
    """Reports as the public may see them (no reporter details are ever rendered from these)."""
    return Report.objects.select_related("final_category", "citizen_category", "predicted_category", "duplicate_of")


def in_bbox(bbox: tuple[float, float, float, float], field: str = "location") -> BBOverlapsLookup:
    """A filter() condition: the point lies in the lon/lat box (min_lon, min_lat, max_lon, max_lat).

    Compared as planar geometry, as a web map draws the box: a geography polygon's edges
    follow great circles (a -170..170 box becomes a sliver across the antimeridian) and
    PostGIS refuses one with a 180-degree edge.
    """
    box = Polygon.from_bbox(bbox)
    box.srid = 4326
    return BBOverlapsLookup(Cast(field, PointField(srid=4326)), box)


def label_names() -> dict[str, str]:
    """Each label a model or staff can give (category slugs and NO_ISSUE) -> the name people read;
    slugs are codes, for APIs and exports."""
    return {**dict(Category.objects.values_list("slug", "name")), NO_ISSUE: NO_ISSUE_NAME}


def report_by_reference(reference: str) -> Report | None:
    return public_reports().filter(service_request_id=reference.upper()).first()


def public_notes(report: Report) -> list[ReportEvent]:
    return list(report.events.filter(action="note", public=True).order_by("created_at"))


def public_status(report: Report) -> Report:
    """The report whose status the citizen should see: the original when this one is a duplicate."""
    return report.duplicate_of if report.status == Report.Status.DUPLICATE and report.duplicate_of else report


def citizen_suggestion(report: Report):
    """The category the thank-you page may say the photo *might* show, else None.

    Only a real, active category (never `no_issue`), never a photo the model
    flags as unlike its training classes, and only at or above that category's
    auto-triage threshold: below it the model is unsure and the page says nothing.
    """
    category = report.predicted_category
    if (category is None or not category.active or report.predicted_unknown
            or report.predicted_probability is None):
        return None
    return category if report.predicted_probability >= category.auto_triage_threshold else None


def citizen_may_label(report: Report) -> bool:
    """Whether the citizen may still confirm or correct the category (mirrors
    reports.services.report_set_citizen_category's refusal)."""
    return report.is_open and report.final_category_id is None and report.verified_by_id is None


def citizen_label_answered(report: Report) -> bool:
    return report.events.filter(action="citizen_label").exists()
