"""Classifier and worker status for /healthz (composed in config/health.py).

Derived only from the database and the active model's files, never from what
this process happens to have loaded: every web and worker process gives the
same answer, and it changes as soon as the file or the database does. A process
that does not classify (CLASSIFY_INLINE false: the web role) reads neither the
model's files nor ONNX Runtime: the classifier workers' heartbeats say whether
the active model loads where it is served.
"""
from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import Count
from django.utils import timezone
from django_tasks import task_backends
from django_tasks_db.backend import DatabaseBackend
from django_tasks_db.models import DBTaskResult

from . import model_files
from .models import AutoTriageSwitchOff, ModelVersion, WorkerHeartbeat
from .services import has_ever_had_a_model
from .tasks import CLASSIFY_QUEUE

def model_files_error(version: ModelVersion) -> str | None:
    """Why the active model's files cannot serve (missing, or not the bytes registered), else None.
    With MODEL_STORAGE=s3 a missing or damaged local copy is fetched again first, so the answer
    is about the object storage's copy: missing or corrupt there, or the storage unreachable."""
    try:
        model_files.local_directory(version)
    except model_files.ModelFilesError as exc:
        return str(exc)
    onnx = version.directory / "model.onnx"
    if not (version.directory / "metadata.json").is_file() or not onnx.is_file():
        return f"model {version.version}: files missing in {version.directory}"
    if version.sha256 and model_files.file_sha256(onnx) != version.sha256:
        return f"model {version.version}: model.onnx does not match its registered sha256"
    return None


def classifier_health() -> dict:
    """ok: a model serves; no_model: cold start (staff triage by hand); degraded: an active
    model exists but its files are broken or a worker cannot load it, so reports wait as pending.

    model_quality: "degraded" while the live quality guard has auto-triage of some
    category switched off (listed in auto_triage_off), else "ok". It does not change
    the overall status: reports are still taken and reviewed by staff."""
    active = ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).first()
    body: dict = {"active_model": active.version if active else None}
    recent = _recent_workers()
    worker_errors = sorted({w.model_error for w in recent if w.model_error})
    if active is None:
        body["classifier"] = "degraded" if has_ever_had_a_model() else "no_model"
        if body["classifier"] == "degraded":
            body["error"] = "no active model can be served"
    elif error := ((model_files_error(active) if settings.CLASSIFY_INLINE else None)
                   or (worker_errors[0] if worker_errors else None)):
        body.update(classifier="degraded", error=error)
    elif not settings.CLASSIFY_INLINE:
        body["classifier"] = "ok"  # served by the classifier workers (their providers are theirs)
    else:
        try:
            body.update(classifier="ok", providers=_providers())
        except Exception as exc:  # DEVICE asks for what this machine lacks
            body.update(classifier="degraded", error=f"{exc.__class__.__name__}: {exc}")
    off = sorted(AutoTriageSwitchOff.objects.filter(switched_on_at__isnull=True).values_list("category__slug",
                                                                                           flat=True))
    body["model_quality"] = "degraded" if off else "ok"
    if off:
        body["auto_triage_off"] = off
    return body


def _recent_workers() -> list[WorkerHeartbeat]:
    since = timezone.now() - timedelta(seconds=settings.HEALTH_MAX_WORKER_SILENCE_SECONDS)
    return list(WorkerHeartbeat.objects.filter(last_seen_at__gte=since))


def _providers() -> list[str]:
    """The execution providers the CLASSIFIER setting asks for on this machine, best first
    (imports ONNX Runtime: only where this process classifies)."""
    from inference.runtime import device_providers

    return device_providers(settings.CLASSIFIER.get("DEVICE", "auto"))


# The role that serves each queue of the default task backend (README "Topology"), for /healthz.
ROLE_OF_QUEUE = {"classify": "classifier", "default": "task"}


def worker_health() -> dict:
    """With a database task queue: per role, how many of its workers are alive (a heartbeat within
    HEALTH_MAX_WORKER_SILENCE_SECONDS from a worker serving its queue), when one was last seen and
    how many tasks wait on its queue. A role is "not_seen" when no live worker serves its queue
    and the queue has tasks to run: some are waiting, or this configuration sends work there
    ("default" always; "classify" unless CLASSIFY_INLINE), so a live task worker no longer hides
    a missing classifier worker. Inline task backends (the demo) have no worker to wait for:
    `task_queue` says which it is."""
    backend = task_backends["default"]
    if not isinstance(backend, DatabaseBackend):
        return {"task_queue": "inline"}
    now = timezone.now()
    silence = settings.HEALTH_MAX_WORKER_SILENCE_SECONDS
    beats = list(WorkerHeartbeat.objects.filter(backend=backend.alias).values_list("last_seen_at", "queues"))
    waiting = dict(DBTaskResult.objects.ready().filter(backend_name=backend.alias).order_by()
                   .values_list("queue_name").annotate(n=Count("id")))
    expected = {"default"} | (set() if settings.CLASSIFY_INLINE else {CLASSIFY_QUEUE})

    def age(seen) -> float | None:
        return None if seen is None else round((now - seen).total_seconds(), 1)

    roles = {}
    for queue in sorted(backend.queues):
        seen = [at for at, queues in beats if queue in queues]
        alive = sum(1 for at in seen if (now - at).total_seconds() <= silence)
        needed = queue in expected or waiting.get(queue, 0) > 0
        roles[ROLE_OF_QUEUE.get(queue, queue)] = {
            "queue": queue, "status": "ok" if alive else ("not_seen" if needed else "idle"),
            "workers_alive": alive, "last_seen_s": age(max(seen, default=None)),
            "tasks_waiting": waiting.get(queue, 0)}
    missing = any(role["status"] == "not_seen" for role in roles.values())
    return {"task_queue": "database", "worker": "not_seen" if missing else "ok",
            "worker_last_seen_s": age(max((at for at, _ in beats), default=None)), "workers": roles}
