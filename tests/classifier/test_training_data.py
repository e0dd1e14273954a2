"""classifier.training_data: verified reports (source local) and training examples (their own
source) in one manifest, with a frozen holdout stratified per (source, label)."""
import io
import json

import pytest
from django.core.management import call_command
from django.utils import timezone

from classifier.models import TrainingExample, TrainingSplit
from classifier.services import training_example_create
from classifier.training_data import assign_splits, export_training_set
from tests import images
from tests.labels import verified_report

pytestmark = pytest.mark.django_db


def rows_of(out):
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


@pytest.fixture
def mixed(tmp_path, settings, unique_jpeg):
    """8 bootstrap examples per label; local reports: 10 fly_tipping, 5 no_issue, 4 graffiti."""
    settings.HOLDOUT_SHARE, settings.HOLDOUT_MIN_PER_LABEL = 0.2, 5
    settings.MIN_PHOTOS_NEW_CLASS = 1  # not about the new-class bar (below)
    call_command("import_labelled_photos", str(images.labelled_folder(tmp_path / "boot", 8)), stdout=io.StringIO())
    local = [verified_report(unique_jpeg(size=(96, 72)), label)
             for label, n in (("fly_tipping", 10), ("no_issue", 5), ("graffiti", 4)) for _ in range(n)]
    return local


def test_export_rows_carry_source_and_ids(tmp_path, mixed):
    export_training_set(tmp_path / "out")
    rows = rows_of(tmp_path / "out")
    assert all(set(r) == {"path", "label", "report_id", "example_id", "source", "split"} for r in rows)
    reports = [r for r in rows if r["report_id"] is not None]
    examples = [r for r in rows if r["example_id"] is not None]
    assert len(reports) == 19 and {r["source"] for r in reports} == {"local"}
    assert all(r["example_id"] is None for r in reports) and all(r["report_id"] is None for r in examples)
    assert len(examples) == 32 and {r["source"] for r in examples} == {"bootstrap"}
    assert all((tmp_path / "out" / r["path"]).is_file() for r in rows)


def test_holdout_is_stratified_per_source_and_label(tmp_path, mixed):
    summary = export_training_set(tmp_path / "out")
    local = summary["per_source"]["local"]
    # ceil(0.2 * n) per stratum of at least 5: 10 -> 2, 5 -> 1; 4 local graffiti are too few for a holdout.
    assert local["holdout_per_class"] == {"fly_tipping": 2, "no_issue": 1}
    assert local["train_per_class"] == {"fly_tipping": 8, "graffiti": 4, "no_issue": 4}
    assert summary["per_source"]["bootstrap"]["holdout_per_class"] == {label: 2 for label in images.LABELS}
    assert summary["holdout_per_class"] == {"fly_tipping": 4, "graffiti": 2, "no_issue": 3, "pothole": 2}
    assert summary["n_images"] == 51 and local["n_images"] == 19
    written = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert written == summary
    holdout = [r for r in rows_of(tmp_path / "out") if r["split"] == "holdout" and r["source"] == "local"]
    assert len(holdout) == 3 and all(r["report_id"] for r in holdout)


def test_new_labels_fill_the_holdout_without_moving_anything(unique_jpeg, settings, mixed):
    assign_splits()
    frozen = set(TrainingSplit.objects.values_list("report_id", "example_id", "split"))
    verified_report(unique_jpeg(size=(96, 72)), "graffiti")  # the fifth: now the stratum earns a holdout
    holdout = assign_splits()
    assert frozen <= set(TrainingSplit.objects.values_list("report_id", "example_id", "split"))
    assert holdout[("local", "graffiti")] == 1 and holdout[("bootstrap", "graffiti")] == 2


def test_an_example_that_comes_back_as_a_verified_report_is_exported_once(tmp_path, unique_jpeg, settings):
    settings.MIN_PHOTOS_NEW_CLASS = 1  # not about the new-class bar
    photo = unique_jpeg(size=(96, 72))
    example = training_example_create(photo=photo, label="pothole").example
    report = verified_report(photo, "graffiti")  # the same photo, later reported and labelled by staff
    export_training_set(tmp_path / "out")
    rows = rows_of(tmp_path / "out")
    assert [(r["report_id"], r["label"], r["source"]) for r in rows] == [(report.pk, "graffiti", "local")]
    assert TrainingExample.objects.filter(pk=example.pk).exists()  # kept, just not trained on twice


def test_an_imported_example_is_copied_as_stored(tmp_path, unique_jpeg, settings):
    settings.MIN_PHOTOS_NEW_CLASS = 1  # not about the new-class bar
    example = training_example_create(photo=unique_jpeg(lat=51.5, lon=-0.12), label="pothole").example
    export_training_set(tmp_path / "out")
    (row,) = rows_of(tmp_path / "out")
    stored = example.photo.storage.open(example.photo.name).read()
    assert (tmp_path / "out" / row["path"]).read_bytes() == stored  # already clean: no second JPEG pass


# A new class needs evidence (MIN_PHOTOS_NEW_CLASS) ----------------------------------------------

@pytest.fixture
def new_class_bar(settings):
    settings.MIN_PHOTOS_NEW_CLASS, settings.HOLDOUT_SHARE, settings.HOLDOUT_MIN_PER_LABEL = 10, 0.2, 5


def known_model(*classes):
    from classifier.models import ModelVersion

    return ModelVersion.objects.create(version="v1", path="v1", sha256="1" * 64, classes=list(classes),
                                       status="active", activated_at=timezone.now())


def test_a_one_photo_class_is_refused_at_export(tmp_path, unique_jpeg, new_class_bar):
    known_model("graffiti", "no_issue", "pothole")
    one = verified_report(unique_jpeg(size=(96, 72)), "streetlight")  # one (perhaps mistaken) staff label
    kept = verified_report(unique_jpeg(size=(96, 72)), "pothole")
    summary = export_training_set(tmp_path / "out")
    assert [r["report_id"] for r in rows_of(tmp_path / "out")] == [kept.pk]
    assert not TrainingSplit.objects.filter(report=one).exists()  # neither train nor holdout, yet
    assert summary["withheld"] == {"streetlight": {"photos": 1, "train": 1, "holdout": 0, "needed": 10}}
    assert summary["min_photos_new_class"] == 10 and "streetlight" not in summary["train_per_class"]
    assert not (tmp_path / "out" / "images" / f"{one.pk}.jpg").exists()


def test_a_new_class_is_exported_once_it_has_ten_photos_outside_the_holdout(tmp_path, unique_jpeg, new_class_bar):
    """Reports and training examples count together; the holdout's share comes on top."""
    known_model("graffiti", "no_issue", "pothole")
    for _ in range(8):  # bootstrap stratum of 8: 2 held out, 6 to train on
        training_example_create(photo=unique_jpeg(size=(96, 72)), label="streetlight")
    for _ in range(3):  # local stratum of 3 (< HOLDOUT_MIN_PER_LABEL): all 3 to train on
        verified_report(unique_jpeg(size=(96, 72)), "streetlight")
    summary = export_training_set(tmp_path / "first")
    assert summary["withheld"] == {"streetlight": {"photos": 11, "train": 9, "holdout": 2, "needed": 10}}
    assert not TrainingSplit.objects.exists()
    verified_report(unique_jpeg(size=(96, 72)), "streetlight")  # the tenth outside the holdout
    summary = export_training_set(tmp_path / "second")
    assert summary["withheld"] == {}
    assert summary["train_per_class"] == {"streetlight": 10} and summary["holdout_per_class"] == {"streetlight": 2}
    rows = rows_of(tmp_path / "second")
    assert len(rows) == 12 and {r["label"] for r in rows} == {"streetlight"}
    assert TrainingSplit.objects.count() == 12


def test_a_class_the_active_model_knows_is_exported_below_the_bar(tmp_path, unique_jpeg, new_class_bar):
    known_model("graffiti", "no_issue", "pothole")
    graffiti = [verified_report(unique_jpeg(size=(96, 72)), "graffiti") for _ in range(2)]
    rejected = verified_report(unique_jpeg(size=(96, 72)), "no_issue")
    summary = export_training_set(tmp_path / "out")
    assert summary["withheld"] == {} and summary["train_per_class"] == {"graffiti": 2, "no_issue": 1}
    assert {r["report_id"] for r in rows_of(tmp_path / "out")} == {*(r.pk for r in graffiti), rejected.pk}


def test_without_an_active_model_every_category_needs_the_evidence_but_no_issue(tmp_path, unique_jpeg, new_class_bar):
    verified_report(unique_jpeg(size=(96, 72)), "graffiti")
    verified_report(unique_jpeg(size=(96, 72)), "no_issue")
    summary = export_training_set(tmp_path / "out")
    assert summary["train_per_class"] == {"no_issue": 1} and set(summary["withheld"]) == {"graffiti"}
