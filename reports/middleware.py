"""Reject oversized uploads from the Content-Length header, before the body is read; answer
503 (not a 500) while the database or the photo storage is unavailable."""
import logging

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, JsonResponse
from django.shortcuts import render

from .clientip import client_ip
from .storage import is_storage_failure

logger = logging.getLogger(__name__)


CHUNKED_MESSAGE = ("Uploads must carry a Content-Length header; chunked transfer encoding is not accepted. "
                   "Send the photo as an ordinary multipart/form-data request (curl -F photo=@file does).")


def _refusal(request, status: int, message: str) -> HttpResponse:
    """An upload refused before its body is read, in the client's format."""
    if request.path.startswith("/open311/"):
        return JsonResponse([{"code": status, "description": message}], status=status, safe=False)
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": message, "errors": {"photo": [message]}}, status=status)
    return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")


class UploadSizeLimitMiddleware:
    """Also 411 for a chunked body: WSGI servers pass it on without a length, Django reads it
    as empty, and the client would hear "no file was submitted" about a photo it did send."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.method not in ("POST", "PUT", "PATCH"):
            return self.get_response(request)
        if "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
            return _refusal(request, 411, CHUNKED_MESSAGE)
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
            return _refusal(request, 413, f"The upload is too large ({length / 1e6:.1f} MB); photos may be at most "
                                          f"{settings.PHOTO_MAX_BYTES / 1e6:.0f} MB.")
        return self.get_response(request)


def unavailable_cause(exc: BaseException) -> str | None:
    """Which part is down ("database" or "storage") when `exc` means the service cannot work for now."""
    if isinstance(exc, (OperationalError, InterfaceError)):
        return "database"
    if is_storage_failure(exc):  # an unwritable folder, or object storage refusing or unreachable
        return "storage"
    return None


class ServiceUnavailableMiddleware:
    """A database outage or an unwritable photo storage is a 503 with Retry-After: JSON for
    the REST API, the spec's error list for Open311, a page for people. The failed request
    wrote nothing: report_create's transaction rolls back and removes the files it saved."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exc):
        cause = unavailable_cause(exc)
        if cause is None:
            return None
        logger.error("503: %s unavailable for %s %s from %s", cause, request.method, request.path,
                     client_ip(request), exc_info=exc)
        message = ("The service is temporarily unavailable; nothing was saved. "
                   "Please try again in a minute.")
        if request.path.startswith("/open311/"):
            from .open311 import render_errors

            fmt = "xml" if request.path.endswith(".xml") else "json"
            response = render_errors(fmt, 503, [message])
        elif request.path.startswith("/api/"):
            response = JsonResponse({"detail": message, "cause": cause}, status=503)
        else:
            response = render(request, "unavailable.html", status=503)
        response["Retry-After"] = str(settings.SERVICE_UNAVAILABLE_RETRY_AFTER)
        return response

