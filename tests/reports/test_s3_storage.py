"""Issue 17 item 1: photos in S3-compatible object storage (PHOTO_STORAGE=s3, reports/s3.py),
against a real S3 server on loopback (moto's server mode, tests/s3server.py): where each of the
three objects goes, plain public URLs, signed staff URLs that expire, nothing left behind by a
failed or rolled-back upload, a bucket that refuses writes, health, and the retraining export."""
from __future__ import annotations

import gc
import io
import json
import socket
import time
import urllib.error
import urllib.request
import uuid
from datetime import timedelta
from email.message import Message
from types import SimpleNamespace

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.urls import reverse
from django.utils import timezone
from PIL import Image

from classifier.training_data import assign_splits, export_training_set
from console.roles import setup_roles
from reports import services
from reports.health import storage_health
from reports.models import Report
from reports.orphans import orphan_photos_sweep
from reports.s3 import PrivatePhotoStorage, PublicPhotoStorage
from reports.updates import report_add_update
from tests.conftest import point_photo_fields, storage_settings
from tests.labels import verified_report
from tests.s3server import ACCESS_KEY, SECRET_KEY

pytestmark = pytest.mark.django_db
GOOD = {"latitude": "51.5", "longitude": "-0.1"}


def deny_writes_policy(bucket: str) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Deny", "Principal": "*", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{bucket}/*"}]})


@pytest.fixture
def s3(s3_server, settings, monkeypatch, media_dirs):
    """Two fresh buckets (the public one readable by policy, as README says to set it up);
    STORAGES from the real settings code with PHOTO_STORAGE=s3; the photo fields re-pointed."""
    suffix = uuid.uuid4().hex[:10]
    private, public = f"private-{suffix}", f"public-{suffix}"
    client = s3_server.client()
    s3_server.create_photo_buckets(private, public, client)
    configured = storage_settings(monkeypatch, PHOTO_STORAGE="s3", S3_ENDPOINT_URL=s3_server.endpoint_url,
                             S3_ACCESS_KEY_ID=ACCESS_KEY, S3_SECRET_ACCESS_KEY=SECRET_KEY,
                             S3_PRIVATE_BUCKET=private, S3_PUBLIC_BUCKET=public)
    settings.STORAGES = {**settings.STORAGES, "private": configured["STORAGES"]["private"],
                         "public": configured["STORAGES"]["public"]}
    point_photo_fields(monkeypatch)

    def keys(bucket: str) -> list[str]:
        return sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", []))

    def body(bucket: str, key: str) -> bytes:
        return client.get_object(Bucket=bucket, Key=key)["Body"].read()

    return SimpleNamespace(client=client, private=private, public=public, keys=keys, body=body,
                           endpoint=s3_server.endpoint_url, all_keys=lambda: keys(private) + keys(public))


def fetch(url: str) -> tuple[int, bytes, Message]:
    """GET with nothing but the URL, as a browser would: (status, body, headers)."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read(), response.headers
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers


def photo(data: bytes):
    return SimpleUploadedFile("p.jpg", data, content_type="image/jpeg")


@pytest.fixture
def staff_client(client):
    user = get_user_model().objects.create_user(username="tina", password="pw")
    user.groups.add(setup_roles()["triager"])
    client.force_login(user)
    return client


# Configuration -------------------------------------------------------------------------------

def test_local_disk_is_the_default_and_s3_comes_from_the_environment(monkeypatch):
    assert storage_settings(monkeypatch)["STORAGES"]["private"]["BACKEND"] == "django.core.files.storage.FileSystemStorage"
    configured = storage_settings(monkeypatch, PHOTO_STORAGE="s3", S3_PRIVATE_BUCKET="originals", S3_PUBLIC_BUCKET="photos",
                             S3_REGION="eu-west-2", S3_SIGNED_URL_SECONDS="60",
                             S3_PUBLIC_URL="https://photos.example.org/")
    private, public = configured["STORAGES"]["private"], configured["STORAGES"]["public"]
    assert private["BACKEND"] == "reports.s3.PrivatePhotoStorage" and public["BACKEND"] == "reports.s3.PublicPhotoStorage"
    assert private["OPTIONS"]["bucket_name"] == "originals" and private["OPTIONS"]["querystring_expire"] == 60
    assert private["OPTIONS"]["region_name"] == "eu-west-2" and private["OPTIONS"]["endpoint_url"] is None
    assert public["OPTIONS"]["bucket_name"] == "photos"
    assert "https://photos.example.org" in configured["CONTENT_SECURITY_POLICY"]["DIRECTIVES"]["img-src"]
    storage = PublicPhotoStorage(**public["OPTIONS"])
    assert storage.url("photos/AB12 3.jpg") == "https://photos.example.org/photos/AB12%203.jpg"
    behind_the_web_server = PublicPhotoStorage(**{**public["OPTIONS"], "public_url": "/media/"})
    assert behind_the_web_server.url("thumbs/X.jpg") == "/media/thumbs/X.jpg"
    with pytest.raises(ImproperlyConfigured, match="PHOTO_STORAGE"):
        storage_settings(monkeypatch, PHOTO_STORAGE="nfs")


# Where the three objects go ------------------------------------------------------------------

def test_intake_writes_the_original_privately_and_metadata_free_copies_publicly(s3, client, unique_jpeg):
    upload = unique_jpeg(lat=51.5, lon=-0.1)
    response = client.post("/api/v1/reports/", {"photo": photo(upload)})
    assert response.status_code == 201, response.content
    ref = Report.objects.get().service_request_id
    assert s3.keys(s3.private) == [f"originals/{ref}.jpg"]
    assert s3.keys(s3.public) == [f"photos/{ref}.jpg", f"thumbs/{ref}.jpg"]
    assert s3.body(s3.private, f"originals/{ref}.jpg") == upload  # the original as sent, GPS and all
    for key in (f"photos/{ref}.jpg", f"thumbs/{ref}.jpg"):
        copy = Image.open(io.BytesIO(s3.body(s3.public, key)))
        assert not copy.getexif() and "exif" not in copy.info and "comment" not in copy.info


def test_public_urls_are_plain_and_the_original_is_not_public(s3, client, unique_jpeg):
    client.post("/api/v1/reports/", {"photo": photo(unique_jpeg()), **GOOD})
    report = Report.objects.get()
    url = report.photo_public.url
    assert url == f"{s3.endpoint}/{s3.public}/photos/{report.service_request_id}.jpg"  # no signature: cacheable
    status, body, headers = fetch(url)
    assert status == 200 and body == s3.body(s3.public, report.photo_public.name)
    assert headers["Cache-Control"].startswith("public")
    assert client.get(f"/api/v1/reports/{report.service_request_id}/").json()["photo_url"] == url
    status, _, _ = fetch(f"{s3.endpoint}/{s3.private}/{report.photo_original.name}")
    assert status == 403  # no unsigned way to the original


def test_staff_get_a_signed_url_to_the_original_that_expires(s3, staff_client, unique_jpeg, settings):
    """Redirected from the staff-only view; the test server checks signatures and expiry as S3 does."""
    upload = unique_jpeg()
    staff_client.post("/api/v1/reports/", {"photo": photo(upload), **GOOD})
    report = Report.objects.get()
    response = staff_client.get(reverse("console:original", args=[report.service_request_id]))
    assert response.status_code == 302 and response["Cache-Control"] == "private, no-store"
    signed = response["Location"]
    assert signed.startswith(f"{s3.endpoint}/{s3.private}/") and "X-Amz-Signature=" in signed
    assert "X-Amz-Expires=300" in signed  # S3_SIGNED_URL_SECONDS' default
    status, body, headers = fetch(signed)
    assert status == 200 and body == upload
    assert headers["Content-Disposition"] == f'attachment; filename="{report.service_request_id}.jpg"'
    assert fetch(signed.replace(f"/{report.service_request_id}.", "/OTHER."))[0] == 403  # signed for that key only

    options = {**settings.STORAGES["private"]["OPTIONS"], "querystring_expire": 1}
    short = PrivatePhotoStorage(**options).url(report.photo_original.name)
    assert "X-Amz-Expires=1&" in short
    time.sleep(1.5)
    status, body, _ = fetch(short)
    assert status == 403 and b"expired" in body


def test_only_staff_reach_the_original(s3, client, unique_jpeg, settings):
    client.post("/api/v1/reports/", {"photo": photo(unique_jpeg()), **GOOD})
    url = reverse("console:original", args=[Report.objects.get().service_request_id])
    anonymous = client.get(url)
    assert anonymous.status_code == 302 and anonymous["Location"].startswith(settings.LOGIN_URL)
    client.force_login(get_user_model().objects.create_user(username="olly", password="pw"))
    assert client.get(url).status_code == 403


def test_console_shows_the_public_copy_from_object_storage(s3, staff_client, unique_jpeg):
    staff_client.post("/api/v1/reports/", {"photo": photo(unique_jpeg()), **GOOD})
    report = Report.objects.get()
    response = staff_client.get(reverse("console:photo", args=[report.service_request_id]) + "?size=thumb")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == s3.body(s3.public, report.photo_thumbnail.name)


def test_a_reporters_update_photo_goes_to_the_same_buckets(s3, unique_jpeg):
    report = services.report_create(photo=unique_jpeg(), classify=False, **GOOD).report
    update = report_add_update(report=report, photo=unique_jpeg())
    assert update.photo_original.name in s3.keys(s3.private)
    assert {update.photo_public.name, update.photo_thumbnail.name} <= set(s3.keys(s3.public))


# Nothing left behind -------------------------------------------------------------------------

def test_a_failed_database_insert_leaves_no_object(s3, unique_jpeg):
    """The INSERT itself fails in PostgreSQL (a trigger, rolled back with the test): by then the
    three objects are written, and report_create deletes them again."""
    table = Report._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute("CREATE FUNCTION refuse_report() RETURNS trigger LANGUAGE plpgsql AS "
                       "$$ BEGIN RAISE EXCEPTION 'no reports today'; END $$")
        cursor.execute(f"CREATE TRIGGER refuse_report BEFORE INSERT ON {table} "
                       "FOR EACH ROW EXECUTE FUNCTION refuse_report()")
    with pytest.raises(DatabaseError, match="no reports today"):
        services.report_create(photo=unique_jpeg(), classify=False, **GOOD)
    assert s3.all_keys() == []


def test_a_callers_rollback_after_intake_deletes_the_objects(s3, unique_jpeg):
    with pytest.raises(RuntimeError), transaction.atomic():
        services.report_create(photo=unique_jpeg(), classify=False, **GOOD)
        assert len(s3.all_keys()) == 3
        raise RuntimeError("the caller's next step failed")
    gc.collect()
    assert Report.objects.count() == 0 and s3.all_keys() == []


def test_the_orphan_sweep_deletes_only_unreferenced_photo_objects_past_the_cutoff(s3, unique_jpeg):
    """What a node killed mid-upload leaves (manage.py sweep_orphan_photos, reports/orphans.py),
    found by bucket listing; the private bucket's models/ and anything outside the photo folders stay."""
    report = services.report_create(photo=unique_jpeg(), classify=False, **GOOD).report
    report_add_update(report=report, photo=unique_jpeg())
    kept = s3.all_keys()
    for bucket, key in ((s3.private, "originals/CIV-killed.jpg"), (s3.public, "thumbs/CIV-killed.jpg"),
                        (s3.private, "models/v1/model.onnx"), (s3.private, ".healthz-0123")):
        s3.client.put_object(Bucket=bucket, Key=key, Body=b"left behind")
    out = io.StringIO()
    call_command("sweep_orphan_photos", stdout=out)  # all written just now: younger than 24 hours
    assert "Deleted 0" in out.getvalue() and len(s3.all_keys()) == len(kept) + 4
    # The bucket's clock decides an object's age; a cutoff just ahead of it makes every object old.
    sweep = orphan_photos_sweep(cutoff=timezone.now() + timedelta(minutes=1))
    assert sorted(sweep.orphans) == [("private", "originals/CIV-killed.jpg"), ("public", "thumbs/CIV-killed.jpg")]
    assert sorted(s3.all_keys()) == sorted([*kept, "models/v1/model.onnx", ".healthz-0123"])


@pytest.mark.parametrize("refusing", ["private", "public"])
def test_a_bucket_that_refuses_writes_is_a_503_and_leaves_nothing(s3, client, unique_jpeg, refusing):
    """A policy denying PutObject: on the private bucket the first write fails; on the public one
    the second does, after the original was written, which must be deleted again."""
    bucket = getattr(s3, refusing)
    s3.client.put_bucket_policy(Bucket=bucket, Policy=deny_writes_policy(bucket))
    api = client.post("/api/v1/reports/", {"photo": photo(unique_jpeg()), **GOOD})
    form = client.post("/report/", {"photo": photo(unique_jpeg()), **GOOD})
    for response in (api, form):
        assert response.status_code == 503 and int(response["Retry-After"]) > 0
    assert api.json()["cause"] == "storage"
    assert Report.objects.count() == 0 and s3.all_keys() == []


def test_a_missing_bucket_is_a_503_and_shows_in_health(s3, client, unique_jpeg):
    s3.client.delete_bucket(Bucket=s3.private)
    assert storage_health()["storage"] == f"error: not writable: private (bucket {s3.private}: 404)"
    response = client.post("/api/v1/reports/", {"photo": photo(unique_jpeg()), **GOOD})
    assert response.status_code == 503 and "Retry-After" in response
    assert Report.objects.count() == 0 and s3.keys(s3.public) == []
    body = client.get("/healthz").json()
    assert body["status"] == "degraded" and body["storage"].startswith("error: not writable: private")


def test_object_storage_down_is_a_503(s3, client, unique_jpeg, settings, monkeypatch):
    """Nothing listens at the endpoint (a port bound, never listening: refused at once)."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{closed.getsockname()[1]}"
        settings.STORAGES = {**settings.STORAGES, **{
            alias: {**settings.STORAGES[alias], "OPTIONS": {**settings.STORAGES[alias]["OPTIONS"], "endpoint_url": down}}
            for alias in ("private", "public")}}
        point_photo_fields(monkeypatch)
        response = client.post("/api/v1/reports/", {"photo": photo(unique_jpeg()), **GOOD})
    assert response.status_code == 503 and response.json()["cause"] == "storage"
    assert Report.objects.count() == 0


def test_storage_health_is_ok_when_both_buckets_answer(s3):
    assert storage_health() == {"storage": "ok"}
    assert s3.all_keys() == []  # a HEAD on each bucket, no probe object


# Retraining reads the same storage -----------------------------------------------------------

def test_training_export_reads_photos_from_object_storage(s3, tmp_path, settings, unique_jpeg):
    settings.MIN_PHOTOS_NEW_CLASS, settings.HOLDOUT_MIN_PER_LABEL = 1, 100
    uploads = [unique_jpeg(size=(96, 72)) for _ in range(3)]
    reports = [verified_report(data, "pothole") for data in uploads]
    assert {r.photo_original.name for r in reports} <= set(s3.keys(s3.private))
    assign_splits()
    summary = export_training_set(tmp_path / "out")
    assert summary["n_images"] == 3
    for report, data in zip(reports, uploads):
        exported = Image.open(tmp_path / "out" / "images" / f"{report.pk}.jpg")
        assert exported.size == Image.open(io.BytesIO(data)).size and not exported.getexif()
