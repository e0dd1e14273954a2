"""Issue 17 follow-up: `manage.py sweep_orphan_photos` (reports/orphans.py) deletes the photo
files no row refers to once older than the cutoff, in local folders (the S3 case is in
test_s3_storage.py): what a web node killed mid-upload leaves."""
from __future__ import annotations

import io
import logging
import os
import time

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from classifier.services import training_example_create
from reports import services
from reports.updates import report_add_update
from tests.conftest import stored_files

pytestmark = pytest.mark.django_db
TWO_DAYS = 2 * 24 * 3600


def write(folder, name: str, *, age_s: float = 0) -> os.PathLike:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xff\xd8 left by a killed upload")
    age(path, age_s)
    return path


def age(path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def sweep(*args) -> str:
    out = io.StringIO()
    call_command("sweep_orphan_photos", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def referenced(media_dirs, unique_jpeg):
    """A report, a reporter's update with a photo and a training example (seven files, each
    named by a row), all written two days ago."""
    report = services.report_create(photo=unique_jpeg(lat=51.5, lon=-0.1)).report
    report_add_update(report=report, text="worse now", photo=unique_jpeg())
    training_example_create(photo=unique_jpeg(), label="pothole")
    files = stored_files(media_dirs)
    assert len(files) == 7
    for path in files:
        age(path, TWO_DAYS)
    return files


def test_old_orphans_are_deleted_and_every_referenced_photo_is_kept(media_dirs, referenced, caplog):
    public, private = media_dirs
    orphans = [write(private, "originals/CIV-killed.jpg", age_s=TWO_DAYS),
               write(public, "updates/thumbs/CIV-killed-abc.jpg", age_s=TWO_DAYS),
               write(private, "training/ab/abcdef.jpg", age_s=TWO_DAYS)]
    # Not photo folders: a health probe's file and anything else the app did not write as a photo.
    others = [write(private, ".healthz-0123", age_s=TWO_DAYS), write(private, "models/v1/model.onnx", age_s=TWO_DAYS)]
    with caplog.at_level(logging.INFO, logger="reports.orphans"):
        out = sweep()
    assert "Deleted 3 orphan photo objects older than 24 hours" in out
    assert not any(p.exists() for p in orphans)
    assert sorted(stored_files(media_dirs)) == sorted(referenced + others)
    assert "10 photo objects, 7 referenced, 0 younger than the cutoff, 3 orphans, 0 could not be deleted" in caplog.text


def test_an_orphan_younger_than_the_cutoff_is_kept(media_dirs, referenced):
    public, _private = media_dirs
    in_flight = write(public, "photos/CIV-in-flight.jpg", age_s=600)  # its row may not have committed yet
    out = sweep()
    assert "Deleted 0 orphan photo objects" in out and "1 younger than the cutoff, 0 orphans" in out
    assert in_flight.exists()


def test_a_dry_run_deletes_nothing(media_dirs, referenced):
    _public, private = media_dirs
    orphan = write(private, "updates/originals/CIV-killed-abc.heic", age_s=TWO_DAYS)
    out = sweep("--dry-run", "-v", "2")
    assert "private: updates/originals/CIV-killed-abc.heic" in out
    assert "Would delete 1 orphan photo object older than 24 hours" in out
    assert orphan.exists() and len(stored_files(media_dirs)) == 8


def test_a_cutoff_under_an_hour_is_refused(media_dirs):
    with pytest.raises(CommandError, match="at least 1 hour"):
        sweep("--older-than", "0.5")
