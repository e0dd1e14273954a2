"""classifier/quality.py: derived thresholds applied at promotion, spot checks, and the live quality
guard end to end with a deliberately bad (real ONNX) model."""
from __future__ import annotations

import json
import shutil

import pytest

from classifier.models import AutoTriageChange, AutoTriageSwitchOff, ModelVersion, RetrainRun, SpotCheck
from classifier.quality import auto_triage_policy, live_precision, quality_guard_check
from classifier.services import model_activate, model_register
from classifier.thresholds import HOLDOUT_PREDICTIONS_FILE
from console import services as console
from console.roles import setup_roles
from reports import services as report_services
from reports.models import Category, Report
from tests.fixtures_models import export_constant_model

pytestmark = pytest.mark.django_db
S = Report.Status


@pytest.fixture(scope="module")
def constant_pothole_model(tmp_path_factory):
    """Real ONNX: says "pothole" (p ~ 1) of every photo."""
    pytest.importorskip("torch")
    return export_constant_model(tmp_path_factory.mktemp("bad") / "bad", predicts="pothole")


def holdout_line(label: str, **probabilities: float) -> str:
    return json.dumps({"path": f"holdout/{label}.jpg", "label": label, "source": "local",
                       "probabilities": probabilities})


@pytest.fixture
def bad_model(constant_pothole_model, tmp_path):
    """bad_model(version, holdout=True): a copy of the constant model under `version`. Its holdout
    predictions (when given) say 200 potholes, all right at 0.99: pothole qualifies at 97 % / 95 %,
    graffiti and fly-tipping have no holdout photos. Live, it calls everything a pothole."""
    def make(version: str, *, holdout: bool = True):
        target = tmp_path / f"src-{version}"
        shutil.copytree(constant_pothole_model, target)
        meta = json.loads((target / "metadata.json").read_text())
        (target / "metadata.json").write_text(json.dumps({**meta, "version": version}))
        if holdout:
            lines = [holdout_line("pothole", pothole=0.99, graffiti=0.004, fly_tipping=0.003, no_issue=0.003)] * 200
            (target / HOLDOUT_PREDICTIONS_FILE).write_text("\n".join(lines) + "\n")
        return target
    return make


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """Run on_commit callbacks (classify task, guard, retrain queueing) as a real commit would."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def triager(db):
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user(username="tina", password="pw")
    user.groups.add(setup_roles()["triager"])
    return get_user_model().objects.get(pk=user.pk)


def activate(committed, path, user=None) -> ModelVersion:
    with committed():
        return model_activate(version=model_register(source_dir=path).version, user=user)


def new_report(committed, unique_jpeg) -> Report:
    with committed():
        report = report_services.report_create(photo=unique_jpeg(lat=51.5, lon=-0.1)).report
    return Report.objects.select_related("predicted_category").get(pk=report.pk)


def threshold(slug: str) -> float:
    return Category.objects.get(slug=slug).auto_triage_threshold


def test_activation_derives_thresholds_with_evidence_and_audits_each(bad_model, committed):
    mv = activate(committed, bad_model("bad-1"))
    mv.refresh_from_db()
    assert mv.thresholds["derived"] and mv.thresholds["n_holdout"] == 200
    assert (mv.thresholds["target_precision"], mv.thresholds["confidence"]) == (0.97, 0.95)
    pothole = mv.thresholds["per_class"]["pothole"]
    assert (pothole["threshold"], pothole["n"], pothole["correct"]) == (0.5, 200, 200)
    assert pothole["lower_bound"] == pytest.approx(0.05 ** (1 / 200))  # 0.985: fixed sequence, full level
    assert threshold("pothole") == 0.5
    assert mv.thresholds["per_class"]["graffiti"]["threshold"] is None  # no holdout photos of it
    assert set(auto_triage_policy().off) == {"graffiti", "fly_tipping"}
    changes = {c.category.slug: c for c in AutoTriageChange.objects.filter(kind="derived")}
    assert set(changes) == {"pothole", "graffiti", "fly_tipping"}  # the model's categories, not no_issue
    assert (changes["pothole"].old_threshold, changes["pothole"].new_threshold) == (0.85, 0.5)
    assert changes["pothole"].model_version == "bad-1" and changes["pothole"].actor_label == "system"
    assert "200 of 200 holdout photos right" in changes["pothole"].reason
    assert changes["graffiti"].new_threshold is None and "needs more verified photos" in changes["graffiti"].reason


def test_a_category_with_too_few_holdout_photos_does_not_auto_triage(committed, unique_jpeg, tmp_path,
                                                                     constant_pothole_model):
    path = tmp_path / "few"
    shutil.copytree(constant_pothole_model, path)
    (path / HOLDOUT_PREDICTIONS_FILE).write_text(
        "\n".join([holdout_line("pothole", pothole=0.99, graffiti=0.01)] * 40) + "\n")  # 40 right: not enough
    mv = activate(committed, path)
    mv.refresh_from_db()
    assert mv.thresholds["per_class"]["pothole"]["threshold"] is None
    report = new_report(committed, unique_jpeg)
    assert (report.predicted_label, report.status, report.auto_triaged) == ("pothole", S.NEEDS_REVIEW, False)


def test_without_holdout_predictions_the_thresholds_are_kept_and_it_says_so(bad_model, committed, unique_jpeg):
    Category.objects.filter(slug="pothole").update(auto_triage_threshold=0.6)
    mv = activate(committed, bad_model("plain", holdout=False))
    mv.refresh_from_db()
    assert mv.thresholds["derived"] is False and "kept" in mv.thresholds["reason"]
    assert threshold("pothole") == 0.6 and not AutoTriageChange.objects.exists()
    assert new_report(committed, unique_jpeg).status == S.TRIAGED  # 0.6 still applies


def test_an_override_is_audited_and_lifts_needs_more_photos(bad_model, committed, triager, unique_jpeg):
    from django.contrib.auth import get_user_model

    activate(committed, bad_model("bad-1"))
    supervisor = get_user_model().objects.create_user(username="sam", password="pw")
    supervisor.groups.add(setup_roles()["supervisor"])
    supervisor = get_user_model().objects.get(pk=supervisor.pk)
    graffiti = Category.objects.get(slug="graffiti")
    assert "graffiti" in auto_triage_policy().off
    console.category_set_threshold(category=graffiti, staff=supervisor, threshold=0.9,
                                   reason="graffiti photos look easy; watching the spot checks")
    change = AutoTriageChange.objects.get(kind="override")
    assert (change.category, change.actor, change.old_threshold, change.new_threshold) == (graffiti, supervisor,
                                                                                          None, 0.9)
    assert change.reason == "graffiti photos look easy; watching the spot checks" and change.model_version == "bad-1"
    assert threshold("graffiti") == 0.9 and "graffiti" not in auto_triage_policy().off


def test_spot_checks_go_to_review_marked_and_count_as_live_decisions(bad_model, committed, triager, unique_jpeg,
                                                                      settings):
    activate(committed, bad_model("bad-1"))
    settings.SPOT_CHECK_SHARE = 1.0  # every would-be auto-triage is drawn
    report = new_report(committed, unique_jpeg)
    assert (report.status, report.auto_triaged) == (S.NEEDS_REVIEW, False)
    check = SpotCheck.objects.get(report=report)
    assert (check.category.slug, check.model_version, check.share) == ("pothole", "bad-1", 1.0)
    assert report.events.filter(action="spot_check", note__startswith="spot check: would have been").exists()
    with committed():
        console.report_verify(report=report, staff=triager, category=Category.objects.get(slug="pothole"),
                              expected_version=report.version)
    [score] = live_precision(version="bad-1", since=ModelVersion.objects.get(version="bad-1").activated_at)
    assert (score.label, score.decisions, score.right) == ("pothole", 1, 1)


def test_guard_switches_a_bad_category_off_and_a_promotion_turns_it_back_on(
        bad_model, committed, triager, unique_jpeg, client, training_queue, settings):
    activate(committed, bad_model("bad-1"))
    graffiti = Category.objects.get(slug="graffiti")
    reports = [new_report(committed, unique_jpeg) for _ in range(10)]
    assert all(r.status == S.TRIAGED and r.auto_triaged and r.predicted_label == "pothole" for r in reports)
    assert client.get("/healthz").json()["model_quality"] == "ok"

    for n, report in enumerate(reports, 1):  # staff keep correcting the model
        with committed():
            console.report_verify(report=report, staff=triager, category=graffiti, expected_version=report.version)
        if n == 9:  # nine decisions: not yet enough evidence
            assert not AutoTriageSwitchOff.objects.exists()

    off = AutoTriageSwitchOff.objects.get()
    assert (off.category.slug, off.model_version, off.switched_on_at) == ("pothole", "bad-1", None)
    assert (off.evidence["decisions"], off.evidence["right"]) == (10, 0)
    assert off.evidence["wilson_high"] == pytest.approx(0.2775, abs=1e-3) and off.evidence["target_precision"] == 0.97
    assert "0 of 10 staff decisions" in off.reason
    event = AutoTriageChange.objects.get(kind="switched_off")
    assert (event.category.slug, event.new_threshold, event.actor_label) == ("pothole", None, "quality guard")
    body = client.get("/healthz").json()
    assert body["model_quality"] == "degraded" and body["auto_triage_off"] == ["pothole"]
    assert body["classifier"] == "ok" and body["status"] == "ok"  # still serving; staff review instead
    run = RetrainRun.objects.get()  # the guard's; the correction trigger waits while it is open
    assert (run.trigger, run.state, run.active_version, off.retrain_run) == ("quality", "pending", "bad-1", run)
    assert run.reason.startswith("live quality guard: Pothole: 0 of 10") and run.force
    assert [r.kwargs for r in training_queue.results] == [{"run_id": run.pk}]
    assert quality_guard_check() == []  # once per switch-off

    later = new_report(committed, unique_jpeg)
    assert (later.predicted_label, later.status, later.auto_triaged) == ("pothole", S.NEEDS_REVIEW, False)

    activate(committed, bad_model("bad-2"))  # a promotion: a new active model
    off.refresh_from_db()
    assert off.switched_on_at is not None and off.switched_on_reason == "model bad-2 activated"
    assert AutoTriageChange.objects.filter(kind="switched_on", category__slug="pothole").exists()
    assert client.get("/healthz").json()["model_quality"] == "ok"
    assert new_report(committed, unique_jpeg).status == S.TRIAGED


def test_guard_needs_credible_evidence(bad_model, committed, triager, unique_jpeg, training_queue):
    activate(committed, bad_model("bad-1"))
    pothole, graffiti = Category.objects.get(slug="pothole"), Category.objects.get(slug="graffiti")
    reports = [new_report(committed, unique_jpeg) for _ in range(10)]
    for report in reports[:9]:
        with committed():
            console.report_verify(report=report, staff=triager, category=pothole, expected_version=report.version)
    with committed():  # 9 of 10 right: Wilson upper 0.98 >= 0.97, not credibly below
        console.report_verify(report=reports[9], staff=triager, category=graffiti, expected_version=reports[9].version)
    assert not AutoTriageSwitchOff.objects.exists() and not RetrainRun.objects.filter(trigger="quality").exists()
