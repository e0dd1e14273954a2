"""classify_reports runs the model with no row locked, so staff can act on a report while
the model looks at it; the classifier then leaves the staff decision alone."""
from __future__ import annotations

import threading

import pytest
from django.contrib.auth import get_user_model
from django.db import DatabaseError, connection, transaction

from classifier.onnx import OnnxClassifier
from classifier.services import classify_reports, model_activate, model_register
from console import services as console_services
from reports.models import Report
from reports.services import report_create

BACKEND = f"{__name__}.StaffRejectsWhileTheModelRuns"


class StaffRejectsWhileTheModelRuns(OnnxClassifier):
    """The real ONNX classifier. While it predicts for `report_pk`, a triager on another
    connection rejects that report, giving up at once (NOWAIT) if its row is locked."""

    report_pk: int | None = None
    staff_pk: int | None = None
    outcomes: list[str] = []

    def predict(self, images):
        if type(self).report_pk is not None:
            thread = threading.Thread(target=_reject_now, args=(type(self).report_pk, type(self).staff_pk))
            thread.start()
            thread.join(timeout=30)
        return super().predict(images)


def _reject_now(report_pk: int, staff_pk: int) -> None:
    outcomes = StaffRejectsWhileTheModelRuns.outcomes
    try:
        with transaction.atomic():
            report = Report.objects.select_for_update(nowait=True).get(pk=report_pk)
            console_services.report_set_status(report=report, staff=get_user_model().objects.get(pk=staff_pk),
                                               status=Report.Status.REJECTED, expected_version=report.version,
                                               reason="private_land")
        outcomes.append("rejected")
    except DatabaseError as exc:
        outcomes.append(f"locked: {exc}")
    finally:
        connection.close()


@pytest.fixture
def staff_during_inference(settings):
    settings.CLASSIFIER = {**settings.CLASSIFIER, "BACKEND": BACKEND}
    StaffRejectsWhileTheModelRuns.outcomes = []
    yield StaffRejectsWhileTheModelRuns
    StaffRejectsWhileTheModelRuns.report_pk = StaffRejectsWhileTheModelRuns.staff_pk = None


def test_staff_can_reject_a_report_while_the_model_runs_and_the_classifier_leaves_it(
        transactional_db, model_dir, unique_jpeg, staff_during_inference):
    model_activate(version=model_register(source_dir=model_dir("v1")).version)
    report = report_create(photo=unique_jpeg(lat=51.5, lon=-0.1), classify=False).report
    staff_during_inference.report_pk = report.pk
    staff_during_inference.staff_pk = get_user_model().objects.create_superuser("sup", password="pw").pk

    assert classify_reports([report.pk]) == 0
    assert staff_during_inference.outcomes == ["rejected"]  # the row was not locked during inference
    report.refresh_from_db()
    assert (report.status, report.reject_reason, report.model_version) == (Report.Status.REJECTED, "private_land", "")
    assert not report.events.filter(action="classified").exists()
