"""Model panel: quality of the active model against staff labels since its activation."""
from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from console import panel, services
from reports.models import Report

from .conftest import category

S = Report.Status


@pytest.fixture
def active_model(supervisor):
    from classifier.models import ModelVersion

    ModelVersion.objects.create(version="v0", path="v0", sha256="0" * 64, classes=["pothole"], status="retired",
                                activated_at=timezone.now() - dt.timedelta(days=30))
    return ModelVersion.objects.create(
        version="v1", path="v1", sha256="1" * 64, classes=["pothole", "graffiti", "no_issue"], status="active",
        metrics={"macro_f1": 0.81, "accuracy": 0.86}, activated_by=supervisor,
        activated_at=timezone.now() - dt.timedelta(minutes=5))


@pytest.mark.django_db
def test_quality_counts_rejections_as_no_issue(triager, make_report, active_model):
    for predicted, decision in [("pothole", "pothole"), ("pothole", "pothole"), ("pothole", "graffiti"),
                                ("graffiti", "graffiti"), ("no_issue", "reject"), ("pothole", "reject")]:
        r = make_report(predicted=predicted, model_version="v1")
        if decision == "reject":
            services.report_set_status(report=r, staff=triager, status=S.REJECTED, expected_version=1)
        else:
            services.report_verify(report=r, staff=triager, category=category(decision), expected_version=1)
    make_report(predicted="pothole", model_version="v1")  # not labelled yet: not counted
    q = panel.model_quality(version="v1", since=active_model.activated_at)
    scores = {s.label: s for s in q["scores"]}
    assert q["total"] == 6 and q["accuracy"] == pytest.approx(4 / 6)
    assert scores["pothole"].precision == pytest.approx(2 / 4) and scores["pothole"].recall == 1.0
    assert scores["graffiti"].precision == 1.0 and scores["graffiti"].recall == pytest.approx(1 / 2)
    assert scores["no_issue"].support == 2 and scores["no_issue"].recall == pytest.approx(1 / 2)
    assert dict(q["matrix"])["graffiti"] == [1, 1, 0]  # rows: staff label; columns: pothole, graffiti, no_issue


@pytest.mark.django_db
def test_auto_triage_accuracy_comes_from_spot_checks(triager, make_report, active_model):
    right = make_report(predicted="pothole", model_version="v1", status=S.TRIAGED, auto_triaged=True)
    wrong = make_report(predicted="pothole", model_version="v1", status=S.TRIAGED, auto_triaged=True)
    make_report(predicted="pothole", model_version="v1", status=S.TRIAGED, auto_triaged=True)
    make_report(predicted="pothole", model_version="v1")
    services.report_verify(report=right, staff=triager, category=category("pothole"), expected_version=1)
    services.report_verify(report=wrong, staff=triager, category=category("graffiti"), expected_version=1)
    stats = panel.auto_triage_stats(version="v1")
    assert (stats["classified"], stats["auto"], stats["checked"], stats["correct"]) == (4, 3, 2, 1)
    assert stats["rate"] == 0.75 and stats["accuracy"] == 0.5


@pytest.mark.django_db
def test_panel_shows_the_active_model_and_supervisor_controls(client, supervisor, triager, active_model):
    client.force_login(supervisor)
    html = client.get(reverse("console:model")).content.decode()
    assert 'id="active-version">v1<' in html and "by sam" in html
    assert "Roll back to the previous model" in html and 'name="threshold"' in html
    client.force_login(triager)
    html = client.get(reverse("console:model")).content.decode()
    assert "Roll back" not in html and 'name="threshold"' not in html


@pytest.mark.django_db
def test_supervisor_rollback_reactivates_the_previous_model(client, supervisor, active_model, monkeypatch):
    from classifier import registry
    from classifier.models import ModelVersion

    monkeypatch.setattr(registry, "load", lambda version: None)  # no ONNX files in this test
    client.force_login(supervisor)
    assert client.post(reverse("console:rollback")).status_code == 302
    assert ModelVersion.objects.get(status="active").version == "v0"
    assert ModelVersion.objects.get(version="v1").status == "rejected"


@pytest.mark.django_db
def test_supervisor_retrain_now_enqueues_the_retrain_task(client, supervisor, monkeypatch):
    from classifier import tasks

    calls = []

    class Result:
        id = "task-1"

    class FakeTask:  # the real one would train a model right here (immediate backend)
        def enqueue(self, **kwargs):
            calls.append(kwargs)
            return Result()

    monkeypatch.setattr(tasks, "retrain_task", FakeTask())
    client.force_login(supervisor)
    response = client.post(reverse("console:retrain"), follow=True)
    assert calls == [{"force": True}]
    assert "Retraining queued (task task-1)" in response.content.decode()
