"""Submission rate limits, shared by the citizen form, the REST API and Open311.

Three counters (django-ratelimit, in the default cache):
- attempts per client IP (REPORT_ATTEMPT_RATE_LIMIT): every submission, good or bad,
  so one address cannot hammer the photo pipeline;
- accepted reports per client IP (REPORT_RATE_LIMIT): a citizen's quota, counted only
  once a report is accepted, so someone else's bad requests never use it up;
- per API key (ApiKey.reports_per_hour): a client with a key is counted by its key,
  not by the IP it shares with the rest of its servers.
Staff with console access entering a report for a resident are not limited.
Every refusal is DRF's Throttled, whose `wait` becomes the 429's Retry-After.
"""
from __future__ import annotations

import logging
import math

from django.conf import settings
from django.shortcuts import render
from django_ratelimit.core import get_usage
from django.utils.translation import gettext_lazy as _
from rest_framework.exceptions import Throttled

from .clientip import client_ip

logger = logging.getLogger(__name__)

RATE_LIMITED_MESSAGE = _("Too many reports from this address; please try again later.")
ATTEMPTS_LIMITED_MESSAGE = _("Too many attempts from this address; please try again later.")
KEY_LIMITED_MESSAGE = _("Too many reports with this api_key; please try again later.")


def _by_ip(group, request) -> str:
    return client_ip(request)


def _exempt(request) -> bool:
    user = getattr(request, "user", None)
    return not settings.RATELIMIT_ENABLE or bool(user and user.is_authenticated
                                                  and user.has_perm("console.view_console"))


def _refuse(request, message: str, usage: dict, counter: str) -> None:
    logger.warning("rate limit %s reached by %s on %s", counter, client_ip(request), request.path)
    raise Throttled(wait=max(1, math.ceil(usage["time_left"])), detail=str(message))  # in the request's language


def submission_check(request, *, api_key=None) -> None:
    """Count this attempt (per key, else per IP) and raise Throttled when over a limit,
    or when the IP's quota of accepted reports is used up. Call before any work."""
    if _exempt(request):
        return
    if api_key is not None:
        usage = get_usage(request, group="report-key", key=lambda group, request: str(api_key.pk),
                          rate=f"{api_key.reports_per_hour}/h", increment=True)
        if usage["should_limit"]:
            _refuse(request, KEY_LIMITED_MESSAGE, usage, "api-key")
        return
    usage = get_usage(request, group="report-attempt", key=_by_ip, rate=settings.REPORT_ATTEMPT_RATE_LIMIT,
                      increment=True)
    if usage["should_limit"]:
        _refuse(request, ATTEMPTS_LIMITED_MESSAGE, usage, "attempts")
    quota = get_usage(request, group="report-create", key=_by_ip, rate=settings.REPORT_RATE_LIMIT)
    if quota["count"] >= quota["limit"]:
        _refuse(request, RATE_LIMITED_MESSAGE, quota, "accepted")


def submission_accepted(request, *, api_key=None) -> None:
    """Count an accepted report toward its IP's quota (keys and staff have none)."""
    if api_key is None and not _exempt(request):
        get_usage(request, group="report-create", key=_by_ip, rate=settings.REPORT_RATE_LIMIT, increment=True)


def login_locked_out(request, original_response=None, credentials=None):
    """django-axes' lockout answer (AXES_LOCKOUT_CALLABLE): a page saying when to try again, 429."""
    minutes = math.ceil(settings.AXES_COOLOFF_TIME.total_seconds() / 60)
    logger.warning("login locked out for %s from %s", (credentials or {}).get("username", ""), client_ip(request))
    response = render(request, "locked_out.html", {"minutes": minutes}, status=429)
    response["Retry-After"] = str(int(settings.AXES_COOLOFF_TIME.total_seconds()))
    return response
