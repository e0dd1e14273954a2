import json

import numpy as np
import psycopg
import pytest
from django.core.management import call_command
from django.db import connection
from PIL import Image

from classifier.models import ModelVersion, TrainingSplit
from classifier.retrain import LOCK_KEY, gate, retrain
from classifier.services import model_activate, model_register
from classifier.training_data import assign_splits, export_training_set
from reports.models import Report

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


def test_gate_for_the_first_model_uses_a_floor():
    assert gate(metrics(0.6, {}), None, max_f1_drop=0, max_recall_drop=0, min_f1=0.5).promote
    assert not gate(metrics(0.4, {}), None, max_f1_drop=0, max_recall_drop=0, min_f1=0.5).promote


def pattern(label, rng):
    """Texture per class (orientation and frequency survive flips, crops and colour jitter)."""
    y, x = np.mgrid[0:96, 0:128]
    phase = rng.uniform(0, 6.28)
    wave = {
        "pothole": np.sin(x / 3 + phase),  # vertical stripes
        "graffiti": np.sin(y / 3 + phase),  # horizontal stripes
        "fly_tipping": np.sign(np.sin(x / 6 + phase)) * np.sign(np.sin(y / 6 + phase)),  # checkerboard
        "no_issue": np.zeros_like(x, dtype=float),  # flat
    }[label]
    grey = 128 + 90 * wave + rng.normal(0, 12, size=wave.shape)
    return np.repeat(np.clip(grey, 0, 255)[..., None], 3, axis=2).astype("uint8")


def write_folder(root, per_class, seed=0):
    rng = np.random.default_rng(seed)
    for label in LABELS:
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(pattern(label, rng)).save(root / label / f"{seed}-{i}.jpg", quality=90)
    return root


def test_import_creates_verified_reports_with_rejected_as_no_issue(tmp_path):
    call_command("import_labelled_photos", str(write_folder(tmp_path / "data", 3)))
    assert Report.objects.count() == 12
    assert Report.objects.filter(status="rejected").count() == 3
    assert set(Report.objects.exclude(status="rejected").values_list("final_category__slug", flat=True)) == {"pothole", "graffiti", "fly_tipping"}
    assert not Report.objects.filter(classified_at__isnull=False).exists()  # import does not ask the model


def test_holdout_is_stratified_frozen_and_never_in_train(tmp_path, settings):
    settings.HOLDOUT_SHARE = 0.25
    call_command("import_labelled_photos", str(write_folder(tmp_path / "a", 8, seed=1)))
    first = assign_splits()
    assert dict(first) == {"pothole": 2, "graffiti": 2, "fly_tipping": 2, "no_issue": 2}
    frozen = dict(TrainingSplit.objects.values_list("report_id", "split"))
    call_command("import_labelled_photos", str(write_folder(tmp_path / "b", 8, seed=2)))
    summary = export_training_set(tmp_path / "export")
    after = dict(TrainingSplit.objects.values_list("report_id", "split"))
    assert all(after[k] == v for k, v in frozen.items())  # nothing moved
    assert summary["holdout_per_class"] == {"fly_tipping": 4, "graffiti": 4, "no_issue": 4, "pothole": 4}
    rows = [json.loads(line) for line in (tmp_path / "export" / "manifest.jsonl").read_text().splitlines()]
    holdout_ids = {r["report_id"] for r in rows if r["split"] == "holdout"}
    train_ids = {r["report_id"] for r in rows if r["split"] == "train"}
    assert holdout_ids and not holdout_ids & train_ids and len(rows) == 64
    img = Image.open(tmp_path / "export" / rows[0]["path"])
    assert img.format == "JPEG" and dict(img.getexif()) == {}


def test_retrain_skips_with_too_few_new_labels(tmp_path, settings):
    settings.RETRAIN_DIR = tmp_path / "runs"
    call_command("import_labelled_photos", str(write_folder(tmp_path / "a", 2)))
    report = retrain()
    assert report["outcome"] == "skipped" and "new verified labels" in report["reason"]
    assert (tmp_path / "runs").glob("*/report.md")


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
