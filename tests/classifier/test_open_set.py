"""Open set in serving: an "unknown" photo goes to review with the reason, never auto-triaged, never "not an issue"."""
import json

import pytest

from reports.routing import route
from classifier.services import model_activate, model_register
from reports import services as report_services
from reports.models import Category
from tests.fixtures_models import export_constant_model

pytestmark = pytest.mark.django_db


def test_unknown_is_never_auto_triaged_and_never_possibly_not_an_issue():
    thresholds = {"pothole": 0.5}
    sure = route(top_k=[("pothole", 0.99)], thresholds=thresholds, default_threshold=0.5, citizen_slug=None)
    assert sure.auto_triaged
    d = route(top_k=[("pothole", 0.99)], thresholds=thresholds, default_threshold=0.5, citizen_slug=None, unknown=True)
    assert (d.status, d.auto_triaged, d.spot_check) == ("needs_review", False, False)
    n = route(top_k=[("no_issue", 0.99)], thresholds=thresholds, default_threshold=0.5, citizen_slug=None, unknown=True)
    assert (n.status, n.possibly_not_issue) == ("needs_review", False)


def _classify(tmp_path, unique_jpeg, django_capture_on_commit_callbacks, *, predicts, threshold):
    Category.objects.update(auto_triage_threshold=0.5)
    src = export_constant_model(tmp_path / "m", predicts=predicts, version=f"os-{threshold}",
                                unknown_threshold=threshold)
    model_activate(version=model_register(source_dir=src).version)
    Category.objects.update(auto_triage_threshold=0.5)  # activation derived none (no holdout predictions)
    with django_capture_on_commit_callbacks(execute=True):
        report = report_services.report_create(photo=unique_jpeg(lat=51.5, lon=-0.1)).report
    report.refresh_from_db()
    return report


def test_a_photo_the_model_flags_unknown_goes_to_review_with_its_score(tmp_path, unique_jpeg,
                                                                        django_capture_on_commit_callbacks):
    report = _classify(tmp_path, unique_jpeg, django_capture_on_commit_callbacks, predicts="pothole", threshold=0.0)
    assert report.predicted_unknown and 0.0 <= report.unknown_score <= 2.0
    assert report.predicted_label == "pothole" and report.predicted_probability > 0.99
    assert (report.status, report.auto_triaged) == ("needs_review", False)
    note = json.loads(report.events.get(action="classified").note)
    assert note["unknown"] is True and note["unknown_score"] == pytest.approx(report.unknown_score)


def test_unknown_no_issue_is_not_flagged_possibly_not_an_issue(tmp_path, unique_jpeg, django_capture_on_commit_callbacks):
    report = _classify(tmp_path, unique_jpeg, django_capture_on_commit_callbacks, predicts="no_issue", threshold=0.0)
    assert report.predicted_unknown and not report.possibly_not_issue and report.status == "needs_review"


def test_a_known_photo_routes_as_before(tmp_path, unique_jpeg, django_capture_on_commit_callbacks):
    report = _classify(tmp_path, unique_jpeg, django_capture_on_commit_callbacks, predicts="pothole", threshold=2.5)
    assert not report.predicted_unknown and report.unknown_score is not None
    assert (report.status, report.auto_triaged) == ("triaged", True)
