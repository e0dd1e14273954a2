"""classifier/runs.py and the RetrainRun record that classifier.retrain.retrain writes."""
from __future__ import annotations

import io
import threading

import psycopg
import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django_tasks import TaskResultStatus, task

from classifier.models import RetrainRun
from classifier.retrain import LOCK_KEY, retrain
from classifier.runs import (INTERRUPTED, open_retrain_run, retrain_lock_held, retrain_request,
                             retrain_runs_reap_stale)
from classifier.task_backends import BackgroundThreadBackend

pytestmark = pytest.mark.django_db


def _other_session():
    params = connection.get_connection_params()
    return psycopg.connect(**{k: v for k, v in params.items() if k in ("host", "port", "user", "dbname", "password")},
                           autocommit=True)


def test_only_one_retrain_can_be_pending_or_running(training_queue, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        first = retrain_request(trigger="staff", reason="Retrain now by sam")
    assert first is not None and first.state == "pending"
    assert [r.kwargs for r in training_queue.results] == [{"run_id": first.pk}]  # enqueued once committed
    assert retrain_request(trigger="corrections", reason="12 corrections") is None
    RetrainRun.objects.filter(pk=first.pk).update(state="running")
    with _other_session() as other:  # its process holds the lock: it really is running
        other.execute("SELECT pg_advisory_lock(%s)", [LOCK_KEY])
        assert retrain_request(trigger="staff", reason="again") is None
        other.execute("SELECT pg_advisory_unlock(%s)", [LOCK_KEY])
    with pytest.raises(IntegrityError), transaction.atomic():  # the database itself refuses a second
        RetrainRun.objects.create(trigger="other", reason="by hand", state="pending")
    RetrainRun.objects.filter(pk=first.pk).update(state="done")
    with django_capture_on_commit_callbacks(execute=True):
        later = retrain_request(trigger="staff", reason="later")
    assert later is not None
    assert [r.kwargs["run_id"] for r in training_queue.results] == [first.pk, later.pk]
    assert RetrainRun.objects.get(pk=later.pk).task_id == training_queue.results[-1].id


def test_an_unknown_trigger_is_refused():
    with pytest.raises(ValueError, match="unknown retrain trigger 'cron'; choose one of nightly, staff, corrections"):
        retrain_request(trigger="cron", reason="x")


def test_a_running_row_without_the_lock_is_stale_and_reaped():
    stale = RetrainRun.objects.create(trigger="nightly", reason="nightly", state="running")
    with _other_session() as other:
        other.execute("SELECT pg_advisory_lock(%s)", [LOCK_KEY])
        assert retrain_lock_held()
        assert retrain_runs_reap_stale() == 0  # someone is training: leave it
        other.execute("SELECT pg_advisory_unlock(%s)", [LOCK_KEY])
    assert not retrain_lock_held()
    assert retrain_runs_reap_stale() == 1
    stale.refresh_from_db()
    assert (stale.state, stale.outcome, stale.error) == ("failed", "failed", INTERRUPTED)
    assert open_retrain_run() is None


def test_retrain_records_the_nightly_run_and_its_outcome(tmp_path, settings):
    settings.RETRAIN_DIR = tmp_path / "runs"
    report = retrain(trigger="nightly", reason="nightly timer")  # no labels at all: skipped
    run = RetrainRun.objects.get()
    assert report["retrain_run"] == run.pk
    assert (run.trigger, run.reason, run.state, run.outcome) == ("nightly", "nightly timer", "done", "skipped")
    assert run.started_at and run.finished_at and "new verified labels" in run.gate_reasons[0]
    assert run.report["run_dir"] == report["run_dir"]


def test_retrain_serves_a_queued_request_and_only_once(tmp_path, settings, training_queue):
    settings.RETRAIN_DIR = tmp_path / "runs"
    run = retrain_request(trigger="corrections", reason="12 staff corrections", force=False)  # skips: no labels
    retrain(run_id=run.pk)
    run.refresh_from_db()
    assert run.state == "done" and run.trigger == "corrections" and run.report is not None
    assert retrain(run_id=run.pk) == {"outcome": "skipped", "reason": f"retrain request {run.pk} was already served"}
    assert RetrainRun.objects.count() == 1


def test_the_nightly_run_serves_a_pending_request_instead_of_its_own(tmp_path, settings, training_queue):
    settings.RETRAIN_DIR = tmp_path / "runs"
    run = retrain_request(trigger="staff", reason="Retrain now by sam", force=False)  # its task was lost
    call_command("retrain", stdout=io.StringIO())
    run.refresh_from_db()
    assert run.state == "done" and RetrainRun.objects.count() == 1
    call_command("retrain", stdout=io.StringIO())
    latest = RetrainRun.objects.order_by("-id").first()
    assert (latest.trigger, latest.reason) == ("nightly", "nightly timer (manage.py retrain)")


def test_a_crash_is_recorded_as_failed_and_frees_the_slot(tmp_path, settings):
    (tmp_path / "not-a-dir").write_text("")
    settings.RETRAIN_DIR = tmp_path / "not-a-dir"  # the run directory cannot be made
    with pytest.raises(OSError):
        retrain(trigger="other", reason="by hand")
    run = RetrainRun.objects.get()
    assert run.state == "failed" and run.outcome == "failed" and run.error and open_retrain_run() is None


def test_with_the_lock_held_the_nightly_run_is_recorded_as_skipped_and_a_request_stays_pending(
        tmp_path, settings, training_queue):
    settings.RETRAIN_DIR = tmp_path / "runs"
    with _other_session() as other:
        other.execute("SELECT pg_advisory_lock(%s)", [LOCK_KEY])
        assert retrain(trigger="nightly", reason="nightly timer")["outcome"] == "skipped"
        skipped = RetrainRun.objects.get()
        assert (skipped.state, skipped.outcome) == ("done", "skipped") and "holds the lock" in skipped.gate_reasons[0]
        queued = retrain_request(trigger="staff", reason="Retrain now by sam")
        assert retrain(run_id=queued.pk)["outcome"] == "skipped"
        queued.refresh_from_db()
        assert queued.state == "pending"  # left for whoever holds the lock
        other.execute("SELECT pg_advisory_unlock(%s)", [LOCK_KEY])


_started, _release = threading.Event(), threading.Event()


@task()
def _wait_for_release() -> int:
    _started.set()
    assert _release.wait(10)
    return RetrainRun.objects.count()  # a database query from the task's own thread


@pytest.mark.django_db(transaction=True)
def test_the_thread_backend_returns_before_the_task_finishes():
    backend = BackgroundThreadBackend(alias="training", params={})
    _started.clear(), _release.clear()
    result = backend.enqueue(_wait_for_release, (), {})
    assert _started.wait(10)
    assert result.status in (TaskResultStatus.READY, TaskResultStatus.RUNNING) and result.finished_at is None  # enqueue did not wait
    _release.set()
    for _ in range(200):
        if result.finished_at is not None:
            break
        threading.Event().wait(0.05)
    assert result.status == TaskResultStatus.SUCCESSFUL and result.return_value == 0
