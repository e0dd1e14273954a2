"""State-changing operations on reports. Views and APIs call these, nothing else writes."""
from __future__ import annotations

import logging
import weakref
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.contrib.gis.geos import GEOSGeometry, Point
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from . import gazetteer, photos, validation, workflow
from .routing import route
from .models import Category, Report, ReportEvent, ReportSupporter
from .signals import report_event_recorded, report_submitted
from .storage import delete_files
from .targets import report_set_due_dates
from .workflow import By

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Intake:
    report: Report
    created: bool  # False when an identical photo was already reported
    supporter: ReportSupporter | None = None  # set when created is False and the sender was recorded


def parse_coordinate(value, *, name: str, limit: float) -> float | None:
    """'51.5' -> 51.5; '' / None -> None; anything else out of range or non-numeric is an error."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValidationError({name: _("%(name)s must be a number, got %(value)s.") % {
            "name": name, "value": repr(str(value)[:30])}}, code="invalid") from None
    if not (-limit <= number <= limit):  # also rejects NaN
        raise ValidationError({name: _("%(name)s must be between -%(limit)s and %(limit)s.") % {
            "name": name, "limit": f"{limit:g}"}}, code="out_of_range")
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
        raise ValidationError({"category": _("Unknown category %(slug)s.") % {"slug": repr(slug)}},
                              code="invalid") from None


def _field_limit(name: str) -> int:
    return Report._meta.get_field(name).max_length


def _checked(errors: dict, check, *args, **kwargs):
    """check(...)'s value, or None with its messages added to `errors` (to report every bad field at once)."""
    try:
        return check(*args, **kwargs)
    except ValidationError as exc:
        errors.update(exc.message_dict)
        return None


class _DeleteFilesUnlessCommitted:
    """An on_commit callback that deletes files if the transaction they belong to rolls back.

    Django has no rollback hook, but on a rollback (of the outermost atomic, or of a
    savepoint the callback was registered under) it drops the pending callback; once
    dropped without having run, the finalizer deletes the files.
    """

    def __init__(self, files: list[tuple]):
        self.state = {"committed": False}
        weakref.finalize(self, _delete_files_unless_committed, files, self.state)

    def __call__(self) -> None:
        self.state["committed"] = True


def _delete_files_unless_committed(files: list[tuple], state: dict) -> None:
    if not state["committed"]:
        delete_files(files)


def _existing_report(sha256: str) -> Report | None:
    """The report this photo already belongs to: the original, not a staff-merged duplicate."""
    found = (Report.objects.filter(photo_sha256=sha256)
             .order_by(F("duplicate_of").asc(nulls_first=True), "created_at").select_related("duplicate_of").first())
    return found.duplicate_of or found if found else None


def _also_reported(*, report: Report, channel: str, reporter_name: str, reporter_email: str,
                   actor_label: str) -> Intake:
    """Someone sent a photo already reported: record them (once per email) instead of a second row."""
    email = reporter_email.lower()
    if email and (report.reporter_email.lower() == email
                  or report.supporters.filter(reporter_email__iexact=email).exists()):
        return Intake(report=report, created=False)
    with transaction.atomic():
        supporter = ReportSupporter.objects.create(report=report, channel=channel, reporter_name=reporter_name,
                                                   reporter_email=reporter_email)
        record_event(report=report, actor_label=actor_label, action=ReportEvent.Action.ALSO_REPORTED,
                     note=f"via {channel}")
    logger.info("report %s also reported via %s", report.service_request_id, channel)
    return Intake(report=report, created=False, supporter=supporter)


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
    language: str | None = None,
    channel: str = Report.Channel.WEB,
    media_url: str = "",
    actor_label: str = "citizen",
    classify: bool = True,
) -> Intake:
    """Validate everything, then store the report, its three photo files and a
    `created` event in one transaction; classification is enqueued after commit.

    The one validation path for every channel: text limits and characters
    (reports.validation), coordinates, category, then the photo. Raises
    ValidationError (a message per field; the photo's under "photo") before
    anything is written. A photo already reported (same bytes, also when sent
    concurrently: a unique index decides) gives created=False and the sender is
    recorded as a ReportSupporter. The stored files are removed again if storing
    fails half-way or if the caller's transaction rolls back later. `language` (default: the
    request's, set by LocaleMiddleware) is the one the reporter's e-mails are written in.
    """
    errors: dict[str, list[str]] = {}
    clean_text, limit = validation.clean_text, _field_limit
    description = _checked(errors, clean_text, description, field="description", label=_("Description"),
                           max_length=limit("description"))
    address = _checked(errors, clean_text, address, field="address", label=_("Address"), max_length=limit("address"))
    reporter_name = _checked(errors, clean_text, reporter_name, field="reporter_name", label=_("Name"),
                             max_length=limit("reporter_name"))
    reporter_email = _checked(errors, validation.clean_email, reporter_email, field="reporter_email",
                              max_length=limit("reporter_email"))
    media_url = _checked(errors, validation.clean_url, media_url, field="media_url", max_length=limit("media_url"))
    lat = _checked(errors, parse_coordinate, latitude, name="latitude", limit=90)
    lon = _checked(errors, parse_coordinate, longitude, name="longitude", limit=180)
    citizen_category = _checked(errors, _active_category, category)
    if errors:
        raise ValidationError(errors)
    if (lat is None) != (lon is None):
        raise ValidationError({"location": _("Give both latitude and longitude, or neither.")}, code="invalid")
    try:
        info = photos.read_photo(photo)
    except ValidationError as exc:
        raise ValidationError({"photo": exc}) from None

    existing = _existing_report(info.sha256)
    if existing is not None:
        return _also_reported(report=existing, channel=channel, reporter_name=reporter_name,
                              reporter_email=reporter_email, actor_label=actor_label)

    exif_point = Point(info.gps[1], info.gps[0], srid=4326) if info.gps else None
    if lat is not None:
        point = Point(lon, lat, srid=4326)
        source = location_source
    elif exif_point is not None:
        point, source = exif_point, Report.LocationSource.EXIF
    else:
        raise ValidationError(
            {"location": _("Location required: allow location access, drop a pin on the map, "
                           "or send a photo that has GPS data.")},
            code="location_required",
        )
    boundary = _council_boundary()
    if boundary is not None and not boundary.covers(point):
        raise ValidationError(
            {"location": _("This location is outside the area %(council)s looks after.") % {
                "council": settings.COUNCIL_NAME}},
            code="outside_boundary",
        )

    if not address and source != Report.LocationSource.SEARCH:  # a searched place names itself
        street = gazetteer.nearest_street(point=point)
        address = gazetteer.place_label(street) if street else ""

    report = Report(
        channel=channel,
        status=Report.Status.PENDING,
        location=point,
        location_source=source,
        exif_location=exif_point,
        address=address,
        description=description,
        citizen_category=citizen_category,
        reporter_name=reporter_name,
        reporter_email=reporter_email,
        photo_format=info.format,
        photo_width=info.width,
        photo_height=info.height,
        photo_sha256=info.sha256,
        photo_phash=photos.difference_hash(info.image),
        media_url=media_url,
        language=language if language is not None else (translation.get_language() or ""),
    )
    if exif_point is not None and source != Report.LocationSource.EXIF:
        report.exif_distance_m = geodesic_distance_m(point, exif_point)
    report_set_due_dates(report)
    # The unique photo index is checked by the INSERT itself (validating it here would race).
    report.full_clean(exclude=["photo_original", "photo_public", "photo_thumbnail"], validate_constraints=False)
    public_bytes, thumb_bytes = photos.public_derivative(info), photos.thumbnail(info)
    ref = report.service_request_id
    saved: list[tuple] = []
    try:
        with transaction.atomic():
            for field, name, data in ((report.photo_original, f"originals/{ref}.{info.extension}", info.data),
                                      (report.photo_public, f"photos/{ref}.jpg", public_bytes),
                                      (report.photo_thumbnail, f"thumbs/{ref}.jpg", thumb_bytes)):
                field.save(name, ContentFile(data), save=False)
                saved.append((field.storage, field.name))
            report.save()
            record_event(report=report, actor_label=actor_label, action=ReportEvent.Action.CREATED,
                         field="status", to_value=report.status)
            transaction.on_commit(_DeleteFilesUnlessCommitted(saved))
            if classify:
                transaction.on_commit(lambda: enqueue_classification(report.pk))
    except BaseException as exc:
        delete_files(saved)
        if isinstance(exc, IntegrityError) and (existing := _existing_report(info.sha256)) is not None:
            # Another upload of the same photo committed first.
            return _also_reported(report=existing, channel=channel, reporter_name=reporter_name,
                                  reporter_email=reporter_email, actor_label=actor_label)
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
    """One audit row; `action` is a ReportEvent.Action. Status changes go through report_transition.

    Every event is announced (`reports.signals.report_event_recorded`) once its transaction
    commits, so notifications, team assignment and the like hang off the audit trail."""
    event = ReportEvent.objects.create(
        report=report, actor=actor, actor_label=actor_label or (actor.get_username() if actor else "system"),
        action=ReportEvent.Action(action), field=field, from_value=str(from_value or ""),
        to_value=str(to_value or ""), note=note, public=public,
    )
    transaction.on_commit(lambda: _announce(event))
    return event


def _announce(event: ReportEvent) -> None:
    """After commit: a failing receiver is logged and never undoes or hides the change."""
    for receiver, result in report_event_recorded.send_robust(sender=ReportEvent, event=event):
        if isinstance(result, Exception):
            logger.error("report %s event %s: receiver %r failed", event.report_id, event.action, receiver,
                         exc_info=result)


# A caller saving one of these changes the report's category, so its due dates move with it.
_CATEGORY_FIELDS = frozenset({"final_category", "predicted_category", "citizen_category"})


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
    to `reopen` out of a closed status, else `status`. The first move out of intake stamps
    `triaged_at`, closing stamps `closed_at` (reopening clears it), and a category among
    `fields` moves the due dates (reports.targets).
    """
    frm = report.status
    try:
        workflow.check_transition(frm, to, by=by, has_category=report.final_category_id is not None)
    except workflow.TransitionRefused as exc:
        raise ValidationError({"status": str(exc)}, code="transition") from None
    update = {*fields, "status", "updated_at"}
    report.status = to
    if frm in workflow.INTAKE and to not in workflow.INTAKE and report.triaged_at is None:
        report.triaged_at = timezone.now()
        update.add("triaged_at")
    if workflow.is_open(frm) != workflow.is_open(to):
        report.closed_at = None if workflow.is_open(to) else timezone.now()
        update.add("closed_at")
    if update & _CATEGORY_FIELDS:
        update.update(report_set_due_dates(report))
    if frm == Report.Status.REJECTED and report.reject_reason:
        report.reject_reason = ""
        update.add("reject_reason")
    if frm == Report.Status.DUPLICATE:
        twin = (Report.objects.filter(photo_sha256=report.photo_sha256, duplicate_of__isnull=True)
                .exclude(pk=report.pk).values_list("service_request_id", flat=True).first())
        if twin:  # one report per photo (report_one_original_per_photo): this one stays merged
            raise ValidationError({"status": f"This report is the same photo as {twin}, so it stays a "
                                             f"duplicate of it; reopen {twin} instead."}, code="same_photo")
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
    confident prediction, routing is redone as reports.routing would have done
    it with this label: an auto-triaged report goes back to needs review, flagged
    `citizen_model_disagree`. Agreement clears that flag but never auto-triages a
    report that is waiting for a person (it may be a spot check or a staff move).
    The version is bumped, so a triager looking at the old state gets a conflict.
    """
    if not category.active:
        raise ValidationError({"category": _("Category %(slug)s is not active.") % {"slug": repr(category.slug)}},
                              code="inactive")
    with transaction.atomic():
        r = Report.objects.select_for_update(of=("self",)).select_related("citizen_category").get(pk=report.pk)
        if not r.is_open or r.final_category_id is not None or r.verified_by_id is not None:
            raise ValidationError(_("Our team has already looked at this report, so its category can no longer "
                                    "be changed here."), code="decided")
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
            r.save(update_fields=[*fields, *report_set_due_dates(r), "version", "updated_at"])
    return r


def _route_with_citizen_label(report: Report, citizen_slug: str):
    thresholds = dict(Category.objects.filter(active=True).values_list("slug", "auto_triage_threshold"))
    return route(top_k=[(slug, float(p)) for slug, p in report.predicted_top_k], thresholds=thresholds,
                 default_threshold=settings.DEFAULT_AUTO_TRIAGE_THRESHOLD, citizen_slug=citizen_slug,
                 unknown=report.predicted_unknown)
