"""The unsubscribe link in every message. Opening it shows a confirm page (mail scanners open
links, so a GET never unsubscribes); the page's buttons and RFC 8058 one-click POSTs from mail
clients do. The signed token is the proof, so no cookie or CSRF token is needed."""
from __future__ import annotations

from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from reports.models import Report

from . import services
from .tokens import BadUnsubscribeToken, unsubscribe_read


@csrf_exempt
@require_http_methods(["GET", "POST"])
def unsubscribe(request, token: str):
    try:
        wish = unsubscribe_read(token)
    except BadUnsubscribeToken as exc:
        return render(request, "notifications/unsubscribe_invalid.html", {"why": str(exc)}, status=400)
    report = Report.objects.filter(service_request_id=wish.reference).first() if wish.reference else None
    context = {"email": wish.email, "report": report, "token": token}
    if request.method == "GET":
        return render(request, "notifications/unsubscribe.html", context)
    one_click = request.POST.get("List-Unsubscribe") == "One-Click"  # RFC 8058: this report's (or all) mail
    scope = "report" if one_click and report is not None else request.POST.get("scope", "")
    if scope not in {"report", "all"} or (scope == "report" and report is None):
        context["error"] = _("Choose what to stop: mail about this report, or all mail to this address.")
        return render(request, "notifications/unsubscribe.html", context, status=400)
    services.unsubscribe_create(email=wish.email, report=report if scope == "report" else None)
    return render(request, "notifications/unsubscribed.html", {**context, "scope": scope})
