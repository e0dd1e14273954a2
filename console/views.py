"""Staff console views: thin. Validate with a form, call one service or selector, render.

Permissions: every view needs login and `console.view_console`; each action's
own permission is checked by its service (PermissionDenied -> 403).
"""
from __future__ import annotations

import csv
import hashlib
import json
from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q
from django.http import FileResponse, Http404, JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from reports import clusters
from reports.categories import NO_ISSUE
from reports.models import Category, Report, Team
from reports.selectors import label_names
from reports.storage import staff_download_url

from . import panel, selectors, services
from .forms import (AssignForm, BulkForm, DuplicateForm, NoteForm, QueueFilterForm, StatusForm, ThresholdForm,
                    VerifyForm)
from .services import VersionConflict

CONTENT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "HEIF": "image/heif"}


def staff_view(view):
    """Login required (anonymous -> login page); logged-in users without console access get 403."""
    @login_required
    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if not request.user.has_perm("console.view_console"):
            raise PermissionDenied("This account has no access to the staff console.")
        return view(request, *args, **kwargs)
    return wrapped


def _filters(request):
    form = QueueFilterForm(request.GET, user=request.user)
    form.is_valid()  # invalid fields fall back to defaults; errors are shown next to them
    return form, form.to_filters(request.user)


def _filter_qs(request) -> str:
    """The queue's query string without the page cursor, carried through report views."""
    params = request.GET.copy()
    params.pop("cursor", None)
    return params.urlencode()


def _report(reference: str) -> Report:
    report = selectors.console_report(reference)
    if report is None:
        raise Http404("No report with that reference")
    return report


# Queue ------------------------------------------------------------------------------------------

@require_GET
@staff_view
def queue(request):
    """Rows only; the counts arrive from `counts` by htmx, so paging never waits for them."""
    form, filters = _filters(request)
    page = selectors.report_queue(filters=filters, cursor=request.GET.get("cursor", ""))
    return render(request, "console/queue.html", {
        "form": form, "filters": filters, "page": page, "qs": _filter_qs(request),
        "status_tabs": _status_tabs(request, filters), "categories": Category.objects.filter(active=True),
        "statuses": Report.Status.choices, "reject_reasons": services.REJECT_REASONS.items(), "nav": "queue",
    })


def _status_tabs(request, filters, counts=None) -> list[dict]:
    tabs = []
    for value, label in [("", "Any status"), *Report.Status.choices]:
        params = request.GET.copy()
        params.pop("cursor", None)
        params["status"] = value
        count = None
        if counts is not None:
            count = sum(counts.by_status.values()) if not value else counts.by_status.get(value, 0)
        tabs.append({"value": value, "label": label, "count": count, "qs": params.urlencode(),
                     "current": filters.status == value})
    return tabs


@require_GET
@staff_view
def counts(request):
    """Counts per status tab and per flag for the current filters (htmx out-of-band fragment)."""
    _, filters = _filters(request)
    result = selectors.queue_counts(filters)
    return render(request, "console/_counts.html", {"counts": result,
                                                    "status_tabs": _status_tabs(request, filters, result)})


@require_POST
@staff_view
def bulk(request):
    form = BulkForm(request.POST)
    if not form.is_valid():
        for error in form.errors.values():
            messages.error(request, " ".join(error))
        return redirect(f"{reverse('console:queue')}?{_filter_qs(request)}")
    d = form.cleaned_data
    try:  # refused as a whole (a bad reason, a report this user may not move): nothing changed
        if d["action"] == "verify":
            result = services.report_bulk_verify(selection=d["selected"], staff=request.user, category=d["category"])
            what = f"verified as {d['category'].name}"
        else:
            result = services.report_bulk_set_status(selection=d["selected"], staff=request.user,
                                                     status=d["status"], reason=d["reason"])
            what = f"set to {Report.Status(d['status']).label}"
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect(f"{reverse('console:queue')}?{_filter_qs(request)}")
    if result.done:
        messages.success(request, f"{len(result.done)} report(s) {what}.")
    if result.conflicts:
        messages.warning(request, f"Changed by someone else meanwhile, not touched: {', '.join(result.conflicts)}.")
    for ref, reason in result.errors.items():
        messages.error(request, f"{ref}: {reason}")
    return redirect(f"{reverse('console:queue')}?{_filter_qs(request)}")


# Report view and actions ------------------------------------------------------------------------

def _detail_context(request, report: Report) -> dict:
    form, filters = _filters(request)
    categories = list(Category.objects.filter(active=True).order_by("order", "name"))
    names = label_names()
    top_k = [(slug, names.get(slug, slug), p, round(p * 100)) for slug, p in (report.predicted_top_k or [])]
    probabilities = {slug: p for slug, p in (report.predicted_top_k or [])}
    user = request.user
    allowed = services.allowed_statuses(report, user)
    # Enter accepts only a real category; never no_issue, never a photo unlike the training classes.
    suggestion = report.predicted_category
    if suggestion is not None and (report.predicted_unknown or not suggestion.active):
        suggestion = None
    location = {"lat": report.location.y, "lon": report.location.x}
    exif = {"lat": report.exif_location.y, "lon": report.exif_location.x} if report.exif_location else None
    return {
        "report": report,
        "qs": _filter_qs(request),
        "filters": filters,
        "events": selectors.report_events(report),
        "top_k": top_k,
        "keyed_categories": [(str(i + 1), c, probabilities.get(c.slug)) for i, c in enumerate(categories[:9])],
        "other_categories": categories[9:],
        "all_categories": categories,
        "suggestion": suggestion,
        "enter_hint": _enter_hint(report, suggestion),
        # Rejecting is X with a reason, never a plain status change.
        "statuses": [(s, Report.Status(s).label) for s in allowed if s != Report.Status.REJECTED],
        "can_reject": Report.Status.REJECTED in allowed,
        "reject_reasons": [(str(i + 1), key, r.label) for i, (key, r) in enumerate(services.REJECT_REASONS.items())],
        "nav": "queue",
        "next": selectors.queue_neighbour(report=report, filters=filters),
        "previous": selectors.queue_neighbour(report=report, filters=filters, previous=True),
        "assignment": getattr(report, "assignment", None),
        "note_form": NoteForm(),
        "map_data": {"location": location, "exif": exif, "distance_m": report.exif_distance_m},
        "can": {p: user.has_perm(f"console.{p}") for p in (
            "verify_report", "set_status", "add_note", "assign_report", "reopen_report", "merge_duplicates",
            "view_contact")},
        "staff_users": _staff_users() if user.has_perm("console.assign_report") else [],
        "teams": Team.objects.filter(Q(active=True) | Q(pk=report.team_id)).order_by("name")
                 if user.has_perm("console.assign_report") else [],
    }


def _enter_hint(report: Report, suggestion: Category | None) -> str:
    """Shown when Enter is pressed with nothing to accept: why, and which keys apply."""
    if suggestion is not None:
        return ""
    if report.predicted_unknown:
        why = "The photo is unlike anything the model was trained on, so there is nothing to accept."
    elif report.predicted_label == NO_ISSUE:
        why = "The model says “not a council issue”; Enter never rejects."
    else:
        why = "The model has no category to suggest."
    return f"{why} Press 1–9 (or /) to pick a category, or X to reject with a reason."


def _staff_users():
    from django.contrib.auth import get_user_model

    perm = Q(groups__permissions__codename="view_console") | Q(user_permissions__codename="view_console")
    return get_user_model().objects.filter(Q(is_superuser=True) | perm, is_active=True).distinct().order_by("username")


def _render_detail(request, report: Report, *, status: int = 200, error: str = "", conflict: Report | None = None):
    context = _detail_context(request, report)
    context.update(error=error, conflict=conflict)
    return render(request, "console/report.html", context, status=status)


@require_GET
@staff_view
def report_detail(request, reference: str):
    return _render_detail(request, _report(reference))


def _act(request, reference: str, form_class, action, *, go_next: bool = False):
    """Shared POST handling: validate, run the service, then PRG.
    409 with the current state on a version conflict; 400 with the reason on a refused change."""
    report = _report(reference)
    form = form_class(request.POST)
    if not form.is_valid():
        message = "; ".join(f"{k}: {' '.join(v)}" if k != "__all__" else " ".join(v) for k, v in form.errors.items())
        return _render_detail(request, report, status=400, error=message)
    try:
        done = action(report, form.cleaned_data)
    except VersionConflict as exc:
        return _render_detail(request, _report(reference), status=409, conflict=exc.current)
    except ValidationError as exc:
        return _render_detail(request, _report(reference), status=400, error=" ".join(exc.messages))
    messages.success(request, f"{report.service_request_id}: {done}")
    qs = _filter_qs(request)
    if go_next:
        _, filters = _filters(request)
        following = selectors.queue_neighbour(report=report, filters=filters)
        if following is not None:
            return redirect(f"{reverse('console:report', args=[following.service_request_id])}?{qs}")
        messages.info(request, "That was the last report in this queue.")
        return redirect(f"{reverse('console:queue')}?{qs}")
    return redirect(f"{reverse('console:report', args=[report.service_request_id])}?{qs}")


@require_POST
@staff_view
def verify(request, reference: str):
    def action(report, d):
        services.report_verify(report=report, staff=request.user, category=d["category"],
                               expected_version=d["version"])
        return f"labelled {d['category'].name}."
    return _act(request, reference, VerifyForm, action, go_next=True)


@require_POST
@staff_view
def set_status(request, reference: str):
    def action(report, d):
        services.report_set_status(report=report, staff=request.user, status=d["status"],
                                   expected_version=d["version"], note=d["note"], reason=d["reason"])
        return f"status {Report.Status(d['status']).label}."
    # Rejecting from the review queue is a triage decision: move on like verify does.
    go_next = request.POST.get("status") == Report.Status.REJECTED
    return _act(request, reference, StatusForm, action, go_next=go_next)


@require_POST
@staff_view
def assign(request, reference: str):
    def action(report, d):
        services.report_assign(report=report, staff=request.user, assignee=d["assignee"], team=d["team"],
                               expected_version=d["version"])
        return "assignment saved."
    return _act(request, reference, AssignForm, action)


@require_POST
@staff_view
def mark_duplicate(request, reference: str):
    def action(report, d):
        original = selectors.console_report(d["original"])
        if original is None:
            raise ValidationError(f"No report {d['original']!r}.")
        services.report_mark_duplicate(report=report, original=original, staff=request.user,
                                       expected_version=d["version"])
        return f"marked as a duplicate of {original.service_request_id}."
    return _act(request, reference, DuplicateForm, action)


@require_POST
@staff_view
def add_note(request, reference: str):
    report = _report(reference)
    form = NoteForm(request.POST)
    if not form.is_valid():
        return _render_detail(request, report, status=400, error=" ".join(form.errors.get("note", ["Invalid note."])))
    try:
        services.report_add_note(report=report, staff=request.user, text=form.cleaned_data["note"],
                                 public=form.cleaned_data["public"])
    except ValidationError as exc:
        return _render_detail(request, report, status=400, error=" ".join(exc.messages))
    if request.headers.get("HX-Request"):
        return render(request, "console/_events.html", {"events": selectors.report_events(report)})
    return redirect(f"{reverse('console:report', args=[report.service_request_id])}?{_filter_qs(request)}")


@require_GET
@staff_view
def duplicates(request, reference: str):
    report = _report(reference)
    return render(request, "console/duplicates.html", {
        "report": report, "candidates": selectors.duplicate_candidates(report), "qs": _filter_qs(request),
        "radius": selectors.duplicate_radius(), "can_merge": request.user.has_perm("console.merge_duplicates"),
        "nav": "queue",
    })


# Photos: both served only to staff. Originals keep their GPS and camera metadata.

def _file_response(field, content_type: str, filename: str):
    try:
        handle = field.storage.open(field.name, "rb")
    except FileNotFoundError:
        raise Http404("Photo file missing") from None
    response = FileResponse(handle, content_type=content_type, filename=filename)
    response["Cache-Control"] = "private, max-age=3600"
    response["X-Content-Type-Options"] = "nosniff"
    return response


def _original_response(field, photo_format: str):
    """An original photo for staff: a redirect to a short-lived signed URL when it is in object
    storage (reports.s3; the URL is never cached or shown to anyone else), else streamed."""
    content_type = CONTENT_TYPES.get(photo_format, "application/octet-stream")
    filename = field.name.rsplit("/", 1)[-1]
    signed = staff_download_url(field, filename=filename, content_type=content_type)
    response = redirect(signed) if signed else _file_response(field, content_type, filename)
    response["Cache-Control"] = "private, no-store"
    return response


@require_GET
@staff_view
def photo_original(request, reference: str):
    report = _report(reference)
    return _original_response(report.photo_original, report.photo_format)


@require_GET
@staff_view
def photo_public(request, reference: str):
    report = _report(reference)
    field = report.photo_thumbnail if request.GET.get("size") == "thumb" else report.photo_public
    response = _file_response(field, "image/jpeg", f"{report.service_request_id}.jpg")
    response["Content-Disposition"] = "inline"
    return response


# Map and exports ---------------------------------------------------------------------------------

@require_GET
@staff_view
def map_view(request):
    form, _ = _filters(request)
    colours = selectors.category_colours()
    legend = [(c.name, c.slug, colours.get(c.slug)) for c in Category.objects.all()]
    return render(request, "console/map.html", {"form": form, "legend": legend, "qs": _filter_qs(request),
                                                "nav": "map"})


def _strict_filters(request):
    """(filters, None), or (None, a 400 JSON naming the bad parameter): unlike the queue page, the map
    and the exports never fall back to a default, which could silently widen what they return."""
    form, filters = _filters(request)
    if not form.errors:
        return filters, None
    errors = {name: list(messages_) for name, messages_ in form.errors.items()}
    name, first = next(iter(errors.items()))
    detail = first[0] if first[0].startswith(name) else f"{name}: {first[0]}"
    return None, JsonResponse({"detail": detail, "errors": errors}, status=400)


@require_GET
@staff_view
def map_geojson(request):
    """The reports in the map's box, or grid clusters when there are more than
    MAP_CLUSTER_THRESHOLD (reports.clusters; `zoom` sizes them)."""
    filters, refused = _strict_filters(request)
    if refused:
        return refused
    try:
        zoom = clusters.parse_zoom(request.GET.get("zoom"))
    except ValidationError as exc:
        return JsonResponse({"detail": exc.message_dict["zoom"][0], "errors": exc.message_dict}, status=400)
    matching = selectors.filtered_reports(filters)
    if clusters.too_many(matching):
        # The aggregate over every report in a wide box is cached like the public map's (the
        # key is the resolved filters, so "my team" differs per person); markers stay live.
        key = "console-clusters:" + hashlib.sha256(repr((filters, zoom)).encode()).hexdigest()
        body = cache.get(key) if settings.MAP_CACHE_SECONDS else None
        if body is None:
            body = clusters.cluster_collection(matching, bbox=filters.bbox, zoom=zoom)
            if settings.MAP_CACHE_SECONDS:
                cache.set(key, body, settings.MAP_CACHE_SECONDS)
        return JsonResponse(body)
    features = selectors.map_features(filters, limit=clusters.threshold())
    return JsonResponse({**features, "clustered": False, "count": len(features["features"])})


class _Echo:
    def write(self, value):
        return value


EXPORT_FIELDS = ["reference", "status", "created_at", "latitude", "longitude", "citizen_category",
                 "predicted_label", "predicted_probability", "final_category", "verified_by", "verified_at",
                 "duplicate_of", "address", "description"]
CONTACT_FIELDS = ["reporter_name", "reporter_email"]


def _export_rows(request, filters):
    contact = request.user.has_perm("console.view_contact")
    qs = (selectors.filtered_reports(filters).order_by("created_at", "pk")
          .select_related("citizen_category", "final_category", "verified_by", "duplicate_of"))
    for r in qs.iterator(chunk_size=2000):
        row = {
            "reference": r.service_request_id, "status": r.status, "created_at": r.created_at.isoformat(),
            "latitude": r.location.y, "longitude": r.location.x,
            "citizen_category": r.citizen_category.slug if r.citizen_category else "",
            "predicted_label": r.predicted_label, "predicted_probability": r.predicted_probability,
            "final_category": r.final_category.slug if r.final_category else (
                NO_ISSUE if r.status == Report.Status.REJECTED else ""),
            "verified_by": r.verified_by.get_username() if r.verified_by else "",
            "verified_at": r.verified_at.isoformat() if r.verified_at else "",
            "duplicate_of": r.duplicate_of.service_request_id if r.duplicate_of else "",
            "address": r.address, "description": r.description,
        }
        if contact:
            row.update(reporter_name=r.reporter_name, reporter_email=r.reporter_email)
        yield row


@require_GET
@staff_view
def export_csv(request):
    filters, refused = _strict_filters(request)
    if refused:
        return refused
    fields = EXPORT_FIELDS + (CONTACT_FIELDS if request.user.has_perm("console.view_contact") else [])
    writer = csv.DictWriter(_Echo(), fieldnames=fields)

    def lines():
        yield writer.writeheader()
        for row in _export_rows(request, filters):
            yield writer.writerow(row)
    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="reports.csv"'
    return response


@require_GET
@staff_view
def export_geojson(request):
    filters, refused = _strict_filters(request)
    if refused:
        return refused

    def chunks():
        yield '{"type": "FeatureCollection", "features": ['
        for i, row in enumerate(_export_rows(request, filters)):
            feature = {"type": "Feature", "geometry": {"type": "Point",
                                                       "coordinates": [row.pop("longitude"), row.pop("latitude")]},
                       "properties": row}
            yield ("," if i else "") + json.dumps(feature)
        yield "]}"
    response = StreamingHttpResponse(chunks(), content_type="application/geo+json")
    response["Content-Disposition"] = 'attachment; filename="reports.geojson"'
    return response


# Model panel ---------------------------------------------------------------------------------------

@require_GET
@staff_view
def model_panel(request):
    return render(request, "console/model.html", {**panel.model_panel_context(request.user), "nav": "model"})


def _panel_action(request, *, perm: str, act):
    """The model panel's POST actions: the permission first (403), then `act()`, which does the
    work and returns what to tell the user: a redirect to the panel, or ValidationError, a 400
    with the panel and the reason (nothing changed)."""
    services.require(request.user, perm)
    try:
        messages.success(request, act())
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return render(request, "console/model.html", {**panel.model_panel_context(request.user), "nav": "model"},
                      status=400)
    return redirect("console:model")


@require_POST
@staff_view
def set_threshold(request):
    def act() -> str:
        form = ThresholdForm(request.POST)
        if not form.is_valid():
            if "reason" in form.errors and not {"category", "threshold"} & set(form.errors):
                raise ValidationError("Say why you override the threshold (up to 500 characters); "
                                      "it is kept in the audit trail.")
            raise ValidationError("Thresholds are probabilities between 0 and 1, for a known category.")
        d = form.cleaned_data
        category = services.category_set_threshold(category=d["category"], staff=request.user,
                                                   threshold=d["threshold"], reason=d["reason"])
        return f"Auto-triage threshold for {category.name} is now {category.auto_triage_threshold:.2f}."
    return _panel_action(request, perm="console.edit_thresholds", act=act)


@require_POST
@staff_view
def retrain(request):
    def act() -> str:
        run = services.model_retrain(staff=request.user)
        return (f"Retraining queued (run {run.pk}: {run.reason}). It runs in the background; "
                "the retrain runs below show its progress.")
    return _panel_action(request, perm="console.retrain_model", act=act)


@require_POST
@staff_view
def rollback(request):
    def act() -> str:
        return f"Rolled back: {services.model_rollback(staff=request.user).version} is active again."
    return _panel_action(request, perm="console.rollback_model", act=act)
