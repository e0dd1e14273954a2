"""Citizen pages and the health check."""
from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import connection
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET

from . import selectors, services
from .api import RATE_LIMITED_MESSAGE, submission_rate_limited
from .forms import ReportForm
from .models import Report


def report_new(request):
    form = ReportForm(request.POST or None, request.FILES or None)
    status = 200
    if request.method == "POST":
        if submission_rate_limited(request):
            form.add_error(None, RATE_LIMITED_MESSAGE)
            status = 429
        elif form.is_valid():
            d = form.cleaned_data
            try:
                intake = services.report_create(
                    photo=d["photo"].read(), latitude=d["latitude"], longitude=d["longitude"],
                    location_source=d["location_source"] or Report.LocationSource.CLIENT,
                    category=d["category"].slug if d["category"] else None,
                    description=d["description"], reporter_email=d["email"],
                )
            except ValidationError as exc:
                for field, messages in exc.message_dict.items():
                    # "location" and the hidden coordinate fields have no visible place: shown at the top.
                    visible = field in form.fields and not form.fields[field].widget.is_hidden
                    for message in messages:
                        form.add_error(field if visible else None, message)
            else:
                return redirect("report-thanks", reference=intake.report.service_request_id)
        if form.errors and status == 200:
            status = 400
    return render(request, "reports/report_form.html", {"form": form}, status=status)


def _report_or_404(reference: str) -> Report:
    report = selectors.report_by_reference(reference)
    if report is None:
        raise Http404("No report with that reference")
    return report


def report_thanks(request, reference: str):
    report = _report_or_404(reference)
    return render(request, "reports/report_thanks.html", {"report": report})


def report_status(request, reference: str):
    report = _report_or_404(reference)
    return render(request, "reports/report_status.html", {
        "report": report,
        "shown": selectors.public_status(report),
        "notes": selectors.public_notes(selectors.public_status(report)),
    })


def report_suggestion(request, reference: str):
    """Fragment polled by the thank-you page until the model's suggestion is known."""
    report = _report_or_404(reference)
    return render(request, "reports/_suggestion.html", {"report": report})


@require_GET
def healthz(request):
    from classifier.health import classifier_health

    body = {"status": "ok", "database": "ok"}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        body["pending_classification"] = Report.objects.filter(status=Report.Status.PENDING).count()
    except Exception as exc:  # the health check must answer even when the database is down
        body.update(status="error", database=f"error: {exc.__class__.__name__}")
        return JsonResponse(body, status=503)
    body.update(classifier_health())
    if body.get("classifier") == "degraded":
        body["status"] = "degraded"
    return JsonResponse(body)
