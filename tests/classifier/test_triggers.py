"""classifier/triggers.py: counting staff corrections of the active model, and queueing one retrain."""
from __future__ import annotations

import datetime as dt
import itertools

import pytest
from django.utils import timezone

from classifier.models import ModelVersion, RetrainRun
from classifier.triggers import (CorrectionEvidence, LabelEvidence, correction_evidence, due_triggers,
                                 is_correction, retrain_if_evidence, trigger_status)
from reports.models import Category, Report
from reports.services import report_create
from tests import images

pytestmark = pytest.mark.django_db
S = Report.Status
_seq = itertools.count(1)


def activate(version: str, *, minutes_ago: float = 60) -> ModelVersion:
    ModelVersion.objects.filter(status="active").update(status="retired")
    return ModelVersion.objects.create(version=version, path=version, sha256="0" * 64, status="active",
                                       classes=["fly_tipping", "graffiti", "no_issue", "pothole"],
                                       activated_at=timezone.now() - dt.timedelta(minutes=minutes_ago))


def labelled(*, predicted: str, label: str | None, version: str = "v1", verified_minutes_ago: float = 1) -> Report:
    """A report `version` classified as `predicted`, then labelled by staff: a category slug,
    "reject" (not an issue) or None (not labelled yet). Built by hand, as the services would leave it."""
    n = next(_seq)
    report = report_create(photo=images.jpeg(color=((n * 37) % 256, (n * 91) % 256, 60), size=(64, 48)),
                           latitude=51.5, longitude=-0.12).report
    fields = dict(predicted_label=predicted, model_version=version, classified_at=timezone.now(),
                  status=S.NEEDS_REVIEW)
    if label == "reject":
        fields.update(status=S.REJECTED, verified_at=timezone.now() - dt.timedelta(minutes=verified_minutes_ago))
    elif label is not None:
        fields.update(status=S.TRIAGED, final_category=Category.objects.get(slug=label),
                      verified_at=timezone.now() - dt.timedelta(minutes=verified_minutes_ago))
    Report.objects.filter(pk=report.pk).update(**fields)
    return Report.objects.get(pk=report.pk)


def test_a_correction_is_a_label_other_than_the_prediction():
    assert is_correction(predicted="pothole", label="graffiti")
    assert is_correction(predicted="fly_tipping", label="no_issue")  # staff rejected a model's category
    assert not is_correction(predicted="pothole", label="pothole")
    assert not is_correction(predicted="no_issue", label="no_issue")  # model said no issue, staff rejected


def test_counting_on_hand_built_reports():
    active = activate("v1")
    labelled(predicted="pothole", label="pothole")
    labelled(predicted="pothole", label="graffiti")  # correction
    labelled(predicted="no_issue", label="reject")  # agreement
    labelled(predicted="fly_tipping", label="reject")  # correction: staff say not an issue
    labelled(predicted="no_issue", label="fly_tipping")  # correction
    labelled(predicted="pothole", label=None)  # not labelled yet
    labelled(predicted="pothole", label="graffiti", version="v0")  # another model's prediction
    labelled(predicted="pothole", label="graffiti", verified_minutes_ago=120)  # before this activation
    ev = correction_evidence(version="v1", since=active.activated_at)
    assert (ev.verified, ev.corrections) == (5, 3)
    per = {e.label: (e.corrected, e.verified) for e in ev.per_label}
    assert per == {"pothole": (0, 1), "graffiti": (1, 1), "no_issue": (1, 2), "fly_tipping": (1, 1)}


def test_agreement_alone_never_triggers(settings, training_queue):
    settings.RETRAIN_AFTER_CORRECTIONS = 3
    settings.RETRAIN_CORRECTION_MIN_VERIFIED = 3
    activate("v1")
    for _ in range(5):
        labelled(predicted="pothole", label="pothole")
        labelled(predicted="no_issue", label="reject")
    assert retrain_if_evidence() is None
    assert not RetrainRun.objects.exists() and training_queue.results == []


def test_due_triggers_count_and_share_thresholds():
    ev = CorrectionEvidence(version="v1", since=None, verified=30, corrections=9, per_label=(
        LabelEvidence("pothole", verified=20, corrected=4), LabelEvidence("graffiti", verified=9, corrected=5),
        LabelEvidence("no_issue", verified=1, corrected=0)))
    due = due_triggers(ev, after_corrections=10, share=0.15, min_verified=10)
    assert [t.key for t in due] == ["share:pothole"]  # 9 < 10 corrections; graffiti has too few verified
    assert due[0].reason == "pothole: 4 of 20 verified corrected (20%; threshold 15% of at least 10)"
    due = due_triggers(ev, after_corrections=9, share=0.25, min_verified=10)
    assert [t.key for t in due] == ["corrections"]  # 20% < 25%
    assert due[0].reason == "9 staff corrections of v1 since activation (threshold 9)"
    assert due_triggers(ev, after_corrections=0, share=0, min_verified=0) == []  # 0 turns both off


def test_crossing_the_threshold_queues_exactly_one_retrain(settings, training_queue,
                                                           django_capture_on_commit_callbacks):
    settings.RETRAIN_AFTER_CORRECTIONS = 3
    settings.RETRAIN_CORRECTION_SHARE = 0  # only the count in this test
    V = "m20261201-000000"
    activate(V)
    for _ in range(2):
        labelled(predicted="pothole", label="graffiti", version=V)
        assert retrain_if_evidence() is None
    labelled(predicted="pothole", label="graffiti", version=V)
    with django_capture_on_commit_callbacks(execute=True):
        run = retrain_if_evidence()
    assert run is not None and run.state == "pending" and run.trigger == "corrections" and run.force
    assert run.reason == "3 staff corrections of m20261201-000000 since activation (threshold 3)"
    assert run.active_version == "m20261201-000000" and run.evidence["keys"] == ["corrections"]
    assert [r.kwargs for r in training_queue.results] == [{"run_id": run.pk}]
    assert training_queue.results[0].task.name == "retrain_task"
    # More corrections while it is pending, then running: nothing more is queued.
    labelled(predicted="pothole", label="graffiti", version=V)
    assert retrain_if_evidence() is None
    RetrainRun.objects.filter(pk=run.pk).update(state="running")
    assert retrain_if_evidence() is None
    # It ran (the candidate was rejected, the same model stays active): the trigger does not fire again.
    RetrainRun.objects.filter(pk=run.pk).update(state="done", outcome="rejected")
    labelled(predicted="pothole", label="graffiti", version=V)
    assert retrain_if_evidence() is None
    assert RetrainRun.objects.count() == 1 and len(training_queue.results) == 1


def test_a_new_active_model_starts_counting_afresh(settings, training_queue):
    settings.RETRAIN_AFTER_CORRECTIONS = 2
    settings.RETRAIN_CORRECTION_SHARE = 0
    activate("v1")
    labelled(predicted="pothole", label="graffiti")
    labelled(predicted="pothole", label="graffiti")
    first = retrain_if_evidence()
    RetrainRun.objects.filter(pk=first.pk).update(state="done", outcome="promoted")
    activate("v2", minutes_ago=0.5)
    assert retrain_if_evidence() is None  # v1's corrections do not count against v2
    labelled(predicted="pothole", label="graffiti", version="v2", verified_minutes_ago=0.1)
    assert retrain_if_evidence() is None
    labelled(predicted="pothole", label="graffiti", version="v2", verified_minutes_ago=0.1)
    second = retrain_if_evidence()
    assert second is not None and second.active_version == "v2" and "of v2 since activation" in second.reason


def test_a_category_share_triggers_once_per_label(settings, training_queue):
    settings.RETRAIN_AFTER_CORRECTIONS = 100  # out of reach here
    settings.RETRAIN_CORRECTION_SHARE = 0.15
    settings.RETRAIN_CORRECTION_MIN_VERIFIED = 10
    activate("v1")
    for _ in range(8):
        labelled(predicted="pothole", label="pothole")
    labelled(predicted="graffiti", label="pothole")
    assert retrain_if_evidence() is None  # 1 of 9: too few verified
    labelled(predicted="graffiti", label="pothole")
    run = retrain_if_evidence()  # 2 of 10 = 20%
    assert run is not None and run.evidence["keys"] == ["share:pothole"]
    assert run.reason == "pothole: 2 of 10 verified corrected (20%; threshold 15% of at least 10)"
    RetrainRun.objects.filter(pk=run.pk).update(state="done", outcome="rejected")
    labelled(predicted="graffiti", label="pothole")
    assert retrain_if_evidence() is None  # pothole fired for v1 already
    for _ in range(10):  # fly-tipping called "no issue": another label's share
        labelled(predicted="no_issue", label="fly_tipping")
    second = retrain_if_evidence()
    assert second is not None and second.evidence["keys"] == ["share:fly_tipping"]
    assert "fly_tipping: 10 of 10 verified corrected (100%" in second.reason
    status = trigger_status(active=ModelVersion.objects.get(status="active"))
    assert status.fired == {"share:pothole", "share:fly_tipping"} and status.evidence.corrections == 13
