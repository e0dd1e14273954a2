"""/healthz: the database, reports waiting, the classifier and the workers, in one answer.

Composed here, above the apps, so `reports` never imports `classifier`. Every part
is read from the database (and the active model's files), so every process
behind a load balancer answers the same.
"""
from __future__ import annotations

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from classifier.health import classifier_health, worker_health
from reports.models import Report


def pending_health() -> dict:
    pending = Report.objects.filter(status=Report.Status.PENDING)
    oldest = pending.order_by("created_at").values_list("created_at", flat=True).first()
    age = None if oldest is None else round((timezone.now() - oldest).total_seconds(), 1)
    return {"pending_classification": pending.count(), "oldest_pending_s": age}


def _storage_health() -> dict:
    """The media storage check, where reports provides one."""
    try:
        from reports.health import storage_health
    except ImportError:
        return {}
    return storage_health()


def health() -> tuple[dict, int]:
    body: dict = {"status": "ok", "database": "ok"}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        body.update(pending_health())
        body.update(classifier_health())
        body.update(worker_health())
    except Exception as exc:  # the health check must answer even when the database is down
        body.update(status="error", database=f"error: {exc.__class__.__name__}")
        return body, 503
    body.update(_storage_health())
    reasons = []
    if body["classifier"] == "degraded":
        reasons.append(f"classifier: {body.get('error', 'degraded')}")
    if body["oldest_pending_s"] is not None and body["oldest_pending_s"] > settings.HEALTH_MAX_PENDING_AGE_SECONDS:
        reasons.append(f"a report has waited {body['oldest_pending_s']:.0f} s to be classified "
                       f"(limit {settings.HEALTH_MAX_PENDING_AGE_SECONDS:.0f} s)")
    for role, workers in body.get("workers", {}).items():
        if workers["status"] == "not_seen":
            reasons.append(f"no {role} worker (queue {workers['queue']}) seen for "
                           f"{settings.HEALTH_MAX_WORKER_SILENCE_SECONDS:.0f} s; "
                           f"{workers['tasks_waiting']} task(s) waiting")
    if body.get("storage", "ok") != "ok":
        reasons.append(f"storage: {body['storage']}")
    if reasons:
        body.update(status="degraded", degraded_because=reasons)
    return body, 200


@require_GET
def healthz(request):
    body, status = health()
    return JsonResponse(body, status=status)
