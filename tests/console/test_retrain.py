"""Retraining from the console: staff corrections queue one retrain; "Retrain now" queues, never trains in the request."""
from __future__ import annotations

import datetime as dt

import psycopg
import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from classifier.models import ModelVersion, RetrainRun
from classifier.retrain import LOCK_KEY
from console import services
from reports.models import Report

from .conftest import category

pytestmark = pytest.mark.django_db
S = Report.Status


@pytest.fixture
def v1(db):
    return ModelVersion.objects.create(version="v1", path="v1", sha256="1" * 64, status="active",
                                       classes=["graffiti", "no_issue", "pothole"],
                                       activated_at=timezone.now() - dt.timedelta(minutes=5))


@pytest.fixture
def count_trigger(settings):
    settings.RETRAIN_AFTER_CORRECTIONS = 3
    settings.RETRAIN_CORRECTION_SHARE = 0


def test_corrections_through_the_console_queue_one_retrain_at_the_threshold(
        triager, make_report, v1, count_trigger, training_queue, django_capture_on_commit_callbacks):
    reports = [make_report(predicted="pothole") for _ in range(5)]
    with django_capture_on_commit_callbacks(execute=True):
        services.report_verify(report=reports[0], staff=triager, category=category("graffiti"), expected_version=1)
        services.report_verify(report=reports[1], staff=triager, category=category("pothole"), expected_version=1)
    assert not RetrainRun.objects.exists()  # 1 correction, 1 agreement
    with django_capture_on_commit_callbacks(execute=True):
        services.report_verify(report=reports[2], staff=triager, category=category("graffiti"), expected_version=1)
    assert not RetrainRun.objects.exists()  # 2 corrections
    with django_capture_on_commit_callbacks(execute=True):
        services.report_verify(report=reports[3], staff=triager, category=category("graffiti"), expected_version=1)
    run = RetrainRun.objects.get()
    assert (run.trigger, run.state, run.active_version) == ("corrections", "pending", "v1")
    assert run.reason == "3 staff corrections of v1 since activation (threshold 3)"
    assert [r.kwargs for r in training_queue.results] == [{"run_id": run.pk}]
    with django_capture_on_commit_callbacks(execute=True):
        services.report_verify(report=reports[4], staff=triager, category=category("graffiti"), expected_version=1)
    assert RetrainRun.objects.count() == 1 and len(training_queue.results) == 1


def test_a_bulk_correction_crossing_the_threshold_queues_one_retrain(
        triager, make_report, v1, count_trigger, training_queue, django_capture_on_commit_callbacks):
    reports = [make_report(predicted="pothole") for _ in range(5)]
    with django_capture_on_commit_callbacks(execute=True):
        result = services.report_bulk_verify(selection=[(r.pk, r.version) for r in reports], staff=triager,
                                             category=category("graffiti"))
    assert len(result.done) == 5
    assert RetrainRun.objects.filter(trigger="corrections").count() == 1 and len(training_queue.results) == 1


def test_rejections_count_as_corrections_unless_the_model_said_no_issue(
        triager, make_report, v1, count_trigger, training_queue, django_capture_on_commit_callbacks):
    said_pothole = [make_report(predicted="pothole") for _ in range(3)]
    said_no_issue = [make_report(predicted="no_issue") for _ in range(3)]
    with django_capture_on_commit_callbacks(execute=True):
        result = services.report_bulk_set_status(selection=[(r.pk, r.version) for r in said_no_issue],
                                                 staff=triager, status=S.REJECTED, reason="not_council")
    assert len(result.done) == 3 and not RetrainRun.objects.exists()  # agreement, three times
    with django_capture_on_commit_callbacks(execute=True):
        for r in said_pothole:
            services.report_set_status(report=r, staff=triager, status=S.REJECTED, expected_version=r.version,
                                       reason="not_council")
    run = RetrainRun.objects.get()
    assert run.reason == "3 staff corrections of v1 since activation (threshold 3)"
    assert run.evidence["per_label"]["no_issue"] == [3, 6] and len(training_queue.results) == 1


def test_a_failing_check_never_fails_the_decision(triager, make_report, v1, monkeypatch, caplog,
                                                  django_capture_on_commit_callbacks):
    from classifier import triggers

    def broken():
        raise RuntimeError("evidence unavailable")

    monkeypatch.setattr(triggers, "retrain_if_evidence", broken)
    report = make_report(predicted="pothole")
    with django_capture_on_commit_callbacks(execute=True):
        services.report_verify(report=report, staff=triager, category=category("graffiti"), expected_version=1)
    assert Report.objects.get(pk=report.pk).final_category.slug == "graffiti"
    assert "evidence unavailable" in caplog.text  # logged, not raised


def test_retrain_now_records_who_asked_and_returns_without_training(client, supervisor, training_queue,
                                                                     django_capture_on_commit_callbacks):
    client.force_login(supervisor)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("console:retrain"), follow=True)
    run = RetrainRun.objects.get()
    assert (run.trigger, run.requested_by, run.reason, run.state, run.force) == (
        "staff", supervisor, "Retrain now by sam", "pending", True)
    assert [r.kwargs for r in training_queue.results] == [{"run_id": run.pk}]  # queued, not run
    assert f"Retraining queued (run {run.pk}: Retrain now by sam)" in response.content.decode()
    # Asked again while it waits: the same request is sent again (its task may have been lost), no second row.
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("console:retrain"))
    assert RetrainRun.objects.count() == 1 and [r.kwargs for r in training_queue.results] == [{"run_id": run.pk}] * 2


def test_retrain_now_while_one_runs_says_so(client, supervisor, training_queue):
    running = RetrainRun.objects.create(trigger="nightly", reason="nightly timer", state="running",
                                        started_at=timezone.now())
    params = connection.get_connection_params()
    with psycopg.connect(**{k: v for k, v in params.items() if k in ("host", "port", "user", "dbname", "password")},
                         autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", [LOCK_KEY])
        client.force_login(supervisor)
        html = client.post(reverse("console:retrain"), follow=True).content.decode()
        other.execute("SELECT pg_advisory_unlock(%s)", [LOCK_KEY])
    assert f"A retrain is already running (run {running.pk}" in html and RetrainRun.objects.count() == 1


def test_retrain_now_needs_the_permission(triager):
    with pytest.raises(services.PermissionDenied):
        services.model_retrain(staff=triager)
