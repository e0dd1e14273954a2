"""Classification tasks (django-tasks: immediate in the demo, django-tasks-db + db_worker in production).

Classification has a queue of its own, CLASSIFY_QUEUE ("classify"), served by the classifier
worker (`run_worker --queue-name classify`) and by nothing else, so a new photo never waits
behind e-mail or other tasks on "default". `classify_soon` is how a process asks for it.
"""
from __future__ import annotations

import logging
import time

from django.conf import settings
from django_tasks import task

logger = logging.getLogger(__name__)
CLASSIFY_QUEUE = "classify"  # the classifier worker's queue (settings.TASK_QUEUES)


def classify_soon(task_, *args) -> None:
    """Classify in this process now (CLASSIFY_INLINE: the demo, a one-box install) or queue
    `task_` on "classify" for a classifier worker (the web role in production, which then never
    imports ONNX Runtime nor needs the model's files)."""
    if settings.CLASSIFY_INLINE:
        task_.call(*args)
    else:
        task_.enqueue(*args)


@task(queue_name=CLASSIFY_QUEUE)
def classify_report(report_id: int) -> int:
    """Classify a new report, batched with whatever else is pending.

    The first task to run waits up to CLASSIFIER_BATCH_WAIT_MS for up to
    CLASSIFIER_BATCH_SIZE pending reports, then claims them all (SKIP
    LOCKED); the tasks of reports it classified find nothing left to do.
    Transient failures are retried; a report that still fails stays pending
    for `classify_pending`.
    """
    from .services import classify_reports, pending_report_ids

    deadline = time.monotonic() + settings.CLASSIFIER_BATCH_WAIT_MS / 1000
    batch = settings.CLASSIFIER_BATCH_SIZE
    ids = pending_report_ids(limit=batch)
    while len(ids) < batch and time.monotonic() < deadline:
        time.sleep(0.01)
        ids = pending_report_ids(limit=batch)
    if report_id not in ids:
        ids = [report_id, *ids[: batch - 1]]
    for attempt in range(1, settings.CLASSIFIER_RETRIES + 1):
        try:
            return classify_reports(ids)
        except Exception:
            logger.exception("classifying %s failed (attempt %d)", ids, attempt)
            time.sleep(0.2 * attempt)
    return 0


def enqueue_on_submit(sender, *, report_id: int, **kwargs) -> None:
    """reports.signals.report_submitted receiver (connected in ClassifierConfig.ready)."""
    classify_soon(classify_report, report_id)


@task(queue_name=CLASSIFY_QUEUE)
def classify_pending_task() -> int:
    from .services import classify_pending

    return classify_pending()


@task(queue_name=CLASSIFY_QUEUE)
def catch_up_task() -> int:
    """Queued by a worker's heartbeat (classifier.worker) when reports waited too long: look
    for the active model afresh (its file may be back after an outage), then classify every
    pending report."""
    from . import registry
    from .services import classify_pending

    registry.active_classifier(force_check=True)
    return classify_pending()


@task(backend="training")
def retrain_task(run_id: int) -> dict:
    """Carry out a queued retrain request (classifier.runs.retrain_request: "Retrain now",
    staff corrections); the same run as the nightly `manage.py retrain`. On the "training"
    backend, so a multi-minute training never runs inside a web request or holds up
    classification on the default queue."""
    from .retrain import retrain

    try:
        return retrain(run_id=run_id)
    except Exception:
        logger.exception("retrain %s failed", run_id)
        raise
