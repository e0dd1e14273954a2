"""Staff-only access to what a reporter added through their private link (reports.updates):
the original photo of an update keeps its GPS and camera metadata, so only staff see it."""
from __future__ import annotations

from django.http import Http404
from django.views.decorators.http import require_GET

from .views import _original_response, _report, staff_view


@require_GET
@staff_view
def update_photo_original(request, reference: str, pk: int):
    update = _report(reference).updates.filter(pk=pk).first()
    if update is None or not update.photo_original:
        raise Http404("No photo with that update")
    return _original_response(update.photo_original, update.photo_format)
