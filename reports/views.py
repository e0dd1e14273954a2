"""Citizen pages and the health check."""
from __future__ import annotations

import math
import re

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from rest_framework.exceptions import Throttled

from . import gazetteer, selectors, services, throttle, tokens, updates, workflow
from .forms import CitizenLabelForm, ReportForm
from .models import Category, Place, Report


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


SEARCH_KEEPS = ("place_query", "category", "description", "email", "latitude", "longitude", "location_source")


def _place_search(request) -> dict:
    """The form page's address search: the matches for what was typed (radio buttons, one maybe
    chosen), and whether "Find" dropped a chosen photo (the search stores nothing, so it is not kept)."""
    params = request.POST if request.method == "POST" else request.GET
    query = " ".join(params.get("place_query", "").split())[:100]
    matches = gazetteer.places_search(query=query)
    chosen = params.get("place", "")
    if chosen.isdigit() and all(str(p.pk) != chosen for p in matches):
        matches = [*Place.objects.filter(pk=chosen), *matches]  # chosen from a suggestion typed differently
    return {"place_searched": "find_place" in params or bool(query and chosen), "place_query": query,
            "place_matches": matches, "place_chosen": chosen,
            "photo_dropped": request.method == "POST" and "find_place" in params and "photo" in request.FILES}


def report_places(request):
    """Suggestions for the form's address search as the citizen types (JSON): the same search the
    form runs without JavaScript."""
    places = gazetteer.places_search(query=request.GET.get("q", ""))
    return JsonResponse({"places": [
        {"id": p.pk, "label": gazetteer.place_label(p), "lat": round(p.point.y, 6), "lon": round(p.point.x, 6)}
        for p in places]})


def report_new(request):
    finding = request.method == "POST" and "find_place" in request.POST
    if finding:  # "Find" without JavaScript posts the form (no token or e-mail in the URL): it comes back
        form = ReportForm(initial={k: request.POST[k] for k in SEARCH_KEEPS if k in request.POST})
    elif request.method == "POST":
        form = ReportForm(request.POST or None, request.FILES or None)
    else:  # a link may still carry a search (?place_query=...&find_place=1); nothing else is read from it
        form = ReportForm(initial={"place_query": request.GET.get("place_query", "")})
    status, retry_after = 200, None
    if request.method == "POST" and not finding:
        if retry_after := _throttled(request, form):
            status = 429
        elif form.is_valid():
            d = form.cleaned_data
            try:
                intake = services.report_create(
                    photo=d["photo"].read(), latitude=d["latitude"], longitude=d["longitude"],
                    location_source=d["location_source"] or Report.LocationSource.CLIENT,
                    category=d["category"].slug if d["category"] else None,
                    description=d["description"], reporter_email=d["email"], address=d.get("address", ""),
                )
            except ValidationError as exc:
                errors = exc.message_dict if hasattr(exc, "error_dict") else {None: exc.messages}
                for field, messages in errors.items():
                    field = FORM_FIELDS.get(field, field)
                    # "location" and the hidden coordinate fields have no visible place: shown at the top.
                    visible = field in form.fields and not form.fields[field].widget.is_hidden
                    for message in messages:
                        form.add_error(field if visible else None, message)
                        if field and not visible:  # the error summary links these to the location fieldset
                            form.location_errors = [*getattr(form, "location_errors", []), str(message)]
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
    response = render(request, "reports/report_form.html", {"form": form, **_place_search(request)}, status=status)
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
    """Public: the status in plain words, what happens next, the fix target while open, and the
    timeline of public updates."""
    report = _report_or_404(reference)
    shown = selectors.public_status(report)
    return render(request, "reports/report_status.html", {
        "report": report,
        "shown": shown,
        "category": shown.final_category or shown.citizen_category,  # never the model's guess as fact
        "timeline": updates.public_timeline(shown),  # a duplicate's story goes on on its original
        "status_words": updates.PUBLIC_WORDS[shown.status],
        "next_step": updates.NEXT_STEPS[shown.status],
        "fix_due_at": getattr(shown, "fix_due_at", None),  # response targets (reports.targets), where set
    })


REFERENCE_PATTERN = re.compile(r"[A-Z0-9]{4,16}")


def report_find(request):
    """The "find my report" box: a reference -> its public page. Blank or not a reference -> 400,
    no such report -> 404, each with the message on the page and the box to try again."""
    typed = request.GET.get("reference", "")
    reference = re.sub(r"[\s-]", "", typed).upper()
    if not reference:
        error, status = _("Enter the reference of your report: it is in your e-mail and on the thank-you page."), 400
    elif not REFERENCE_PATTERN.fullmatch(reference):
        error, status = _("That is not a report reference: it has 10 letters and numbers, like ABCD23EFGH."), 400
    elif selectors.report_by_reference(reference) is None:
        error, status = _("We cannot find a report with the reference %(reference)s. Check it and try again.") % {
            "reference": reference}, 404
    else:
        return redirect("report-status", reference=reference)
    return render(request, "reports/report_find.html", {"error": error, "typed": typed[:40]}, status=status)


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


MANAGE_DONE = {"update": _("Thank you: your update is on the report's public page."),
               "still_not_fixed": _("Thank you: we have reopened the report and our team will look at it again.")}


def report_manage(request, reference: str, token: str):
    """The reporter's private page, opened from the signed link in their e-mails: add an update
    (text, optional photo) or, on a fixed or closed report, say "still not fixed".

    A forged, expired or other report's token gets a 403 page pointing to the public page.
    Posts count toward the same per-address limits as the report form (429 with Retry-After);
    bad input is a 400 that keeps what was typed and stores nothing.
    """
    report = _report_or_404(reference)
    if not tokens.reporter_link_valid(reference=report.service_request_id, token=token):
        return render(request, "reports/report_manage_invalid.html", {"report": report}, status=403)
    errors: dict = {}
    status, retry_after = 200, None
    if request.method == "POST":
        action = request.POST.get("action", "")
        try:
            throttle.submission_check(request)
            if action == "update":
                upload = request.FILES.get("photo")
                updates.report_add_update(report=report, text=request.POST.get("text", ""),
                                          photo=upload.read() if upload else None)
            elif action == "still_not_fixed":
                updates.report_still_not_fixed(report=report, note=request.POST.get("note", ""))
            else:
                raise ValidationError(_("Choose what to do: add an update, or say it is still not fixed."))
        except Throttled as exc:
            status, retry_after = 429, exc.wait
            errors = {None: [_("You have sent a lot in a short time. Please try again in about %(minutes)d "
                               "minutes.") % {"minutes": math.ceil(exc.wait / 60)}]}
        except ValidationError as exc:
            errors, status = (exc.message_dict if hasattr(exc, "error_dict") else {None: exc.messages}), 400
        else:
            messages.success(request, MANAGE_DONE[action])
            return redirect("report-manage", reference=report.service_request_id, token=token)
        report = _report_or_404(reference)
    response = render(request, "reports/report_manage.html", {
        "report": report, "shown": selectors.public_status(report), "token": token,
        "timeline": updates.public_timeline(selectors.public_status(report)),
        "status_words": updates.PUBLIC_WORDS[selectors.public_status(report).status],
        "may_reopen": report.status in workflow.CITIZEN_REOPENS,
        "errors": errors, "general_errors": errors.get(None, []) + errors.get("status", []),
        "posted": request.POST if status != 200 else {},
    }, status=status)
    response["Cache-Control"] = "private, no-store"  # the page is reached by a secret link
    if retry_after:
        response["Retry-After"] = str(retry_after)
    return response
