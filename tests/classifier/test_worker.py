"""The production path: tasks queued in PostgreSQL (django-tasks-db) and run by a worker."""
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from classifier.models import WorkerHeartbeat
from classifier.services import model_activate, model_register
from classifier.worker import heartbeat_write, served_queues
from config.health import health
from reports import services
from reports.models import Report


@pytest.mark.django_db(transaction=True)
def test_report_waits_in_the_database_queue_until_the_worker_classifies_it(settings, model_dir, unique_jpeg):
    settings.TASKS, settings.CLASSIFY_INLINE = DB_QUEUE, False
    from django_tasks_db.models import DBTaskResult

    model_register(source_dir=model_dir("v1"))
    model_activate(version="v1")
    report = services.report_create(photo=unique_jpeg(lat=51.5, lon=-0.1)).report
    assert Report.objects.get(pk=report.pk).status == Report.Status.PENDING  # queued, not run
    assert DBTaskResult.objects.filter(task_path="classifier.tasks.classify_report", queue_name="classify").count() == 1
    call_command("db_worker", "--batch", "--no-startup-delay", "--queue-name", "classify")
    report.refresh_from_db()
    assert report.model_version == "v1" and report.status != Report.Status.PENDING


# --- Workers that recover by themselves (issue 13, items 8 and 9) -------------------------------
# These start the real `manage.py run_worker` (django-tasks-db's worker with a heartbeat, a lease
# and a catch-up) as a subprocess on the test database, with short timings.

ROOT = Path(__file__).resolve().parents[2]
DB_QUEUE = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default", "classify"]},
            "training": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"}}
FAST = {"WORKER_HEARTBEAT_SECONDS": "0.2", "WORKER_LEASE_SECONDS": "2", "WORKER_CATCHUP_SECONDS": "0.5",
        "CLASSIFIER_RELOAD_SECONDS": "0.1", "WORKER_RECONNECT_MAX_SECONDS": "1"}


def wait_for(condition, *, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def worker_db_url() -> str:
    s = connection.settings_dict
    return f"postgis://{s['USER']}@{s['HOST']}:{s['PORT']}/{s['NAME']}"


@pytest.fixture
def start_worker(media_dirs, model_root, tmp_path):
    """Start the classifier worker, `manage.py run_worker --queue-name classify` (settings:
    tests.worker_settings), with the test's folders; `queue="default"` starts a task worker."""
    started = []

    def start(*, database_url: str, queue: str = "classify", **env):
        public, private = media_dirs
        log = (tmp_path / f"worker-{len(started)}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "run_worker", "--queue-name", queue, "--no-startup-delay",
             "--interval", "0.1"], cwd=ROOT,
            stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.worker_settings", "DATABASE_URL": database_url,
                 "MEDIA_ROOT": str(public), "PRIVATE_MEDIA_ROOT": str(private), "MODEL_ROOT": str(model_root),
                 "OMP_NUM_THREADS": "1", **FAST, **env})
        proc.log_path = log.name
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def status_of(report) -> str:
    return Report.objects.filter(pk=report.pk).values_list("status", flat=True).get()


@pytest.mark.django_db(transaction=True)
def test_a_task_left_running_by_a_killed_worker_is_requeued_after_the_lease(settings, start_worker, unique_jpeg):
    from django_tasks_db.models import DBTaskResult

    settings.TASKS, settings.CLASSIFY_INLINE = DB_QUEUE, False
    report = services.report_create(photo=unique_jpeg(lat=51.5, lon=-0.1)).report
    # What a worker killed mid-batch leaves behind: its task RUNNING, claimed by a worker that is gone.
    DBTaskResult.objects.update(status="RUNNING", started_at=timezone.now() - timedelta(minutes=10),
                                worker_ids=["killed-mid-batch"])
    proc = start_worker(database_url=worker_db_url(), PENDING_CATCHUP_AFTER_SECONDS="3600")  # lease only
    wait_for(lambda: status_of(report) != Report.Status.PENDING, what=f"the re-queued task ({proc.log_path})")
    # The task's own row is marked done just after the report's transaction commits.
    wait_for(lambda: DBTaskResult.objects.get().status != "RUNNING", what=f"the task to finish ({proc.log_path})")
    task = DBTaskResult.objects.get()
    assert task.status == "SUCCESSFUL" and task.worker_ids[0] == "killed-mid-batch" and len(task.worker_ids) == 2


@pytest.mark.django_db(transaction=True)
def test_reports_waiting_for_a_broken_model_are_classified_once_the_file_is_back(
        settings, start_worker, model_dir, model_root, unique_jpeg):
    settings.TASKS, settings.CLASSIFY_INLINE = DB_QUEUE, False
    model_activate(version=model_register(source_dir=model_dir("v1")).version)
    onnx = model_root / "v1" / "model.onnx"
    good = onnx.read_bytes()
    onnx.write_bytes(b"garbage")
    proc = start_worker(database_url=worker_db_url(), PENDING_CATCHUP_AFTER_SECONDS="0")
    report = services.report_create(photo=unique_jpeg(lat=51.5, lon=-0.1)).report
    wait_for(lambda: WorkerHeartbeat.objects.exclude(model_error="").exists(),
             what=f"the worker to report the broken model ({proc.log_path})")
    assert status_of(report) == Report.Status.PENDING  # waits, never guessed
    body, _ = health()
    assert body["status"] == "degraded" and body["classifier"] == "degraded"
    onnx.write_bytes(good)  # restored: nobody runs classify_pending
    wait_for(lambda: status_of(report) != Report.Status.PENDING, what=f"the catch-up ({proc.log_path})")
    assert Report.objects.get(pk=report.pk).model_version == "v1"
    heartbeat_write(worker_id="mail", backend="default", started_at=timezone.now(), queues=["default"])  # task worker
    wait_for(lambda: health()[0]["status"] == "ok", what="/healthz to turn ok")


@pytest.mark.django_db
def test_healthz_gives_the_same_answer_whether_or_not_this_process_loaded_the_broken_model(
        client, model_dir, model_root, unique_jpeg):
    from classifier import registry

    model_activate(version=model_register(source_dir=model_dir("v1")).version)
    assert registry.active_classifier(force_check=True) is not None  # a process that loaded it earlier
    onnx = model_root / "v1" / "model.onnx"
    good = onnx.read_bytes()
    onnx.write_bytes(b"garbage")
    loaded = client.get("/healthz").json()
    registry.reset()  # a process started since (or a restarted worker)
    fresh = client.get("/healthz").json()
    assert loaded["status"] == fresh["status"] == "degraded"
    assert loaded["classifier"] == fresh["classifier"] == "degraded" and "sha256" in fresh["error"]
    onnx.write_bytes(good)
    assert client.get("/healthz").json()["status"] == "ok"


@pytest.mark.django_db
def test_a_web_node_that_never_classifies_learns_of_broken_model_files_from_the_classifier_worker(
        settings, client, model_dir, model_root):
    settings.CLASSIFY_INLINE = False  # the web role: neither ONNX Runtime nor the model's files
    model_activate(version=model_register(source_dir=model_dir("v1")).version)
    (model_root / "v1" / "model.onnx").write_bytes(b"garbage")
    heartbeat_write(worker_id="mail", backend="default", started_at=timezone.now(), queues=["default"])  # a task worker
    assert client.get("/healthz").json()["classifier"] == "ok"  # nobody who classifies has looked yet
    heartbeat_write(worker_id="gpu-1", backend="default", started_at=timezone.now(), queues=["classify"])
    body = client.get("/healthz").json()
    assert body["classifier"] == "degraded" and "sha256" in body["error"]


@pytest.mark.django_db
def test_healthz_is_degraded_while_no_worker_has_been_seen(settings, client):
    settings.TASKS, settings.CLASSIFY_INLINE = DB_QUEUE, False
    body = client.get("/healthz").json()
    assert body["status"] == "degraded" and body["worker"] == "not_seen"
    assert any("worker" in why for why in body["degraded_because"])
    heartbeat_write(worker_id="w1", backend="default", started_at=timezone.now(),
                    queues=served_queues(backend="default", queue_names=["*"]))  # `run_worker --queue-name '*'`
    body = client.get("/healthz").json()
    assert body["status"] == "ok" and body["worker"] == "ok" and body["worker_last_seen_s"] < 5
    assert body["workers"]["classifier"]["workers_alive"] == body["workers"]["task"]["workers_alive"] == 1


@pytest.mark.django_db(transaction=True)
def test_healthz_wants_a_live_classifier_worker_not_just_any_worker(settings, client, start_worker):
    """CLASSIFY_INLINE=false: a live task worker alone is degraded (photos would wait for ever),
    told apart by the queues the real workers' heartbeat rows say they serve."""
    settings.TASKS, settings.CLASSIFY_INLINE = DB_QUEUE, False
    start_worker(database_url=worker_db_url(), queue="default")
    task_worker = wait_for(lambda: WorkerHeartbeat.objects.first(), what="the task worker's heartbeat")
    assert task_worker.queues == ["default"]
    body, status = health()
    assert body["status"] == "degraded" and body["worker"] == "not_seen"
    assert body["workers"]["task"] == {"queue": "default", "status": "ok", "workers_alive": 1,
                                       "last_seen_s": body["workers"]["task"]["last_seen_s"], "tasks_waiting": 0}
    assert body["workers"]["classifier"]["status"] == "not_seen"
    assert body["workers"]["classifier"]["last_seen_s"] is None
    assert body["degraded_because"] == ["no classifier worker (queue classify) seen for 120 s; 0 task(s) waiting"]

    start_worker(database_url=worker_db_url(), queue="classify")
    classifier = wait_for(lambda: WorkerHeartbeat.objects.filter(queues=["classify"]).first(),
                          what="the classifier worker's heartbeat")
    body, _ = health()
    assert body["status"] == "ok" and body["worker"] == "ok", body
    assert body["workers"]["classifier"]["workers_alive"] == body["workers"]["task"]["workers_alive"] == 1

    # Killed: its row stays, but goes silent.
    WorkerHeartbeat.objects.filter(pk=classifier.pk).update(last_seen_at=timezone.now() - timedelta(minutes=5))
    body, _ = health()
    assert body["workers"]["classifier"]["status"] == "not_seen"
    assert body["workers"]["classifier"]["last_seen_s"] >= 300
    assert body["status"] == "degraded"


@pytest.mark.django_db
def test_an_inline_classifier_needs_no_classifier_worker_until_classify_tasks_wait(settings, client):
    from classifier.tasks import catch_up_task

    settings.TASKS, settings.CLASSIFY_INLINE = DB_QUEUE, True  # a one-box install with a task worker
    heartbeat_write(worker_id="mail", backend="default", started_at=timezone.now(), queues=["default"])
    body = client.get("/healthz").json()
    assert body["status"] == "ok" and body["workers"]["classifier"]["status"] == "idle"
    catch_up_task.enqueue()  # something queued classification after all: nobody will run it
    body = client.get("/healthz").json()
    assert body["status"] == "degraded" and body["workers"]["classifier"]["status"] == "not_seen"
    assert body["degraded_because"] == ["no classifier worker (queue classify) seen for 120 s; 1 task(s) waiting"]


@pytest.mark.django_db
def test_a_classifier_worker_alone_leaves_the_task_queue_unserved(settings, client):
    settings.TASKS, settings.CLASSIFY_INLINE = DB_QUEUE, False
    heartbeat_write(worker_id="gpu-1", backend="default", started_at=timezone.now(), queues=["classify"])
    heartbeat_write(worker_id="trainer", backend="training", started_at=timezone.now(), queues=["default"])
    body = client.get("/healthz").json()  # the training worker's "default" is another backend's queue
    assert body["workers"]["task"]["status"] == "not_seen" and body["workers"]["classifier"]["status"] == "ok"
    assert any("no task worker (queue default)" in why for why in body["degraded_because"])


def test_a_worker_on_every_queue_serves_those_the_settings_name_less_the_excluded():
    assert served_queues(backend="default", queue_names=["classify"]) == ["classify"]
    assert served_queues(backend="default", queue_names=["*"]) == ["classify", "default"]
    assert served_queues(backend="default", queue_names=["*"], excluded=["classify"]) == ["default"]


@pytest.mark.django_db
def test_healthz_is_degraded_when_a_report_has_waited_too_long(settings, client, unique_jpeg):
    settings.HEALTH_MAX_PENDING_AGE_SECONDS = 60
    report = services.report_create(photo=unique_jpeg(lat=51.5, lon=-0.1), classify=False).report
    assert client.get("/healthz").json()["status"] == "ok"  # pending, but not for long
    Report.objects.filter(pk=report.pk).update(created_at=timezone.now() - timedelta(minutes=5))
    body = client.get("/healthz").json()
    assert body["status"] == "degraded" and body["oldest_pending_s"] >= 300
    assert any("waited" in why for why in body["degraded_because"])


# --- A database restart (a throwaway cluster of its own, deploy/dev/pg.sh) ----------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


PG_NAME, PG_PORT = "worker-restart-test", _free_port()  # never a fixed port another cluster may hold


def pg(*args: str) -> None:
    subprocess.run(["bash", str(ROOT / "deploy" / "dev" / "pg.sh"), *args], check=True, cwd=ROOT,
                   capture_output=True, timeout=120)


def submit(database_url: str, color: int) -> int:
    """A report submitted by another process (as the web tier would), queued in that database."""
    code = ("from reports.services import report_create; from tests.images import jpeg; "
            f"print(report_create(photo=jpeg(lat=51.5, lon=-0.1, color=({color}, 7, {color % 97}))).report.pk)")
    out = subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, check=True,
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.worker_settings",
                              "DATABASE_URL": database_url})
    return int(out.stdout.strip().splitlines()[-1])


def report_status(report_id: int) -> str | None:
    try:
        with psycopg.connect(host="127.0.0.1", port=PG_PORT, user="civic", dbname="civic", connect_timeout=2) as c:
            return c.execute("SELECT status FROM reports_report WHERE id = %s", [report_id]).fetchone()[0]
    except psycopg.OperationalError:
        return None


@pytest.fixture
def restartable_database():
    pg("start", PG_NAME, str(PG_PORT))
    url = f"postgis://civic@127.0.0.1:{PG_PORT}/civic"
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, check=True,
                   capture_output=True, timeout=600,
                   env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.worker_settings", "DATABASE_URL": url})
    yield url
    pg("stop", PG_NAME)


def test_the_worker_survives_a_database_restart_and_classifies_reports_sent_afterwards(
        restartable_database, start_worker):
    proc = start_worker(database_url=restartable_database, PENDING_CATCHUP_AFTER_SECONDS="3600")
    before = submit(restartable_database, color=int(time.time()) % 200)
    wait_for(lambda: report_status(before) == Report.Status.NEEDS_REVIEW,  # cold start: routed to review
             what=f"the first report ({proc.log_path})")
    pg("stop", PG_NAME)
    time.sleep(3)  # the worker meets the outage
    assert proc.poll() is None, Path(proc.log_path).read_text()[-2000:]
    pg("start", PG_NAME, str(PG_PORT))
    after = submit(restartable_database, color=int(time.time()) % 200 + 1)
    wait_for(lambda: report_status(after) == Report.Status.NEEDS_REVIEW, timeout=60,
             what=f"the report sent after the restart ({proc.log_path})")
    assert proc.poll() is None
    assert "database unavailable" in Path(proc.log_path).read_text()
