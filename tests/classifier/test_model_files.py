"""Issue 17: model files across machines (MODEL_STORAGE=s3, classifier/model_files.py), against a
real S3 server on loopback (moto's server mode, tests/s3server.py). "Machine A" registers a model
with one MODEL_ROOT; "machine B" has another, empty one and only the database and the bucket in
common: it must fetch the files, check them against the registry, and predict the same."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from classifier import model_files, registry
from classifier.health import model_files_error
from classifier.model_files import ModelFilesError
from classifier.models import ModelVersion, WorkerHeartbeat
from classifier.services import model_activate, model_register
from classifier.worker import heartbeat_write
from reports import services
from reports.models import Report
from tests.conftest import storage_settings
from tests.images import jpeg
from tests.s3server import ACCESS_KEY, SECRET_KEY

ROOT = Path(__file__).resolve().parents[2]
PHOTOS = [jpeg(lat=51.5, lon=-0.1, color=(30 * i, 200 - 40 * i, 90)) for i in range(4)]


@pytest.fixture
def bucket(s3_server, settings, monkeypatch):
    """A fresh private bucket and MODEL_STORAGE=s3 as the real settings code builds it (photos stay
    on local disk: the two are independent)."""
    name = f"private-{uuid.uuid4().hex[:10]}"
    client = s3_server.client()
    client.create_bucket(Bucket=name)
    env = {"MODEL_STORAGE": "s3", "S3_ENDPOINT_URL": s3_server.endpoint_url, "S3_ACCESS_KEY_ID": ACCESS_KEY,
           "S3_SECRET_ACCESS_KEY": SECRET_KEY, "S3_PRIVATE_BUCKET": name}
    settings.MODEL_STORAGE = "s3"
    settings.STORAGES = {**settings.STORAGES, "models": storage_settings(monkeypatch, **env)["STORAGES"]["models"]}

    def keys() -> list[str]:
        return sorted(o["Key"] for o in client.list_objects_v2(Bucket=name).get("Contents", []))

    return SimpleNamespace(name=name, client=client, keys=keys, env=env)


def machine_b(settings, tmp_path) -> Path:
    """Another machine: its own, empty MODEL_ROOT and a process that has loaded nothing."""
    settings.MODEL_ROOT = tmp_path / "machine-b"
    registry.reset()
    return settings.MODEL_ROOT


def top_k(classifier) -> list:
    return [[(slug, round(p, 6)) for slug, p in prediction.top_k] for prediction in classifier.predict(PHOTOS)]


def test_models_stay_on_local_disk_unless_model_storage_says_s3(monkeypatch):
    assert "models" not in storage_settings(monkeypatch, PHOTO_STORAGE="local")["STORAGES"]
    models = storage_settings(monkeypatch, MODEL_STORAGE="s3", S3_PRIVATE_BUCKET="originals")["STORAGES"]["models"]
    assert models["BACKEND"] == "classifier.s3.ModelStorage" and models["OPTIONS"]["bucket_name"] == "originals"
    with pytest.raises(ImproperlyConfigured, match="MODEL_STORAGE"):
        storage_settings(monkeypatch, MODEL_STORAGE="nfs")


@pytest.mark.django_db
def test_registering_uploads_every_file_under_models_version(bucket, model_dir, model_root):
    source = model_dir("v1")
    (source / "holdout_predictions.jsonl").write_text('{"report": 1}\n')
    mv = model_register(source_dir=source)
    assert bucket.keys() == ["models/v1/holdout_predictions.jsonl", "models/v1/metadata.json", "models/v1/model.onnx"]
    assert mv.files == model_files.file_digests(model_root / "v1") and mv.files["model.onnx"] == mv.sha256
    stored = bucket.client.get_object(Bucket=bucket.name, Key="models/v1/model.onnx")["Body"].read()
    assert stored == (source / "model.onnx").read_bytes()


@pytest.mark.django_db
def test_a_machine_without_the_files_downloads_them_and_predicts_the_same(
        bucket, settings, model_dir, model_root, tmp_path):
    model_activate(version=model_register(source_dir=model_dir("v1")).version)
    on_a = top_k(registry.active_classifier(force_check=True))

    root_b = machine_b(settings, tmp_path)
    on_b = registry.active_classifier(force_check=True)
    assert on_b is not None and registry.status()["error"] is None
    assert top_k(on_b) == on_a
    assert sorted(p.name for p in root_b.iterdir()) == ["v1"]  # no temporary folder left
    assert model_files.file_digests(root_b / "v1") == ModelVersion.objects.get(version="v1").files


@pytest.mark.django_db
def test_a_corrupted_object_is_refused_with_a_clear_error(bucket, settings, client, model_dir, tmp_path):
    settings.CLASSIFY_INLINE = False  # /healthz on a web node: it trusts the classifier worker's heartbeat
    mv = model_activate(version=model_register(source_dir=model_dir("v1")).version)
    bucket.client.put_object(Bucket=bucket.name, Key="models/v1/model.onnx", Body=b"not the model")

    root_b = machine_b(settings, tmp_path)
    with pytest.raises(ModelFilesError, match=r"models/v1/model.onnx has sha256 \w+ but the registry says "
                                              rf"{mv.sha256}: the object is corrupt .*; refused"):
        registry.load(mv)
    assert list(root_b.iterdir()) == []  # nothing half-written for ONNX Runtime to open
    assert registry.active_classifier(force_check=True) is None and "corrupt" in registry.status()["error"]

    heartbeat_write(worker_id="gpu-b", backend="default", started_at=timezone.now(), queues=["classify"])
    assert "corrupt" in WorkerHeartbeat.objects.get(worker_id="gpu-b").model_error
    body = client.get("/healthz").json()
    assert body["classifier"] == "degraded" and f"{bucket.name}:models/v1/model.onnx" in body["error"]


@pytest.mark.django_db
def test_a_missing_object_is_named(bucket, settings, model_dir, tmp_path):
    mv = model_register(source_dir=model_dir("v1"))
    bucket.client.delete_object(Bucket=bucket.name, Key="models/v1/metadata.json")
    machine_b(settings, tmp_path)
    assert model_files_error(mv) == f"model v1: {bucket.name}:models/v1/metadata.json is missing from object storage"


@pytest.mark.django_db
def test_the_heartbeats_file_check_fetches_a_damaged_local_copy_again(bucket, settings, model_dir, tmp_path):
    mv = model_register(source_dir=model_dir("v1"))
    root_b = machine_b(settings, tmp_path)
    assert model_files_error(mv) is None  # fetched
    onnx = root_b / "v1" / "model.onnx"
    good = onnx.read_bytes()
    onnx.write_bytes(b"bit rot")
    assert model_files_error(mv) is None and onnx.read_bytes() == good
    assert sorted(p.name for p in root_b.iterdir()) == ["v1"]  # the damaged copy is gone too


@pytest.mark.django_db(transaction=True)
def test_processes_fetching_the_same_version_at_once_end_with_one_complete_copy(
        bucket, settings, model_dir, tmp_path):
    mv = model_register(source_dir=model_dir("v1"))
    root_b = machine_b(settings, tmp_path)
    errors = []

    def fetch():
        try:
            model_files.local_directory(mv)
        except Exception as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=fetch) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and sorted(p.name for p in root_b.iterdir()) == ["v1"]
    assert model_files.file_digests(root_b / "v1") == mv.files


@pytest.mark.django_db
def test_a_refused_upload_leaves_no_row_no_files_and_no_objects(bucket, model_dir, model_root):
    """metadata.json goes up first; model.onnx is refused, so metadata.json must be deleted again."""
    bucket.client.put_bucket_policy(Bucket=bucket.name, Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Deny", "Principal": "*", "Action": "s3:PutObject",
         "Resource": f"arn:aws:s3:::{bucket.name}/models/v1/model.onnx"}]}))
    with pytest.raises(Exception, match=r"AccessDenied|\(403\)"):  # model.onnx goes up in parts
        model_register(source_dir=model_dir("v1"))
    assert not ModelVersion.objects.exists() and not (model_root / "v1").exists() and bucket.keys() == []


@pytest.mark.django_db(transaction=True)
def test_a_classifier_worker_on_another_machine_classifies_with_the_registered_model(
        bucket, settings, media_dirs, model_dir, tmp_path):
    """The real `run_worker --queue-name classify` with an empty MODEL_ROOT of its own."""
    from django.db import connection

    from tests.classifier.test_worker import DB_QUEUE, FAST, wait_for

    settings.TASKS, settings.CLASSIFY_INLINE = DB_QUEUE, False
    model_activate(version=model_register(source_dir=model_dir("v1")).version)
    expected = top_k(registry.active_classifier(force_check=True))[0]
    report = services.report_create(photo=PHOTOS[0]).report

    s, (public, private) = connection.settings_dict, media_dirs
    log = (tmp_path / "worker-b.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "run_worker", "--queue-name", "classify", "--no-startup-delay",
         "--interval", "0.1"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, **bucket.env, **FAST, "DJANGO_SETTINGS_MODULE": "tests.worker_settings",
             "DATABASE_URL": f"postgis://{s['USER']}@{s['HOST']}:{s['PORT']}/{s['NAME']}",
             "MEDIA_ROOT": str(public), "PRIVATE_MEDIA_ROOT": str(private),
             "MODEL_ROOT": str(tmp_path / "machine-b"), "OMP_NUM_THREADS": "1"})
    try:
        wait_for(lambda: Report.objects.get(pk=report.pk).status != Report.Status.PENDING,
                 what=f"machine B's worker to classify ({log.name})")
        heartbeat = wait_for(lambda: WorkerHeartbeat.objects.filter(serving_model="v1").first(),
                             what="machine B's heartbeat")
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    classified = Report.objects.get(pk=report.pk)
    assert classified.model_version == "v1" and heartbeat.model_error == ""
    assert [(slug, round(p, 6)) for slug, p in classified.predicted_top_k] == expected
    assert (tmp_path / "machine-b" / "v1" / "model.onnx").read_bytes() == (settings.MODEL_ROOT / "v1" /
                                                                          "model.onnx").read_bytes()
