"""What keeps task workers honest: a heartbeat in the database, a lease on running tasks, a catch-up.

django-tasks-db's `db_worker` marks a task RUNNING when it claims it and
never looks back: a worker killed mid-task leaves it RUNNING for ever, and a
report whose task is lost waits pending until someone classifies it by hand.
`manage.py run_worker` (classifier/management/commands/run_worker.py) runs
the same worker with a `Heartbeat` thread beside it that, every
WORKER_HEARTBEAT_SECONDS:

- writes this worker's `WorkerHeartbeat` row: the queues it serves (so /healthz can say whether
  a classifier worker and a task worker are alive, not merely some worker), the model its
  process serves and, on the classifier worker (the one serving "classify"), whether the active
  model's files are sound: /healthz on a web node that never classifies reads that instead;
- puts back on the queue the RUNNING tasks of workers silent for WORKER_LEASE_SECONDS
  (tasks here are idempotent: classifying a report twice classifies it once);
- on the classification queue, loads a newly activated model at once (not at the next photo)
  and, every WORKER_CATCHUP_SECONDS, enqueues `catch_up_task`
  when a report has waited longer than PENDING_CATCHUP_AFTER_SECONDS or this process's
  active model failed to load (the file may be back: the task reloads it).

Everything here is read from and written to the database only, so every process
(web, worker, cron) sees the same workers.
"""
from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Iterable
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone
from django_tasks import task_backends
from django_tasks_db.models import DBTaskResult

from . import registry
from .models import WorkerHeartbeat

logger = logging.getLogger(__name__)
RUNNING, READY = "RUNNING", "READY"
FORGET_AFTER = timedelta(days=7)  # heartbeat rows of workers gone this long are deleted


def served_queues(*, backend: str, queue_names: Iterable[str], excluded: Iterable[str] = ()) -> list[str]:
    """The queues a worker started with `--queue-name`/`--exclude-queues` takes tasks from:
    "*" is every queue the backend's settings name (QUEUES), less the excluded ones."""
    names = set(queue_names)
    if "*" in names:
        names = set(task_backends[backend].queues) - set(excluded)
    return sorted(names)


def serves_classification(*, backend: str, queues: Iterable[str]) -> bool:
    """Whether a worker serving these queues is a classifier worker (it runs classify tasks)."""
    from .tasks import CLASSIFY_QUEUE, classify_report

    return backend == classify_report.backend and CLASSIFY_QUEUE in queues


def heartbeat_write(*, worker_id: str, backend: str, started_at, queues: Iterable[str] = ()) -> None:
    """`queues`: those of `backend` the worker serves (resolved by `served_queues`). A classifier
    worker also vouches for the active model's files."""
    queues = sorted(queues)
    state = registry.status()
    error = state["error"] or (serves_classification(backend=backend, queues=queues)
                               and _active_model_files_error()) or ""
    now = timezone.now()
    WorkerHeartbeat.objects.update_or_create(worker_id=worker_id, defaults={
        "backend": backend, "queues": queues, "hostname": socket.gethostname()[:255], "pid": os.getpid(),
        "started_at": started_at, "last_seen_at": now, "serving_model": state["loaded_version"] or "",
        "model_error": error})
    WorkerHeartbeat.objects.filter(last_seen_at__lt=now - FORGET_AFTER).delete()


def _active_model_files_error() -> str | None:
    from .health import model_files_error
    from .models import ModelVersion

    active = ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).first()
    return model_files_error(active) if active is not None else None


def live_worker_ids(*, now=None) -> set[str]:
    now = now or timezone.now()
    since = now - timedelta(seconds=settings.WORKER_LEASE_SECONDS)
    return set(WorkerHeartbeat.objects.filter(last_seen_at__gte=since).values_list("worker_id", flat=True))


def requeue_stale_tasks(*, now=None) -> int:
    """Put RUNNING tasks whose worker has been silent for WORKER_LEASE_SECONDS back on the
    queue; returns how many. A task claimed by a plain `db_worker` (no heartbeat) counts as
    silent once it has run that long."""
    now = now or timezone.now()
    alive = live_worker_ids(now=now)
    started_before = now - timedelta(seconds=settings.WORKER_LEASE_SECONDS)
    requeued = 0
    for task in DBTaskResult.objects.filter(status=RUNNING, started_at__lt=started_before).only("id", "worker_ids"):
        owner = task.worker_ids[-1] if task.worker_ids else None
        if owner in alive:
            continue
        # Only if nobody claimed it meanwhile (same worker list): never take a task from a live worker.
        requeued += DBTaskResult.objects.filter(pk=task.pk, status=RUNNING, worker_ids=task.worker_ids).update(
            status=READY, started_at=None)
        logger.warning("task %s of silent worker %s re-queued", task.pk, owner)
    return requeued


def requeue_own_tasks(*, worker_id: str) -> int:
    """Put back the tasks this worker claimed but is not running (it lost the database mid-task)."""
    return sum(DBTaskResult.objects.filter(pk=task.pk, status=RUNNING, worker_ids=task.worker_ids).update(
        status=READY, started_at=None)
        for task in DBTaskResult.objects.filter(status=RUNNING).only("id", "worker_ids")
        if task.worker_ids and task.worker_ids[-1] == worker_id)


def catch_up_needed(*, now=None) -> bool:
    """Reports waited too long, or this process could not load the active model, and no
    catch-up is already queued or running."""
    from reports.models import Report

    from .tasks import catch_up_task

    now = now or timezone.now()
    waited = Report.objects.filter(status=Report.Status.PENDING,
                                   created_at__lt=now - timedelta(seconds=settings.PENDING_CATCHUP_AFTER_SECONDS))
    if not (registry.status()["error"] or waited.exists()):
        return False
    return not DBTaskResult.objects.filter(task_path=catch_up_task.module_path, status__in=[READY, RUNNING]).exists()


class Heartbeat(threading.Thread):
    """The worker's background thread: heartbeat, lease and catch-up (see the module docstring).
    A database outage only makes it log and try again at the next beat."""

    def __init__(self, *, worker_id: str, backend: str, queues: list[str]) -> None:
        super().__init__(name=f"heartbeat-{worker_id}", daemon=True)
        self.worker_id, self.backend, self.queues = worker_id, backend, queues
        self.catch_up = serves_classification(backend=backend, queues=queues)  # the classifier worker
        self.started_at = timezone.now()
        self._stop_event = threading.Event()
        self._last_catch_up = 0.0

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        while not self._stop_event.wait(settings.WORKER_HEARTBEAT_SECONDS):
            self.beat()

    def beat(self) -> None:
        try:
            if self.catch_up:  # the classifier worker: pick up a newly activated model now
                registry.active_classifier()
            heartbeat_write(worker_id=self.worker_id, backend=self.backend, started_at=self.started_at,
                            queues=self.queues)
            requeue_stale_tasks()
            due = time.monotonic() - self._last_catch_up >= settings.WORKER_CATCHUP_SECONDS
            if self.catch_up and due:
                self._last_catch_up = time.monotonic()
                if catch_up_needed():
                    from .tasks import catch_up_task

                    catch_up_task.enqueue()
                    logger.info("reports waited pending: catch-up queued")
        except Exception as exc:  # the database is down or restarting: try again next beat
            logger.warning("worker heartbeat failed (%s: %s); retrying", exc.__class__.__name__, exc)
            with contextlib.suppress(Exception):
                connection.close()
        finally:
            with contextlib.suppress(Exception):
                connection.close_if_unusable_or_obsolete()
