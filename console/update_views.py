"""Staff-only access to what a reporter added through their private link (reports.updates):
the original photo of an update keeps its GPS and camera metadata, so only staff see it."""
from __future__ import annotations

from django.http import Http404
from django.views.decorators.http import require_GET

from .views import CONTENT_TYPES, _file_response, _report, staff_view


@require_GET
@staff_view
def update_photo_original(request, reference: str, pk: int):
    update = _report(reference).updates.filter(pk=pk).first()
    if update is None or not update.photo_original:
        raise Http404("No photo with that update")
    response = _file_response(update.photo_original, CONTENT_TYPES.get(update.photo_format, "application/octet-stream"),
                              update.photo_original.name.rsplit("/", 1)[-1])
    response["Cache-Control"] = "private, no-store"
    return response
