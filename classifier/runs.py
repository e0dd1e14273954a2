"""Retrain runs: the durable record of every retraining request (why, who, outcome) and its queueing.

A request is a `RetrainRun` row. At most one row is pending or running at a
time (a partial unique index), so two staff decisions committing together
can queue one retrain, not two; `classifier.retrain.retrain` also holds a
PostgreSQL advisory lock while it works. A row is only ever "running" while
its process holds that lock, so a running row with the lock free is left
over from a process that died (a worker restarted mid-training): it is
marked failed, never waited for forever.

Queued requests run on the "training" task backend (settings.TASKS), never
inside the HTTP request that asked: django-tasks-db with its own worker in
production, a background thread in the demo, a recording dummy in tests.
A pending request whose task was lost (the demo server restarted) is served
by the next `manage.py retrain`, or sent again by "Retrain now".
"""
from __future__ import annotations

import json
import logging

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from .models import ModelVersion, RetrainRun

logger = logging.getLogger(__name__)
State = RetrainRun.State

INTERRUPTED = "interrupted: the process running it ended before it finished"


def _active_version() -> str:
    return ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).values_list("version", flat=True).first() or ""


def retrain_lock_held() -> bool:
    """Whether some session holds the retraining advisory lock. Reads pg_locks only, so
    (unlike trying the lock) it can never make a starting run skip."""
    from .retrain import LOCK_KEY

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND classid = %s AND objid = %s AND objsubid = 1)",
            [(LOCK_KEY >> 32) & 0xFFFFFFFF, LOCK_KEY & 0xFFFFFFFF])
        return cursor.fetchone()[0]


def retrain_runs_reap_stale(*, lock_held: bool | None = None) -> int:
    """Mark as failed every running row whose process is gone; returns how many.
    Pass lock_held=False when the caller itself holds the lock (then every running row is stale)."""
    if lock_held is None:
        lock_held = retrain_lock_held()
    if lock_held:
        return 0
    return RetrainRun.objects.filter(state=State.RUNNING).update(
        state=State.FAILED, outcome="failed", error=INTERRUPTED, finished_at=timezone.now())


def open_retrain_run() -> RetrainRun | None:
    """The pending or running request, if any (there is at most one)."""
    return RetrainRun.objects.filter(state__in=RetrainRun.OPEN_STATES).select_related("requested_by").first()


def retrain_request(*, trigger: str, reason: str, requested_by=None, force: bool = True,
                    evidence: dict | None = None, active_version: str | None = None) -> RetrainRun | None:
    """Record a pending retrain and, after commit, enqueue `retrain_task` for it.

    Returns None, writing nothing, when a retrain is already pending or running.
    Returns at once: the training itself runs on the "training" task backend.
    """
    if trigger not in RetrainRun.Trigger.values:
        raise ValueError(f"unknown retrain trigger {trigger!r}; choose one of {', '.join(RetrainRun.Trigger.values)}")
    retrain_runs_reap_stale()
    run = RetrainRun(trigger=trigger, reason=reason[:500], requested_by=requested_by, force=force,
                     evidence=evidence or {}, state=State.PENDING,
                     active_version=_active_version() if active_version is None else active_version)
    run.full_clean(validate_constraints=False)  # the partial unique index decides, race-free
    try:
        with transaction.atomic():
            run.save()
    except IntegrityError:
        logger.info("retrain not queued (%s: %s): one is already pending or running", trigger, reason)
        return None
    logger.info("retrain %s queued (%s): %s", run.pk, trigger, reason)
    retrain_run_dispatch(run=run)
    return run


def retrain_run_dispatch(*, run: RetrainRun) -> None:
    """Enqueue `retrain_task` for a pending run once the current transaction commits.
    Sending the same run twice is harmless: only one task can claim it."""
    def enqueue() -> None:
        from .tasks import retrain_task

        try:
            result = retrain_task.enqueue(run_id=run.pk)
        except Exception:
            logger.exception("could not enqueue retrain %s; `manage.py retrain` will serve it", run.pk)
            return
        RetrainRun.objects.filter(pk=run.pk).update(task_id=str(result.id)[:64])

    transaction.on_commit(enqueue, robust=True)


def retrain_run_start(*, run_id: int | None, trigger: str, reason: str, requested_by=None,
                      force: bool = False) -> RetrainRun | None:
    """Mark a run as running and return it. Call only while holding the retraining advisory lock.

    With `run_id`: claim that pending request (None if it is no longer pending: another
    process served it). Without: serve the pending request if there is one (it ran
    for its own reason), else record a new run with `trigger` and `reason`.
    """
    retrain_runs_reap_stale(lock_held=False)  # we hold the lock: every running row is stale
    now = timezone.now()
    if run_id is not None:
        claimed = RetrainRun.objects.filter(pk=run_id, state=State.PENDING).update(state=State.RUNNING, started_at=now)
        return RetrainRun.objects.get(pk=run_id) if claimed else None
    for _ in range(3):  # a request may be queued between looking and inserting
        pending = RetrainRun.objects.filter(state=State.PENDING).first()
        if pending is not None:
            if RetrainRun.objects.filter(pk=pending.pk, state=State.PENDING).update(state=State.RUNNING,
                                                                                   started_at=now):
                pending.refresh_from_db()
                return pending
            continue
        try:
            with transaction.atomic():
                return RetrainRun.objects.create(
                    trigger=trigger, reason=reason[:500], requested_by=requested_by, force=force,
                    active_version=_active_version(), state=State.RUNNING, started_at=now)
        except IntegrityError:
            continue
    raise RuntimeError("could not record the retrain run (requests kept arriving); try again")


def retrain_run_skipped(*, trigger: str, reason: str, requested_by=None, why: str) -> RetrainRun:
    """Record a run that did not start (e.g. the lock was held), so the panel shows it was tried."""
    now = timezone.now()
    return RetrainRun.objects.create(
        trigger=trigger, reason=reason[:500], requested_by=requested_by, active_version=_active_version(),
        state=State.DONE, outcome="skipped", report={"outcome": "skipped", "reason": why},
        started_at=now, finished_at=now)


def retrain_run_finish(*, run: RetrainRun, report: dict | None = None,
                       error: BaseException | None = None) -> RetrainRun:
    """Record how a running run ended: retrain()'s report, or the error that stopped it."""
    run.finished_at = timezone.now()
    if error is not None:
        run.state, run.outcome, run.error = State.FAILED, "failed", str(error)[:2000] or type(error).__name__
    else:
        report = json.loads(json.dumps(report or {}, default=str))  # dates, paths -> JSON
        run.state, run.outcome, run.report = State.DONE, str(report.get("outcome", ""))[:16], report
        run.candidate_version = str(report.get("candidate_version") or "")[:64]
    run.save(update_fields=["state", "outcome", "error", "report", "candidate_version", "finished_at"])
    return run


def recent_retrain_runs(*, limit: int = 10) -> list[RetrainRun]:
    return list(RetrainRun.objects.select_related("requested_by").order_by("-requested_at", "-id")[:limit])
