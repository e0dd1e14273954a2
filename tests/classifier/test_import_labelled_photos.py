"""manage.py import_labelled_photos and classifier.services.training_example_create: labelled
photos become training examples (private, with a source), never reports; and migration 0005
turns the reports the old command made into examples."""
import importlib
import io
import json
from collections import Counter

import pytest
from django.apps import apps
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.utils import timezone
from PIL import Image

from classifier.models import TrainingExample, TrainingSplit
from classifier.services import training_example_create
from classifier.training_data import assign_splits, export_training_set
from reports import photos
from reports import services as report_services
from reports.models import Category, Report, ReportEvent
from tests import images
from tests.conftest import stored_files

pytestmark = pytest.mark.django_db


def import_folder(root, *args):
    out, err = io.StringIO(), io.StringIO()
    call_command("import_labelled_photos", str(root), *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_import_creates_examples_and_no_reports(tmp_path):
    out, _ = import_folder(images.labelled_folder(tmp_path / "data", 3))
    assert Report.objects.count() == 0 and ReportEvent.objects.count() == 0
    assert TrainingExample.objects.count() == 12 and "imported 12 bootstrap training examples" in out
    assert Counter(TrainingExample.objects.values_list("label", flat=True)) == {
        "pothole": 3, "graffiti": 3, "fly_tipping": 3, "no_issue": 3}
    assert set(TrainingExample.objects.values_list("source", flat=True)) == {"bootstrap"}
    example = TrainingExample.objects.get(origin__endswith="pothole/0-0.jpg")
    assert example.origin == str(tmp_path / "data" / "pothole" / "0-0.jpg")


def test_reimport_is_idempotent(tmp_path, media_dirs):
    folder = images.labelled_folder(tmp_path / "data", 2)
    import_folder(folder)
    files = sorted(stored_files(media_dirs))
    out, _ = import_folder(folder)
    assert TrainingExample.objects.count() == 8 and "imported 0" in out and "8 already imported" in out
    assert sorted(stored_files(media_dirs)) == files  # no second copy of any photo


def test_source_local_and_limit(tmp_path):
    import_folder(images.labelled_folder(tmp_path / "data", 3), "--source", "local", "--limit", "2")
    assert TrainingExample.objects.filter(source="local").count() == 8 and TrainingExample.objects.count() == 8


def test_bad_source_limit_or_folder_are_command_errors(tmp_path):
    with pytest.raises(CommandError, match="invalid choice: 'council'"):
        import_folder(tmp_path, "--source", "council")
    with pytest.raises(CommandError, match="--limit must be at least 1"):
        import_folder(tmp_path, "--limit", "0")
    with pytest.raises(CommandError, match="is not a folder"):
        import_folder(tmp_path / "missing")


def test_broken_file_and_unknown_label_are_skipped_with_a_message(tmp_path, media_dirs):
    folder = images.labelled_folder(tmp_path / "data", 1, labels=("pothole",))
    (folder / "pothole" / "truncated.jpg").write_bytes(images.jpeg()[:400])
    (folder / "pothole" / "text.jpg").write_bytes(b"not a photo at all")
    (folder / "bins").mkdir()
    (folder / "bins" / "a.jpg").write_bytes(images.jpeg())
    out, err = import_folder(folder)
    assert "skipping" in err and "truncated.jpg: The photo could not be read" in err
    assert "text.jpg: This file is not a photo we can read" in err
    assert "'bins' is not a category slug or no_issue" in err
    assert TrainingExample.objects.count() == 1 and "2 skipped" in out
    assert len(stored_files(media_dirs)) == 1  # only the good photo was stored


def test_stored_photo_is_private_oriented_and_metadata_free(media_dirs):
    public, private = media_dirs
    data = images.jpeg(lat=51.5, lon=-0.12, orientation=6, size=(120, 80))
    intake = training_example_create(photo=data, label="graffiti", source="local", origin="old-system/17.jpg")
    assert intake.created and intake.example.source == "local"
    assert intake.example.photo_sha256 == photos.read_photo(data).sha256
    (path,) = stored_files(media_dirs)
    assert path.is_relative_to(private)  # nothing under the public MEDIA_ROOT
    img = Image.open(path)
    assert img.size == (80, 120) and dict(img.getexif()) == {}  # rotated upright; no EXIF, no GPS


def test_service_validates_label_and_source_before_storing(media_dirs):
    with pytest.raises(ValidationError, match="'bins' is not a category slug"):
        training_example_create(photo=images.jpeg(), label="bins")
    with pytest.raises(ValidationError, match="Unknown source 'council'"):
        training_example_create(photo=images.jpeg(), label="pothole", source="council")
    with pytest.raises(ValidationError, match="not a photo we can read"):
        training_example_create(photo=b"GIF89a nonsense", label="pothole")
    assert stored_files(media_dirs) == [] and TrainingExample.objects.count() == 0


def test_a_photo_already_reported_is_not_imported_again(unique_jpeg):
    data = unique_jpeg(lat=51.5, lon=-0.12)
    report_services.report_create(photo=data, classify=False)
    intake = training_example_create(photo=data, label="pothole")
    assert not intake.created and intake.example is None and intake.reason == "already a report"
    assert TrainingExample.objects.count() == 0


# Migration 0005: reports the old command created become examples ------------------------------

def old_import(data: bytes, label: str) -> Report:
    """What import_labelled_photos did before: a verified closed (or rejected) report, channel import."""
    report = report_services.report_create(photo=data, latitude=51.5, longitude=-0.12, channel="import",
                                           location_source="map_pin", actor_label="import", classify=False).report
    report.verified_at = timezone.now()
    if label == "no_issue":
        report.status = Report.Status.REJECTED
    else:
        report.status, report.final_category = Report.Status.CLOSED, Category.objects.get(slug=label)
    report.save()
    report_services.record_event(report=report, actor_label="import", action="verify", field="final_category",
                                 to_value=label, note=f"imported from /data/{label}/{report.pk}.jpg")
    return report


def convert():
    migration = importlib.import_module("classifier.migrations.0005_imported_reports_to_examples")
    return migration.convert_imported_reports(apps, None)


def test_migration_turns_imported_reports_into_examples_keeping_label_and_split(
        unique_jpeg, media_dirs, django_capture_on_commit_callbacks):
    public, private = media_dirs
    pothole, rejected = old_import(unique_jpeg(), "pothole"), old_import(unique_jpeg(), "no_issue")
    citizen = report_services.report_create(photo=unique_jpeg(), latitude=51.5, longitude=-0.1, classify=False).report
    TrainingSplit.objects.create(report=pothole, split="holdout")
    with django_capture_on_commit_callbacks(execute=True):
        assert convert() == 2
    assert list(Report.objects.all()) == [citizen]  # the real report stays
    examples = {e.label: e for e in TrainingExample.objects.all()}
    assert set(examples) == {"pothole", "no_issue"} and {e.source for e in examples.values()} == {"bootstrap"}
    assert examples["pothole"].photo_sha256 == pothole.photo_sha256
    assert examples["pothole"].origin == f"/data/pothole/{pothole.pk}.jpg"
    assert TrainingSplit.objects.get(example=examples["pothole"]).split == "holdout"  # never moved
    # The imported photos' public copies are gone; their originals stay private, now as examples.
    assert not any((public / name).exists() for r in (pothole, rejected)
                   for name in (r.photo_public.name, r.photo_thumbnail.name))
    assert examples["pothole"].photo.storage.exists(examples["pothole"].photo.name)
    assert examples["pothole"].photo.name == pothole.photo_original.name
    assert convert() == 0  # nothing left to convert
    assert dict(assign_splits())[("bootstrap", "pothole")] == 1


def test_converted_examples_are_exported_without_their_metadata(tmp_path, unique_jpeg, settings):
    settings.MIN_PHOTOS_NEW_CLASS = 1  # not about the new-class bar
    old_import(unique_jpeg(lat=51.5, lon=-0.12, orientation=6, size=(120, 80)), "graffiti")
    convert()
    export_training_set(tmp_path / "out")
    (row,) = [json.loads(line) for line in (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()]
    assert (row["label"], row["source"], row["report_id"]) == ("graffiti", "bootstrap", None)
    img = Image.open(tmp_path / "out" / row["path"])
    assert img.format == "JPEG" and img.size == (80, 120) and dict(img.getexif()) == {}
