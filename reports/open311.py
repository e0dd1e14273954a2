"""Open311 GeoReport v2 (http://wiki.open311.org/GeoReport_v2), JSON and XML.

Plain Django views: every resource is built once as Python data (dicts and
lists) and rendered either as JSON or as the spec's XML, where a list's items
are named by `LIST_ITEMS` (<services><service>, <errors><error>, ...).
Every error, in either format, is the spec's list of {code, description}.

Extensions to the spec: `page`/`page_size` and `lat`/`long`/`radius` (metres) on GET
requests, and a `media`
file upload on POST (required here: reports are photo-first; `media_url` is
stored but never fetched).
"""
from __future__ import annotations

import functools
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.gis.measure import D
from django.core.exceptions import ValidationError
from django.db.models import Prefetch
from django.http import HttpResponse, JsonResponse
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy
from django.views.decorators.csrf import csrf_exempt
from rest_framework.exceptions import Throttled

from . import selectors, services, throttle
from .apikeys import api_key_check
from .models import Category, Report, ReportEvent
from .params import parse_datetime_param, parse_near, parse_positive_int
from .text import printable

SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
CHANGESET = "2026-11-28T00:00:00+00:00"  # when this API last changed shape (discovery's changeset)
FORMATS = {"json": "application/json; charset=utf-8", "xml": "text/xml; charset=utf-8"}
LIST_ITEMS = {"services": "service", "service_requests": "request", "errors": "error",
              "endpoints": "endpoint", "formats": "format", "attributes": "attribute"}
MAX_WINDOW = timedelta(days=90)  # the spec's default and maximum start_date..end_date span
DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, MAX_PAGE = 100, 200, 100_000
SERVICE_NOTICE = gettext_lazy("Thank you. Your report will be checked and passed to the right team.")


class Open311Error(Exception):
    def __init__(self, status: int, description: str):
        super().__init__(description)
        self.status, self.description = status, description


# Rendering ------------------------------------------------------------------

def _element(tag: str, value) -> ET.Element:
    el = ET.Element(tag)
    if isinstance(value, dict):
        el.extend(_element(k, v) for k, v in value.items())
    elif isinstance(value, list):
        el.extend(_element(LIST_ITEMS[tag], v) for v in value)
    elif isinstance(value, bool):
        el.text = "true" if value else "false"
    elif value is not None:
        el.text = str(value)
    return el


def render(fmt: str, root: str, data, status: int = 200) -> HttpResponse:
    """`data` as JSON, or as XML under <root> (e.g. root="services" gives <services><service>...)."""
    data = printable(data)  # the same text in both formats, and always well-formed XML
    if fmt == "json":
        return JsonResponse(data, status=status, safe=False, content_type=FORMATS["json"])
    body = '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(_element(root, data), encoding="unicode")
    return HttpResponse(body.encode("utf-8"), status=status, content_type=FORMATS["xml"])


def render_errors(fmt: str, status: int, descriptions: list[str]) -> HttpResponse:
    errors = [{"code": status, "description": d} for d in descriptions]
    return render(fmt if fmt in FORMATS else "json", "errors", errors, status)


def open311_view(*methods: str):
    """Check the format suffix and method, and turn every failure into the spec's error list."""
    def decorate(view):
        @functools.wraps(view)
        def wrapper(request, fmt: str = "json", **kwargs):
            if fmt not in FORMATS:
                return render_errors("json", 404, [f"Unknown format {fmt!r}; use .json or .xml."])
            if request.method not in methods:
                response = render_errors(fmt, 405, [f"Method {request.method} is not allowed here."])
                response["Allow"] = ", ".join(methods)
                return response
            try:
                return view(request, fmt, **kwargs)
            except Open311Error as exc:
                return render_errors(fmt, exc.status, [exc.description])
            except ValidationError as exc:
                return render_errors(fmt, 400, _messages(exc, request))
            except Throttled as exc:
                response = render_errors(fmt, 429, [str(exc.detail)])
                response["Retry-After"] = str(exc.wait)
                return response
        return wrapper
    return decorate


def _messages(exc: ValidationError, request) -> list[str]:
    """The service's messages, with its field names turned into Open311 parameter names where it matters."""
    if not hasattr(exc, "error_dict"):
        return exc.messages
    out = []
    for field, messages in exc.message_dict.items():
        if field == "category":
            code = request.POST.get("service_code", "")
            messages = [f"service_code {code!r} is not an active service; services.json lists them."]
        out.extend(messages)
    return out


# Representation -------------------------------------------------------------

def _when(dt: datetime | None) -> str | None:
    return timezone.localtime(dt).isoformat(timespec="seconds") if dt else None


def _status_notes(report: Report) -> str | None:
    notes = getattr(report, "public_notes_newest_first", None)
    if notes is None:
        notes = list(report.events.filter(action="note", public=True).order_by("-created_at", "-id")[:1])
    parts = []
    if report.status == Report.Status.DUPLICATE and report.duplicate_of:
        parts.append(f"Duplicate of service request {report.duplicate_of.service_request_id}.")
    if notes:
        parts.append(notes[0].note)
    return " ".join(parts) or None


def request_data(report: Report, request) -> dict:
    """One service request as the public may see it: never the reporter's contact details
    or the original photo."""
    category = report.public_category
    return {
        "service_request_id": report.service_request_id,
        "status": "open" if report.is_open else "closed",
        "status_notes": _status_notes(report),
        "service_name": category.display_name if category else None,  # ?locale=cy or Accept-Language
        "service_code": category.slug if category else None,
        "description": report.description or None,
        "agency_responsible": report.team.name if report.team_id else None,  # routing rules (reports.assignment)
        "service_notice": None,
        "requested_datetime": _when(report.created_at),
        "updated_datetime": _when(report.updated_at),
        "expected_datetime": _when(report.fix_due_at) if report.is_open else None,  # the fix target
        "address": report.address or None,
        "address_id": None,
        "zipcode": None,
        "lat": report.location.y,  # Point(longitude, latitude)
        "long": report.location.x,
        "media_url": request.build_absolute_uri(report.photo_public.url) if report.photo_public else None,
    }


def _with_public_notes(queryset):
    notes = ReportEvent.objects.filter(action="note", public=True).order_by("-created_at", "-id")
    return (queryset.select_related("team")
            .prefetch_related(Prefetch("events", queryset=notes, to_attr="public_notes_newest_first")))


# Query parameters -----------------------------------------------------------

def _date_window(query) -> tuple[datetime, datetime]:
    start = parse_datetime_param(query.get("start_date"), name="start_date")
    end = parse_datetime_param(query.get("end_date"), name="end_date")
    if start is None and end is None:
        end = timezone.now()
    if start is None:
        start = end - MAX_WINDOW
    if end is None:
        end = start + MAX_WINDOW
    if end < start:
        raise Open311Error(400, "end_date must not be before start_date.")
    if end - start > MAX_WINDOW:
        raise Open311Error(400, "start_date and end_date may not span more than 90 days.")
    return start, end


def _csv(query, name: str) -> list[str]:
    return [part.strip() for part in query.get(name, "").split(",") if part.strip()]


def _search(params):
    """The requests GET filters. (Query-building that would sit in selectors.py if this were shared.)"""
    queryset = selectors.public_reports().order_by("-created_at", "-id")
    ids = [ref.upper() for ref in _csv(params, "service_request_id")]
    if ids:  # the spec: service_request_id overrides all other arguments
        return queryset.filter(service_request_id__in=ids)
    start, end = _date_window(params)
    queryset = queryset.filter(created_at__gte=start, created_at__lte=end)
    if near := parse_near(params.get("lat"), params.get("long"), params.get("radius")):
        point, metres = near
        queryset = queryset.filter(location__dwithin=(point, D(m=metres)))
    if codes := _csv(params, "service_code"):
        queryset = queryset.public_category_in(Category.objects.filter(slug__in=codes))  # the code each shows
    statuses = set(_csv(params, "status"))
    if statuses - {"open", "closed"}:
        raise Open311Error(400, "status must be open, closed, or both comma-separated.")
    if statuses == {"open"}:
        queryset = queryset.exclude(status__in=Report.CLOSED_STATUSES)
    elif statuses == {"closed"}:
        queryset = queryset.filter(status__in=Report.CLOSED_STATUSES)
    return queryset


# Views ----------------------------------------------------------------------

@open311_view("GET")
def discovery(request, fmt):
    endpoint = {
        "specification": SPECIFICATION,
        "url": request.build_absolute_uri("/open311/v2/"),
        "changeset": CHANGESET,
        "type": "production",
        "formats": ["text/xml", "application/json"],
    }
    return render(fmt, "discovery", {
        "changeset": CHANGESET,
        "contact": settings.COUNCIL_NAME,
        "key_service": f"Ask {settings.COUNCIL_NAME} for an api_key (created with manage.py create_api_key).",
        "endpoints": [endpoint],
    })


@open311_view("GET")
def service_list(request, fmt):
    services_ = [
        {"service_code": c.slug, "service_name": c.display_name, "description": c.display_description, "metadata": False,
         "type": "realtime", "keywords": ",".join(c.keywords), "group": c.group}
        for c in Category.objects.filter(active=True)
    ]
    return render(fmt, "services", services_)


@open311_view("GET")
def service_definition(request, fmt, code):
    if not Category.objects.filter(slug=code, active=True).exists():
        raise Open311Error(404, f"No service with service_code {code!r}.")
    return render(fmt, "service_definition", {"service_code": code, "attributes": []})


@csrf_exempt  # clients authenticate with api_key, not a session
@open311_view("GET", "POST")
def service_requests(request, fmt):
    if request.method == "POST":
        return _create(request, fmt)
    page_size = parse_positive_int(request.GET.get("page_size"), name="page_size", default=DEFAULT_PAGE_SIZE,
                                   maximum=MAX_PAGE_SIZE)
    page = parse_positive_int(request.GET.get("page"), name="page", default=1, maximum=MAX_PAGE)
    offset = (page - 1) * page_size
    reports = _with_public_notes(_search(request.GET))[offset:offset + page_size]
    return render(fmt, "service_requests", [request_data(r, request) for r in reports])


@open311_view("GET")
def service_request(request, fmt, reference):
    report = _with_public_notes(selectors.public_reports()).filter(service_request_id=reference.upper()).first()
    if report is None:
        raise Open311Error(404, f"No service request with id {reference!r}.")
    return render(fmt, "service_requests", [request_data(report, request)])


def _create(request, fmt):
    data = request.POST
    key = api_key_check(data.get("api_key"))
    throttle.submission_check(request, api_key=key)  # without a valid key: an attempt from its IP
    if key is None:
        raise Open311Error(403, "Invalid or missing api_key.")
    if not data.get("service_code"):
        raise Open311Error(400, "service_code was not provided.")
    media = request.FILES.get("media")
    if media is None:
        raise Open311Error(400, "A photo is required: send it as a multipart file field named 'media' "
                                "(media_url alone is not enough; this service never fetches URLs).")
    # No geocoder: with only an address_string, the location comes from the photo's EXIF GPS.
    intake = services.report_create(
        photo=media.read(),
        latitude=data.get("lat"),
        longitude=data.get("long"),
        category=data["service_code"],
        description=data.get("description", ""),
        address=data.get("address_string", ""),
        reporter_name=f"{data.get('first_name', '')} {data.get('last_name', '')}".strip(),
        reporter_email=data.get("email", ""),
        channel=Report.Channel.OPEN311,
        media_url=data.get("media_url", ""),
        actor_label=f"api:{key.name}",
    )
    ref = intake.report.service_request_id
    notice = str(SERVICE_NOTICE) if intake.created else gettext(
        "This photo was already reported as %(reference)s; we have noted that you reported it too.") % {"reference": ref}
    body = [{"service_request_id": ref, "service_notice": notice, "account_id": None}]
    return render(fmt, "service_requests", body, status=201 if intake.created else 200)


def not_found(request, **kwargs):
    return render_errors("json", 404, [f"No Open311 resource at {request.path}."])
