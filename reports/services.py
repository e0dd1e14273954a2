"""State-changing operations on reports. Views and APIs call these, nothing else writes."""
from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.contrib.gis.geos import GEOSGeometry, Point
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import connection, transaction

from . import photos, validation, workflow
from .models import Category, Report, ReportEvent, ReportSupporter
from .signals import report_submitted
from .workflow import By

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Intake:
    report: Report
    created: bool  # False when an identical photo was already reported


def parse_coordinate(value, *, name: str, limit: float) -> float | None:
    """'51.5' -> 51.5; '' / None -> None; anything else out of range or non-numeric is an error."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValidationError({name: f"{name} must be a number, got {str(value)[:30]!r}."}, code="invalid") from None
    if not (-limit <= number <= limit):  # also rejects NaN
        raise ValidationError({name: f"{name} must be between -{limit:g} and {limit:g}."}, code="out_of_range")
    return number


def geodesic_distance_m(a: Point, b: Point) -> float:
    """Distance on the WGS84 spheroid in metres (PostGIS geography)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT ST_Distance(ST_GeogFromText(%s), ST_GeogFromText(%s))", [a.ewkt, b.ewkt])
        return float(cursor.fetchone()[0])


def _council_boundary():
    if not settings.COUNCIL_BOUNDARY:
        return None
    geom = GEOSGeometry(settings.COUNCIL_BOUNDARY)
    if geom.srid is None:
        geom.srid = 4326
    return geom


def _active_category(slug: str | None) -> Category | None:
    if not slug:
        return None
    try:
        return Category.objects.get(slug=slug, active=True)
    except Category.DoesNotExist:
        raise ValidationError({"category": f"Unknown category {slug!r}."}, code="invalid") from None


def report_create(
    *,
    photo: bytes,
    latitude: float | str | None = None,
    longitude: float | str | None = None,
    location_source: str = Report.LocationSource.CLIENT,
    category: str | None = None,
    description: str = "",
    address: str = "",
    reporter_name: str = "",
    reporter_email: str = "",
    channel: str = Report.Channel.WEB,
    media_url: str = "",
    actor_label: str = "citizen",
    classify: bool = True,
) -> Intake:
    """Validate everything, then store the report, its three photo files and a
    `created` event in one transaction; classification is enqueued after commit.

    Raises ValidationError (message per field) before anything is written. If
    storing fails half-way, the files already written are removed again.
    """
    lat = parse_coordinate(latitude, name="latitude", limit=90)
    lon = parse_coordinate(longitude, name="longitude", limit=180)
    if (lat is None) != (lon is None):
        raise ValidationError({"location": "Give both latitude and longitude, or neither."}, code="invalid")
    citizen_category = _active_category(category)
    info = photos.read_photo(photo)

    existing = Report.objects.filter(photo_sha256=info.sha256).order_by("created_at").first()
    if existing is not None:
        return Intake(report=existing, created=False)

    exif_point = Point(info.gps[1], info.gps[0], srid=4326) if info.gps else None
    if lat is not None:
        point = Point(lon, lat, srid=4326)
        source = location_source
    elif exif_point is not None:
        point, source = exif_point, Report.LocationSource.EXIF
    else:
        raise ValidationError(
            {"location": "Location required: allow location access, drop a pin on the map, "
                         "or send a photo that has GPS data."},
            code="location_required",
        )
    boundary = _council_boundary()
    if boundary is not None and not boundary.covers(point):
        raise ValidationError(
            {"location": f"This location is outside the area {settings.COUNCIL_NAME} looks after."},
            code="outside_boundary",
        )

    report = Report(
        channel=channel,
        status=Report.Status.PENDING,
        location=point,
        location_source=source,
        exif_location=exif_point,
        address=address.strip(),
        description=description.strip(),
        citizen_category=citizen_category,
        reporter_name=reporter_name.strip(),
        reporter_email=reporter_email.strip(),
        photo_format=info.format,
        photo_width=info.width,
        photo_height=info.height,
        photo_sha256=info.sha256,
        photo_phash=photos.difference_hash(info.image),
        media_url=media_url,
    )
    if exif_point is not None and source != Report.LocationSource.EXIF:
        report.exif_distance_m = geodesic_distance_m(point, exif_point)
    report.full_clean(exclude=["photo_original", "photo_public", "photo_thumbnail"])
    public_bytes, thumb_bytes = photos.public_derivative(info), photos.thumbnail(info)
    ref = report.service_request_id
    saved: list = []
    try:
        with transaction.atomic():
            report.photo_original.save(f"originals/{ref}.{info.extension}", ContentFile(info.data), save=False)
            saved.append(report.photo_original)
            report.photo_public.save(f"photos/{ref}.jpg", ContentFile(public_bytes), save=False)
            saved.append(report.photo_public)
            report.photo_thumbnail.save(f"thumbs/{ref}.jpg", ContentFile(thumb_bytes), save=False)
            saved.append(report.photo_thumbnail)
            report.save()
            ReportEvent.objects.create(
                report=report, actor_label=actor_label, action="created",
                field="status", to_value=report.status,
            )
            if classify:
                transaction.on_commit(lambda: enqueue_classification(report.pk))
    except BaseException:
        for f in saved:
            f.storage.delete(f.name)
        raise
    logger.info("report %s created via %s at %s", ref, channel, point.coords)
    return Intake(report=report, created=True)


def enqueue_classification(report_id: int) -> None:
    """Announce the stored report (reports.signals.report_submitted; the classifier queues it). A failing
    receiver never loses the report: it stays pending and a worker's catch-up classifies it."""
    for receiver, result in report_submitted.send_robust(sender=Report, report_id=report_id):
        if isinstance(result, Exception):
            logger.error("%s failed for report %s; it stays pending", getattr(receiver, "__qualname__", receiver),
                         report_id, exc_info=result)


def record_event(*, report: Report, actor=None, actor_label: str = "", action: str, field: str = "",
                 from_value="", to_value="", note: str = "", public: bool = False) -> ReportEvent:
    """One audit row; `action` is a ReportEvent.Action. Status changes go through report_transition."""
    return ReportEvent.objects.create(
        report=report, actor=actor, actor_label=actor_label or (actor.get_username() if actor else "system"),
        action=ReportEvent.Action(action), field=field, from_value=str(from_value or ""),
        to_value=str(to_value or ""), note=note, public=public,
    )


def report_transition(*, report: Report, to: str, by: By = By.STAFF, actor=None, actor_label: str = "",
                      action: str = "", note: str = "", public: bool = False,
                      fields: Iterable[str] = ()) -> Report:
    """Move `report` to status `to`, save it and record the status event: the one writer of
    Report.status, so every move follows reports.workflow.

    Call inside transaction.atomic() holding the report's row lock, after the caller's own
    checks (console.services: permission and version; the classifier: still pending).
    `fields` are other attributes the caller set on `report`, saved with it. A refused move
    raises ValidationError naming the allowed ones. Leaving rejected drops the reject reason,
    leaving duplicate the link to the original. Any move but the classifier's bumps the
    version, so whoever looks at the old state gets a conflict. The event's action defaults
    to `reopen` out of a closed status, else `status`.
    """
    frm = report.status
    try:
        workflow.check_transition(frm, to, by=by, has_category=report.final_category_id is not None)
    except workflow.TransitionRefused as exc:
        raise ValidationError({"status": str(exc)}, code="transition") from None
    update = {*fields, "status", "updated_at"}
    report.status = to
    if frm == Report.Status.REJECTED and report.reject_reason:
        report.reject_reason = ""
        update.add("reject_reason")
    if frm == Report.Status.DUPLICATE:
        report.duplicate_of = None
        update.add("duplicate_of")
    if by != By.CLASSIFIER:
        report.version += 1
        update.add("version")
    report.save(update_fields=sorted(update))
    if not action:
        action = ReportEvent.Action.REOPEN if workflow.is_reopen(frm) else ReportEvent.Action.STATUS
    record_event(report=report, actor=actor, actor_label=actor_label, action=action, field="status",
                 from_value=frm, to_value=to, note=note, public=public)
    return report


def report_set_citizen_category(*, report: Report, category: Category) -> Report:
    """The citizen's answer to "It looks like it might be X. Is that right?": store it
    as their label (`citizen_category`) with a `citizen_label` event.

    The caller has already proven the citizen owns the report (reports.tokens).
    Refused (ValidationError) for an inactive category, and once the report is
    closed or staff have decided on it. When the new label contradicts a
    confident prediction, routing is redone as classifier.routing would have done
    it with this label: an auto-triaged report goes back to needs review, flagged
    `citizen_model_disagree`. Agreement clears that flag but never auto-triages a
    report that is waiting for a person (it may be a spot check or a staff move).
    The version is bumped, so a triager looking at the old state gets a conflict.
    """
    if not category.active:
        raise ValidationError({"category": f"Category {category.slug!r} is not active."}, code="inactive")
    with transaction.atomic():
        r = Report.objects.select_for_update(of=("self",)).select_related("citizen_category").get(pk=report.pk)
        if not r.is_open or r.final_category_id is not None or r.verified_by_id is not None:
            raise ValidationError("Our team has already looked at this report, so its category can no longer "
                                  "be changed here.", code="decided")
        before = r.citizen_category
        r.citizen_category = category
        fields = ["citizen_category"]
        back_to_review = False
        if r.predicted_top_k and r.status in (Report.Status.NEEDS_REVIEW, Report.Status.TRIAGED):
            decision = _route_with_citizen_label(r, category.slug)
            r.citizen_model_disagree = decision.citizen_model_disagree
            fields.append("citizen_model_disagree")
            if r.status == Report.Status.TRIAGED and r.auto_triaged and not decision.auto_triaged:
                r.auto_triaged, back_to_review = False, True
                fields.append("auto_triaged")
        record_event(report=r, actor_label="citizen", action=ReportEvent.Action.CITIZEN_LABEL,
                     field="citizen_category", from_value=before.slug if before else "", to_value=category.slug,
                     note=f"model said {r.predicted_label or 'nothing'}")
        if back_to_review:
            report_transition(report=r, to=Report.Status.NEEDS_REVIEW, by=By.CITIZEN, actor_label="system",
                              action=ReportEvent.Action.ROUTED, fields=fields,
                              note=f"the citizen says {category.slug}, the model said {r.predicted_label}")
        else:
            r.version += 1
            r.save(update_fields=[*fields, "version", "updated_at"])
    return r


def _route_with_citizen_label(report: Report, citizen_slug: str):
    from classifier.routing import route

    thresholds = dict(Category.objects.filter(active=True).values_list("slug", "auto_triage_threshold"))
    return route(top_k=[(slug, float(p)) for slug, p in report.predicted_top_k], thresholds=thresholds,
                 default_threshold=settings.DEFAULT_AUTO_TRIAGE_THRESHOLD, citizen_slug=citizen_slug,
                 unknown=report.predicted_unknown)
