"""Reject oversized uploads from the Content-Length header, before the body is read."""
from django.conf import settings
from django.http import HttpResponse, JsonResponse


class UploadSizeLimitMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if request.method in ("POST", "PUT", "PATCH") and length > limit:
            message = (f"The upload is too large ({length / 1e6:.1f} MB); photos may be at most "
                       f"{settings.PHOTO_MAX_BYTES / 1e6:.0f} MB.")
            if request.path.startswith("/open311/"):
                return JsonResponse([{"code": 413, "description": message}], status=413, safe=False)
            if request.path.startswith("/api/"):
                return JsonResponse({"detail": message, "errors": {"photo": [message]}}, status=413)
            return HttpResponse(message, status=413, content_type="text/plain; charset=utf-8")
        return self.get_response(request)
