import json
import threading

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import IntegrityError, connection

from classifier import registry
from classifier.health import classifier_health
from classifier.models import ModelVersion
from classifier.services import classify_pending, model_activate, model_register, model_rollback
from reports import services as report_services
from reports.models import Category, Report

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def run_on_commit(django_capture_on_commit_callbacks):
    """Run transaction.on_commit callbacks (the classify task) as a real commit would."""
    global committed
    committed = lambda: django_capture_on_commit_callbacks(execute=True)  # noqa: E731


def new_report(unique_jpeg, **kwargs):
    with committed():
        return report_services.report_create(photo=unique_jpeg(lat=51.5, lon=-0.1), **kwargs).report


def activate(version):
    with committed():
        return model_activate(version=version)


def test_register_validates_and_copies_into_model_root(model_dir, model_root):
    mv = model_register(source_dir=model_dir("v1"))
    assert mv.status == "candidate" and mv.classes == ["fly_tipping", "graffiti", "no_issue", "pothole"]
    assert (model_root / "v1" / "model.onnx").is_file()


def test_register_rejects_sha_mismatch_and_unknown_classes(model_dir, model_root):
    bad = model_dir("bad")
    meta = json.loads((bad / "metadata.json").read_text())
    (bad / "metadata.json").write_text(json.dumps({**meta, "onnx_sha256": "0" * 64}))
    with pytest.raises(ValidationError, match="sha256"):
        model_register(source_dir=bad)
    odd = model_dir("odd")
    (odd / "metadata.json").write_text(json.dumps({**meta, "version": "odd", "classes": ["pothole", "unicorn", "no_issue", "graffiti"]}))
    with pytest.raises(ValidationError, match="unicorn"):
        model_register(source_dir=odd)
    assert not ModelVersion.objects.exists() and not (model_root / "odd").exists()


def test_exactly_one_active_model_is_enforced_by_the_database(model_dir):
    model_register(source_dir=model_dir("a"))
    b = model_register(source_dir=model_dir("b"))
    model_activate(version="a")
    with pytest.raises(IntegrityError):
        ModelVersion.objects.filter(pk=b.pk).update(status="active")


def test_cold_start_sends_reports_straight_to_review(unique_jpeg):
    report = new_report(unique_jpeg)
    report.refresh_from_db()
    assert report.status == Report.Status.NEEDS_REVIEW and report.predicted_label == ""
    assert classifier_health()["classifier"] == "no_model"


def test_active_model_classifies_and_routes_new_reports(model_dir, unique_jpeg):
    Category.objects.update(auto_triage_threshold=0.0)  # any category prediction is "confident"
    model_activate(version=model_register(source_dir=model_dir("v1")).version)
    report = new_report(unique_jpeg)
    report.refresh_from_db()
    top, p = report.predicted_top_k[0]
    assert report.model_version == "v1" and report.predicted_label == top
    assert report.predicted_probability == pytest.approx(p, abs=1e-6)  # top_k is rounded to 6 places
    assert sum(q for _, q in report.predicted_top_k) <= 1.0 + 1e-6
    if top == "no_issue":
        assert report.status == "needs_review" and report.possibly_not_issue
    else:
        assert report.status == "triaged" and report.auto_triaged and report.predicted_category.slug == top
    assert report.citizen_category is None and report.final_category is None  # other labels untouched
    assert report.events.filter(action="classified", actor_label="model:v1").count() == 1


def test_high_threshold_means_needs_review(model_dir, unique_jpeg):
    Category.objects.update(auto_triage_threshold=1.0)
    model_activate(version=model_register(source_dir=model_dir("v1")).version)
    report = new_report(unique_jpeg, category="graffiti")
    report.refresh_from_db()
    assert report.status == "needs_review" and not report.auto_triaged
    assert report.citizen_category.slug == "graffiti"


def test_classification_is_idempotent(model_dir, unique_jpeg):
    from classifier.services import classify_reports

    model_activate(version=model_register(source_dir=model_dir("v1")).version)
    report = new_report(unique_jpeg)
    assert classify_reports([report.pk]) == 0  # already classified by the on_commit task
    assert report.events.filter(action="classified").count() == 1


def test_corrupt_active_model_keeps_reports_pending_until_fixed(model_dir, model_root, unique_jpeg):
    model_activate(version=model_register(source_dir=model_dir("v1")).version)
    (model_root / "v1" / "model.onnx").write_bytes(b"garbage")
    registry.reset()
    report = new_report(unique_jpeg)
    report.refresh_from_db()
    assert report.status == Report.Status.PENDING  # never lost, never guessed
    health = classifier_health()
    assert health["classifier"] == "degraded" and "sha256" in health["error"]
    activate(model_register(source_dir=model_dir("v2")).version)  # runs classify_pending on commit
    report.refresh_from_db()
    assert report.status != Report.Status.PENDING and report.model_version == "v2"


def test_new_model_that_fails_to_load_cannot_be_activated(model_dir, model_root):
    model_activate(version=model_register(source_dir=model_dir("v1")).version)
    model_register(source_dir=model_dir("v2"))
    (model_root / "v2" / "model.onnx").write_bytes(b"garbage")
    with pytest.raises(ValidationError, match="cannot be loaded"):
        model_activate(version="v2")
    assert ModelVersion.objects.get(status="active").version == "v1"


def test_process_keeps_serving_previous_model_if_new_one_breaks_after_activation(model_dir, model_root):
    model_activate(version=model_register(source_dir=model_dir("v1")).version)
    assert registry.active_classifier().model_version == "v1"
    model_activate(version=model_register(source_dir=model_dir("v2")).version)
    (model_root / "v2" / "model.onnx").write_bytes(b"garbage")  # files lost after activation
    assert registry.active_classifier().model_version == "v1"
    assert "v2" not in (registry.status()["loaded_version"] or "") and registry.status()["error"]


def test_hot_swap_while_requests_run(model_dir, transactional_db):
    model_activate(version=model_register(source_dir=model_dir("v1")).version)
    model_register(source_dir=model_dir("v2"))
    from tests.images import jpeg

    photo = jpeg(size=(320, 240))
    seen, errors = set(), []

    def worker():
        for _ in range(8):
            try:
                seen.add(registry.active_classifier().predict([photo])[0].model_version)
            except Exception as exc:  # any failure during the swap is a bug
                errors.append(exc)
        connection.close()

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    model_activate(version="v2")
    for t in threads:
        t.join()
    assert not errors
    assert registry.active_classifier().model_version == "v2" and seen <= {"v1", "v2"}


def test_rollback_reactivates_previous_and_rejects_current(model_dir):
    model_activate(version=model_register(source_dir=model_dir("v1")).version)
    model_activate(version=model_register(source_dir=model_dir("v2")).version)
    assert model_rollback().version == "v1"
    assert dict(ModelVersion.objects.values_list("version", "status")) == {"v1": "active", "v2": "rejected"}


def test_commands_register_activate_and_classify_pending(model_dir, unique_jpeg, capsys):
    call_command("register_model", str(model_dir("v1")))
    call_command("activate_model", "v1")
    assert "active model: v1" in capsys.readouterr().out
    ModelVersion.objects.update(status="retired")  # simulate an outage: nothing active...
    registry.reset()
    report = new_report(unique_jpeg)  # ...so the report waits
    assert Report.objects.get(pk=report.pk).status == Report.Status.PENDING
    ModelVersion.objects.filter(version="v1").update(status="active")
    call_command("classify_pending")
    assert Report.objects.get(pk=report.pk).model_version == "v1"
    assert classify_pending() == 0


def test_healthz_shows_active_model_and_providers(client, model_dir):
    model_activate(version=model_register(source_dir=model_dir("v1")).version)
    body = client.get("/healthz").json()
    assert body["active_model"] == "v1" and body["classifier"] == "ok"
    assert "CPUExecutionProvider" in body["providers"]


def test_thank_you_page_shows_the_suggestion_once_known(client, model_dir, unique_jpeg):
    Category.objects.update(auto_triage_threshold=0.0)
    activate(model_register(source_dir=model_dir("v1")).version)
    report = new_report(unique_jpeg)
    report.refresh_from_db()
    page = client.get(f"/report/{report.service_request_id}/thanks/").content.decode()
    if report.predicted_category and report.predicted_probability >= 0.5:
        assert f"Looks like: <strong>{report.predicted_category.name}</strong>" in page
    else:
        assert "Our team will take a look" in page
    assert "data-poll" not in page  # nothing left to wait for


def test_one_unreadable_photo_does_not_hold_its_batch_pending(model_dir, unique_jpeg, media_dirs):
    from classifier.services import classify_reports

    good = report_services.report_create(photo=unique_jpeg(lat=51.5, lon=-0.1), classify=False).report
    bad = report_services.report_create(photo=unique_jpeg(lat=51.5, lon=-0.1), classify=False).report
    with open(bad.photo_original.path, "wb") as f:  # the stored original got damaged after intake
        f.write(b"\xff\xd8 not really a jpeg")
    activate(model_register(source_dir=model_dir("v1")).version)
    classify_reports([good.pk, bad.pk])
    good.refresh_from_db()
    bad.refresh_from_db()
    assert good.model_version == "v1" and good.status != Report.Status.PENDING
    assert bad.status == Report.Status.NEEDS_REVIEW and bad.model_version == ""
    assert bad.events.filter(action="routed", note__contains="could not read").exists()


def test_system_checks_report_both_runtimes_and_a_missing_active_model(model_dir, model_root, monkeypatch):
    from importlib import metadata

    from classifier.checks import check_classifier

    model_activate(version=model_register(source_dir=model_dir("v1")).version)
    (model_root / "v1" / "model.onnx").unlink()
    real_version = metadata.version
    monkeypatch.setattr(metadata, "version", lambda name: "1.31.1" if name == "onnxruntime-gpu" else real_version(name))
    ids = {p.id for p in check_classifier()}
    assert ids == {"classifier.E002", "classifier.W001"}
