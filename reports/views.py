"""Citizen pages and the health check."""
from __future__ import annotations

import math

from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from rest_framework.exceptions import Throttled

from . import selectors, services, throttle, tokens
from .forms import CitizenLabelForm, ReportForm
from .models import Category, Report


FORM_FIELDS = {"reporter_email": "email"}  # report_create's error keys -> the form's field names
ALSO_REPORTED_KEY = "also_reported"  # references this session sent a photo of that someone had already reported


def _also_reported_store(session, *, reference: str) -> None:
    """So the thank-you page says "already reported as <reference>" to this sender only."""
    refs = [r for r in session.get(ALSO_REPORTED_KEY, []) if r != reference]
    session[ALSO_REPORTED_KEY] = [*refs, reference][-tokens.SESSION_LIMIT:]


def _throttled(request, form) -> int | None:
    """Retry-After seconds when this submission is over a limit; the form then says when to try again
    and keeps what was typed."""
    try:
        throttle.submission_check(request)
    except Throttled as exc:
        form.add_error(None, _("You have sent a lot of reports in a short time. Thank you! Please send "
                               "this one again in about %(minutes)d minutes.") % {"minutes": math.ceil(exc.wait / 60)})
        return exc.wait
    return None


def report_new(request):
    form = ReportForm(request.POST or None, request.FILES or None)
    status, retry_after = 200, None
    if request.method == "POST":
        if retry_after := _throttled(request, form):
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
                errors = exc.message_dict if hasattr(exc, "error_dict") else {None: exc.messages}
                for field, messages in errors.items():
                    field = FORM_FIELDS.get(field, field)
                    # "location" and the hidden coordinate fields have no visible place: shown at the top.
                    visible = field in form.fields and not form.fields[field].widget.is_hidden
                    for message in messages:
                        form.add_error(field if visible else None, message)
            else:
                reference = intake.report.service_request_id
                throttle.submission_accepted(request)
                if intake.created:  # an identical photo already reported by someone else is not theirs to label
                    tokens.session_token_store(request.session, reference=reference)
                else:
                    _also_reported_store(request.session, reference=reference)
                return redirect("report-thanks", reference=reference)
        if form.errors and status == 200:
            status = 400
    response = render(request, "reports/report_form.html", {"form": form}, status=status)
    if retry_after:
        response["Retry-After"] = str(retry_after)
    return response


def _report_or_404(reference: str) -> Report:
    report = selectors.report_by_reference(reference)
    if report is None:
        raise Http404("No report with that reference")
    return report


def _suggestion_context(request, report: Report, *, error: str = "") -> dict:
    """What the thank-you page says about the category (reports/_suggestion.html).

    state: "pending" (the model has not spoken yet; the page polls), "ask" (a
    confident guess, shown only to the citizen who sent the report, with one-tap
    answers), "answered" (they have answered), or "none" (nothing said about a category).
    """
    reference = report.service_request_id
    token = tokens.session_token(request.session, reference=reference)
    suggestion = selectors.citizen_suggestion(report)
    if report.status == Report.Status.PENDING and report.classified_at is None:
        state = "pending"
    elif token and selectors.citizen_label_answered(report) and report.citizen_category_id:
        state = "answered"
    elif token and suggestion is not None and selectors.citizen_may_label(report):
        state = "ask"
    else:
        state = "none"
    choices = [c for c in Category.objects.filter(active=True) if c != suggestion]
    return {"report": report, "state": state, "suggestion": suggestion, "choices": choices, "token": token,
            "error": error}


def report_thanks(request, reference: str):
    report = _report_or_404(reference)
    context = _suggestion_context(request, report)
    context["already_reported"] = reference in request.session.get(ALSO_REPORTED_KEY, [])
    return render(request, "reports/report_thanks.html", context)


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
    return render(request, "reports/_suggestion.html", _suggestion_context(request, report))


@require_POST
def report_citizen_label(request, reference: str):
    """The citizen confirms the guess or picks another category (one tap on the thank-you page).

    Only the submitter: the signed token from their session must match this
    report and be under CITIZEN_LABEL_MAX_AGE old (else 403). Unknown or inactive
    category, or a report staff have already decided on -> 400. Without JavaScript
    the answer redirects back to the thank-you page; with it (X-Requested-With)
    the suggestion fragment is returned and swapped in place.
    """
    report = _report_or_404(reference)
    in_place = request.headers.get("X-Requested-With") == "XMLHttpRequest"

    def refused(message: str, status: int):
        context = _suggestion_context(request, report, error=message)
        template = "reports/_suggestion.html" if in_place else "reports/report_thanks.html"
        return render(request, template, context, status=status)

    if not tokens.citizen_token_valid(reference=report.service_request_id, token=request.POST.get("token", "")):
        return refused(_("Only the person who sent this report can answer, and only for %(hours)d hours "
                         "after sending it.") % {"hours": settings.CITIZEN_LABEL_MAX_AGE // 3600}, 403)
    form = CitizenLabelForm(request.POST)
    if not form.is_valid():
        return refused(" ".join(form.errors.get("category", [_("Choose a category.")])), 400)
    try:
        report = services.report_set_citizen_category(report=report, category=form.cleaned_data["category"])
    except ValidationError as exc:
        return refused(" ".join(exc.messages), 400)
    report = _report_or_404(reference)
    if in_place:
        return render(request, "reports/_suggestion.html", _suggestion_context(request, report))
    return redirect(reverse("report-thanks", args=[report.service_request_id]))
