import json

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection
from PIL import Image

from classifier.models import ModelVersion, TrainingSplit
from classifier.retrain import (LOCK_KEY, data_shortfalls, gate, gate_slices, gates_to_apply, photos_right,
                                retrain)
from classifier.services import model_activate, model_register
from classifier.training_data import assign_splits, export_training_set
from tests import images
from tests.labels import verified_report

pytestmark = pytest.mark.django_db
LABELS = ("pothole", "graffiti", "fly_tipping", "no_issue")


def metrics(f1, recalls):
    return {"macro_f1": f1, "per_class": {c: {"recall": r} for c, r in recalls.items()}}


def test_gate_promotes_a_better_candidate():
    d = gate(metrics(0.95, {"pothole": 0.9}), metrics(0.90, {"pothole": 0.9}), max_f1_drop=0.01, max_recall_drop=0.05, min_f1=0.5)
    assert d.promote


def test_gate_rejects_a_worse_candidate_or_a_recall_collapse():
    worse = gate(metrics(0.85, {"pothole": 0.9}), metrics(0.90, {"pothole": 0.9}), max_f1_drop=0.01, max_recall_drop=0.05, min_f1=0.5)
    assert not worse.promote and "below the active" in worse.reasons[0]
    collapse = gate(metrics(0.91, {"pothole": 0.7, "graffiti": 1.0}), metrics(0.90, {"pothole": 0.9, "graffiti": 0.9}),
                    max_f1_drop=0.01, max_recall_drop=0.05, min_f1=0.5)
    assert not collapse.promote and any("recall of pothole" in r for r in collapse.reasons)


def with_support(f1, per_class):
    """Metrics with each class's (recall, support)."""
    return {"macro_f1": f1, "per_class": {c: {"recall": r, "support": n} for c, (r, n) in per_class.items()}}


def test_photos_right_by_hand():
    assert photos_right(with_support(0.8, {"no_issue": (0.5, 2), "fly_tipping": (0.75, 4)})) == {"no_issue": 1,
                                                                                              "fly_tipping": 3}
    assert photos_right(metrics(0.8, {"no_issue": 0.5})) is None  # supports unknown: no grace


def test_one_photo_flipping_on_a_small_slice_does_not_decide_but_two_do():
    # The council's first holdout: 2 clean, 4 fly-tipping. Active gets all 6 right.
    active = with_support(1.0, {"no_issue": (1.0, 2), "fly_tipping": (1.0, 4)})
    one_flip = with_support(0.733, {"no_issue": (0.5, 2), "fly_tipping": (1.0, 4)})  # a clean one called fly-tipping
    two_flips = with_support(0.333, {"no_issue": (0.0, 2), "fly_tipping": (1.0, 4)})
    strict = gate(one_flip, active, **LIMITS)
    assert not strict.promote  # today's limits alone: one photo rejects
    assert gate(one_flip, active, **LIMITS, grace_photos=1).promote
    worse = gate(two_flips, active, **LIMITS, grace_photos=1)
    assert not worse.promote and any("recall of no_issue drops 1.000" in r for r in worse.reasons)
    # Both photos of a two-photo slice wrong: two photos, not one.
    pair = with_support(1.0, {"no_issue": (1.0, 1), "pothole": (1.0, 1)})
    assert not gate(with_support(0.0, {"no_issue": (0.0, 1), "pothole": (0.0, 1)}), pair, **LIMITS, grace_photos=1).promote
    # On a 40-per-class holdout losing 4 potholes is 10 points of recall and 4 photos: rejected.
    big_active = with_support(0.95, {"pothole": (0.95, 40), "no_issue": (0.95, 40)})
    big_worse = with_support(0.90, {"pothole": (0.85, 40), "no_issue": (0.95, 40)})
    assert not gate(big_worse, big_active, **LIMITS, grace_photos=1).promote


def test_gate_for_the_first_model_uses_a_floor():
    assert gate(metrics(0.6, {}), None, max_f1_drop=0, max_recall_drop=0, min_f1=0.5).promote
    assert not gate(metrics(0.4, {}), None, max_f1_drop=0, max_recall_drop=0, min_f1=0.5).promote


LIMITS = dict(max_f1_drop=0.01, max_recall_drop=0.05, min_f1=0.5)


def test_local_gate_applies_once_the_local_holdout_has_two_classes():
    def summary(local):
        return {"per_source": {"bootstrap": {"holdout_per_class": {"pothole": 4, "no_issue": 4}},
                               "local": {"holdout_per_class": local}}}
    assert gates_to_apply(summary({})) == ["overall"]
    assert gates_to_apply(summary({"pothole": 3})) == ["overall"]
    assert gates_to_apply(summary({"pothole": 3, "no_issue": 1})) == ["overall", "local"]
    assert gates_to_apply({"holdout_per_class": {"pothole": 2}}) == ["overall"]  # a summary from before sources


def test_candidate_worse_on_local_photos_but_fine_on_bootstrap_is_rejected():
    fine = metrics(0.95, {"pothole": 0.95, "no_issue": 0.95})
    candidate = {"overall": fine, "bootstrap": fine, "local": metrics(0.60, {"pothole": 0.4, "no_issue": 0.8})}
    active = {"overall": metrics(0.94, {"pothole": 0.94, "no_issue": 0.94}), "bootstrap": fine,
              "local": metrics(0.85, {"pothole": 0.85, "no_issue": 0.85})}
    decision = gate_slices(candidate, active, slices=["overall", "local"], **LIMITS)
    assert not decision.promote and decision.slices == {"overall": True, "local": False}
    assert any(r.startswith("this council's photos: macro-F1 0.600 is 0.250 below") for r in decision.reasons)
    assert any(r.startswith("whole holdout: macro-F1 0.950 vs active 0.940") for r in decision.reasons)
    # Judged on the whole holdout alone (no local gate yet), the same candidate would pass.
    assert gate_slices(candidate, active, slices=["overall"], **LIMITS).promote


def test_first_model_must_reach_the_floor_on_every_applied_slice():
    candidate = {"overall": metrics(0.9, {}), "local": metrics(0.4, {})}
    decision = gate_slices(candidate, None, slices=["overall", "local"], **LIMITS)
    assert not decision.promote and decision.slices == {"overall": True, "local": False}
    assert gate_slices(candidate, None, slices=["overall"], **LIMITS).promote


def write_folder(root, per_class, seed=0):
    return images.labelled_folder(root, per_class, seed=seed, labels=LABELS)


def test_holdout_is_stratified_frozen_and_never_in_train(tmp_path, settings):
    settings.HOLDOUT_SHARE = 0.25
    settings.MIN_PHOTOS_NEW_CLASS = 1  # not about the new-class bar
    call_command("import_labelled_photos", str(write_folder(tmp_path / "a", 8, seed=1)))
    first = assign_splits()
    assert dict(first) == {("bootstrap", label): 2 for label in LABELS}
    frozen = dict(TrainingSplit.objects.values_list("example_id", "split"))
    call_command("import_labelled_photos", str(write_folder(tmp_path / "b", 8, seed=2)))
    summary = export_training_set(tmp_path / "export")
    after = dict(TrainingSplit.objects.values_list("example_id", "split"))
    assert all(after[k] == v for k, v in frozen.items())  # nothing moved
    assert summary["holdout_per_class"] == {"fly_tipping": 4, "graffiti": 4, "no_issue": 4, "pothole": 4}
    rows = [json.loads(line) for line in (tmp_path / "export" / "manifest.jsonl").read_text().splitlines()]
    holdout_ids = {r["example_id"] for r in rows if r["split"] == "holdout"}
    train_ids = {r["example_id"] for r in rows if r["split"] == "train"}
    assert holdout_ids and not holdout_ids & train_ids and len(rows) == 64
    img = Image.open(tmp_path / "export" / rows[0]["path"])
    assert img.format == "JPEG" and dict(img.getexif()) == {}


def test_retrain_skips_with_too_few_new_labels(tmp_path, settings):
    settings.RETRAIN_DIR = tmp_path / "runs"
    call_command("import_labelled_photos", str(write_folder(tmp_path / "a", 2)))
    report = retrain()
    assert report["outcome"] == "skipped" and "new verified labels" in report["reason"]
    assert (tmp_path / "runs").glob("*/report.md")


def test_retrain_now_on_almost_nothing_trains_and_promotes_nothing(tmp_path, settings):
    """Issue 13 item 11: "Retrain now" (forced) with 7 labels once promoted a model judged on a
    2-photo holdout. Below the minimums nothing is trained, and the run says what is missing."""
    settings.RETRAIN_DIR = tmp_path / "runs"
    settings.MIN_PHOTOS_NEW_CLASS = 1  # not about the new-class bar
    settings.TRAINING_PYTHON = "/bin/false"  # training would fail the test loudly
    for label, n in (("pothole", 5), ("graffiti", 2)):
        for i in range(n):
            verified_report(images.jpeg(color=(20 * i + 7, len(label) * 9, n * 31)), label)
    report = retrain(force=True)
    assert report["outcome"] == "skipped" and "too little data" in report["reason"]
    assert "graffiti has" in report["reason"] and "holdout" in report["reason"]
    assert ModelVersion.objects.count() == 0
    settings.RETRAIN_MIN_LABELS_PER_CLASS, settings.RETRAIN_MIN_HOLDOUT = 1, 1
    assert data_shortfalls(train_per_class={"pothole": 4, "graffiti": 2}, holdout=1) == []


def test_retrain_is_skipped_while_another_run_holds_the_lock(tmp_path, settings):
    settings.RETRAIN_DIR = tmp_path / "runs"
    params = connection.get_connection_params()
    with psycopg.connect(**{k: v for k, v in params.items() if k in ("host", "port", "user", "dbname", "password")}, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", [LOCK_KEY])
        assert retrain(force=True)["outcome"] == "skipped"
        other.execute("SELECT pg_advisory_unlock(%s)", [LOCK_KEY])  # closing would too, but asynchronously
    assert retrain()["outcome"] == "skipped"  # lock free again: skipped only for lack of labels
    assert "lock" not in retrain()["reason"]


def test_crash_in_training_leaves_the_active_model_untouched_and_releases_the_lock(tmp_path, settings, model_dir):
    settings.RETRAIN_DIR = tmp_path / "runs"
    model_activate(version=model_register(source_dir=model_dir("v1")).version)
    call_command("import_labelled_photos", str(write_folder(tmp_path / "a", 6)))
    settings.RETRAIN_MIN_LABELS_PER_CLASS, settings.RETRAIN_MIN_HOLDOUT = 1, 0  # not about the data minimums
    settings.TRAINING_PYTHON = "/bin/false"
    with pytest.raises(RuntimeError, match="training train failed"):
        retrain(force=True)
    assert ModelVersion.objects.get(status="active").version == "v1" and ModelVersion.objects.count() == 1
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [LOCK_KEY])
        assert cursor.fetchone()[0]
        cursor.execute("SELECT pg_advisory_unlock(%s)", [LOCK_KEY])


@pytest.mark.slow
def test_retrain_end_to_end_trains_evaluates_and_promotes(tmp_path, settings):
    """Real subprocess training (tiny budget) on generated photos: first model promoted, then a
    second run is compared with it on the same frozen holdout."""
    settings.RETRAIN_DIR = tmp_path / "runs"
    settings.RETRAIN_MIN_NEW_LABELS = 1
    settings.MIN_PHOTOS_NEW_CLASS = 1  # not about the new-class bar: 10 generated photos per class
    settings.RETRAIN_MIN_LABELS_PER_CLASS, settings.RETRAIN_MIN_HOLDOUT = 1, 0  # nor the data minimums
    settings.TRAINING_ARGS = ["--epochs", "1", "--epoch-images", "16", "--cache-views", "1",
                              "--batch-size", "8", "--image-size", "96", "--resize-size", "110"]
    call_command("import_labelled_photos", str(write_folder(tmp_path / "a", 10)))
    first = retrain()
    assert first["outcome"] == "promoted", first
    active = ModelVersion.objects.get(status="active")
    assert active.version == first["candidate_version"] and active.promotion_report["outcome"] == "promoted"
    assert first["candidate_holdout"]["macro_f1"] > 0.5
    call_command("import_labelled_photos", str(write_folder(tmp_path / "b", 3, seed=7)))
    second = retrain()
    assert second["outcome"] in ("promoted", "rejected")
    assert second["active_holdout"] is not None and second["active_version"] == active.version
    assert second["active_holdout"]["n_images"] == second["candidate_holdout"]["n_images"]


def local_reports(root, per_class, *, looks_like):
    """Verified citizen reports (source local) whose photos look like another class's bootstrap
    photos: a council whose potholes look nothing like the curated ones."""
    images.labelled_folder(root, per_class, seed=11, labels=tuple(looks_like), looks_like=looks_like)
    for path in sorted(root.rglob("*.jpg")):
        verified_report(path.read_bytes(), path.parent.name)


@pytest.mark.slow
def test_retrain_rejects_a_candidate_that_is_worse_on_the_councils_photos(tmp_path, settings):
    """Real training: the active model learnt the council's own photos (local only); the
    candidate is trained mostly on bootstrap photos that contradict them. Better on the whole
    holdout, worse on the local slice: rejected, and the report says which gate failed."""
    settings.RETRAIN_DIR = tmp_path / "runs"
    settings.RETRAIN_MIN_NEW_LABELS = 1
    settings.MIN_PHOTOS_NEW_CLASS = 1  # not about the new-class bar: 5 local photos per class
    settings.RETRAIN_MIN_LABELS_PER_CLASS, settings.RETRAIN_MIN_HOLDOUT = 1, 0  # nor the data minimums
    settings.TRAINING_ARGS = ["--epochs", "1", "--epoch-images", "16", "--cache-views", "1", "--batch-size", "8",
                              "--image-size", "96", "--resize-size", "110", "--local-share", "0"]
    local_reports(tmp_path / "local", 5, looks_like={"pothole": "no_issue", "no_issue": "pothole"})
    first = retrain()
    assert first["outcome"] == "promoted", first
    assert first["gates_applied"] == ["overall", "local"] and set(first["candidate_holdout_by_source"]) == {"local"}
    active = ModelVersion.objects.get(status="active")
    call_command("import_labelled_photos", str(images.labelled_folder(tmp_path / "boot", 20, labels=("pothole", "no_issue"))))
    second = retrain()
    assert second["data"]["per_source"]["local"]["holdout_per_class"] == {"no_issue": 1, "pothole": 1}
    candidate, old = second["candidate_holdout_by_source"], second["active_holdout_by_source"]
    assert candidate["local"]["n_images"] == 2 and candidate["bootstrap"]["n_images"] == 8
    assert candidate["bootstrap"]["macro_f1"] > old["bootstrap"]["macro_f1"]
    assert candidate["local"]["macro_f1"] < old["local"]["macro_f1"]
    assert second["gates_applied"] == ["overall", "local"]
    assert second["decision"]["slices"]["local"] is False and second["outcome"] == "rejected", second["decision"]
    assert ModelVersion.objects.get(status="active") == active
    stored = ModelVersion.objects.get(version=second["candidate_version"]).promotion_report
    assert stored["candidate_holdout_by_source"]["local"]["macro_f1"] == candidate["local"]["macro_f1"]
    md = (tmp_path / "runs").glob("*/report.md")
    assert any("| this council's photos | 2 |" in p.read_text() for p in md)
