"""The three roles (README "Topology"): web, task worker and classifier worker, and PgBouncer between
them and PostgreSQL.

Each role is started here as its own process with its own settings, as systemd starts it
(deploy/systemd, deploy/env), so what a process imports is that process's alone: the test
process itself has ONNX Runtime loaded long before.
"""
import configparser
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection
from django_tasks_db.models import DBTaskResult

from classifier.services import model_activate, model_register
from reports import services
from reports.models import Report

ROOT = Path(__file__).resolve().parents[1]
DB_QUEUE = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default", "classify"]},
            "training": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"}}
PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def database_url(*, port: int | None = None) -> str:
    s = connection.settings_dict
    return f"postgis://{s['USER']}@{s['HOST']}:{port or s['PORT']}/{s['NAME']}"


def run_python(code: str, env: dict, *, timeout: float = 120) -> dict:
    """Run `code` in a fresh interpreter (the role's own process); its last stdout line is JSON."""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                         env={**os.environ, "OMP_NUM_THREADS": "1", **env})
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- deploy/: one unit and one environment file per role -----------------------------------------

ENV_EXAMPLES = {role: ROOT / "deploy" / "env" / f"{role}.env.example" for role in ("web", "worker", "classifier")}
STORAGE_VARIABLES = {"PHOTO_STORAGE", "S3_ENDPOINT_URL", "S3_REGION", "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY",
                     "S3_PRIVATE_BUCKET", "S3_PUBLIC_BUCKET", "S3_PUBLIC_URL", "S3_SIGNED_URL_SECONDS"}


def env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines as systemd's EnvironmentFile= reads them: whole-line comments only, quotes removed."""
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith(("#", ";")):
            key, _, value = line.partition("=")
            values[key] = value[1:-1] if len(value) > 1 and value[0] == value[-1] == '"' else value
    return values


def unit(name: str) -> str:
    return (ROOT / "deploy" / "systemd" / name).read_text()


@pytest.mark.parametrize("role", ENV_EXAMPLES)
def test_each_role_environment_file_comments_every_variable_on_its_own_lines(role):
    lines = ENV_EXAMPLES[role].read_text().splitlines()
    for i, line in enumerate(lines):
        if not line.strip() or line.startswith("#"):
            continue
        assert " #" not in line, f"{role}: systemd would keep this comment in the value: {line}"
        above = i - 1
        while above >= 0 and lines[above] and not lines[above].startswith("#"):
            above -= 1  # variables described together by one comment
        assert above >= 0 and lines[above].startswith("#") and not lines[above].startswith("# ---"), \
            f"{role}: {line.partition('=')[0]} has no comment"


@pytest.mark.parametrize("role", ENV_EXAMPLES)
def test_each_role_environment_file_reads_the_same_in_a_shell_as_in_systemd(role):
    """deploy/crontab sources these files in sh: quoting must make both agree."""
    shell = subprocess.run(["bash", "-c", f'set -a; . "{ENV_EXAMPLES[role]}"; env -0'], capture_output=True,
                           env={}, check=True).stdout.decode()
    sourced = dict(item.split("=", 1) for item in shell.split("\0") if item)
    for key, value in env_file(ENV_EXAMPLES[role]).items():
        assert sourced.get(key) == value, (role, key)


def test_the_roles_settings_and_units_agree():
    web, worker, classifier = (env_file(ENV_EXAMPLES[r]) for r in ("web", "worker", "classifier"))
    assert web["CLASSIFY_INLINE"] == worker["CLASSIFY_INLINE"] == classifier["CLASSIFY_INLINE"] == "false"
    assert classifier["CLASSIFIER_DEVICE"] == "cuda"
    assert all(STORAGE_VARIABLES <= set(env) for env in (web, worker, classifier))
    assert "EnvironmentFile=/etc/civic/web.env" in unit("civic-web.service")
    assert "EnvironmentFile=/etc/civic/worker.env" in unit("civic-worker.service")
    assert "EnvironmentFile=/etc/civic/classifier.env" in unit("civic-classifier-worker.service")
    assert "run_worker --queue-name default\n" in unit("civic-worker.service")
    assert "run_worker --queue-name classify\n" in unit("civic-classifier-worker.service")
    assert "run_worker --backend training\n" in unit("civic-train-worker.service")


def test_every_variable_the_settings_read_is_in_some_role_file():
    sources = [*(ROOT / "config" / "settings").glob("*.py"), ROOT / "deploy" / "gunicorn.conf.py"]
    read = {name for path in sources for name in
            re.findall(r'(?:env(?:\.\w+)?|env_path|os\.environ\.get)\(\s*"([A-Z][A-Z0-9_]*)"', path.read_text())}
    documented = set().union(*(env_file(path) for path in ENV_EXAMPLES.values()))
    assert read - documented == set()


# --- The web role --------------------------------------------------------------------------------

WEB = """
import json, sys
import config.wsgi  # what gunicorn loads (production settings)
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import get_resolver
from tests.images import jpeg

get_resolver().url_patterns  # every URL module and the views it names
web = Client(HTTP_HOST="localhost")
health = web.get("/healthz", secure=True)
pages = [web.get(path, secure=True).status_code
         for path in ("/report/", "/open311/v2/services.json", "/api/v1/reports/geojson/?in_bbox=-1,51,1,52")]
photo = SimpleUploadedFile("pothole.jpg", jpeg(lat=51.5, lon=-0.1, color=(%(color)d, 3, 9)), "image/jpeg")
created = web.post("/api/v1/reports/", {"photo": photo, "latitude": "51.5", "longitude": "-0.1"}, secure=True)
body = lambda r: r.json() if r["Content-Type"] == "application/json" else r.content.decode()[:1000]
print(json.dumps({"health": body(health), "health_status": health.status_code, "pages": pages,
                  "created": created.status_code, "created_body": body(created),
                  "onnxruntime": "onnxruntime" in sys.modules, "torch": "torch" in sys.modules}))
"""


def web_env(media_dirs, *, model_root, inline: bool) -> dict:
    """The web role's environment (deploy/env/web.env.example) on the test database, with HTTPS
    left to the proxy and photos on local disk."""
    public, private = media_dirs
    return {"DJANGO_SETTINGS_MODULE": "config.settings.production", "SECRET_KEY": "roles-test",
            "DATABASE_URL": database_url(), "ALLOWED_HOSTS": "localhost", "SECURE_SSL_REDIRECT": "false",
            "MEDIA_ROOT": str(public), "PRIVATE_MEDIA_ROOT": str(private), "MODEL_ROOT": str(model_root),
            "PHOTO_STORAGE": "local", "CLASSIFY_INLINE": "true" if inline else "false", "MAP_TILE_URL": ""}


@pytest.fixture
def production_cache_table(settings):
    """The production settings' database cache (rate limits, map answers), in the test database."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache",
                                   "LOCATION": "civic_cache"}}
    call_command("createcachetable")


@pytest.mark.django_db(transaction=True)
def test_the_web_role_queues_reports_and_never_imports_onnxruntime_nor_needs_the_model(
        settings, media_dirs, model_dir, production_cache_table, tmp_path):
    settings.CLASSIFY_INLINE = False
    model_activate(version=model_register(source_dir=model_dir("v1")).version)  # a model is active...
    no_model_here = tmp_path / "no-models"  # ...but its files are not on this web node

    out = run_python(WEB % {"color": int(time.time()) % 250},
                     web_env(media_dirs, model_root=no_model_here, inline=False))

    assert out["onnxruntime"] is False and out["torch"] is False
    assert out["health_status"] == 200 and out["health"]["classifier"] == "ok", out["health"]
    assert out["health"]["active_model"] == "v1" and "providers" not in out["health"]
    assert out["pages"] == [200, 200, 200] and out["created"] == 201, out["created_body"]
    report = Report.objects.get(service_request_id=out["created_body"]["reference"])
    assert report.status == Report.Status.PENDING  # queued for a classifier worker
    assert DBTaskResult.objects.filter(task_path="classifier.tasks.classify_report", queue_name="classify",
                                       status="READY").count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_web_process_told_to_classify_inline_loads_onnxruntime_and_classifies_at_once(
        settings, media_dirs, model_dir, model_root, production_cache_table):
    """The same check with CLASSIFY_INLINE=true (a one-box install): proves the one above can fail."""
    model_activate(version=model_register(source_dir=model_dir("v1")).version)

    out = run_python(WEB % {"color": int(time.time()) % 250 + 1}, web_env(media_dirs, model_root=model_root,
                                                                         inline=True))

    assert out["onnxruntime"] is True and out["torch"] is False
    assert out["created"] == 201 and "CPUExecutionProvider" in out["health"]["providers"], out["created_body"]
    report = Report.objects.get(service_request_id=out["created_body"]["reference"])
    assert report.status != Report.Status.PENDING and report.model_version == "v1"
    assert not DBTaskResult.objects.filter(task_path="classifier.tasks.classify_report").exists()


# --- The task worker and the classifier worker ---------------------------------------------------

TASK_WORKER = """
import json, sys
import django
django.setup()
from django.core.management import call_command
call_command("run_worker", "--queue-name", "default", "--batch", "--no-startup-delay")
print(json.dumps({"onnxruntime": "onnxruntime" in sys.modules}))
"""


@pytest.mark.django_db(transaction=True)
def test_the_task_worker_sends_mail_and_leaves_classification_to_the_classifier_worker(
        settings, media_dirs, unique_jpeg):
    from aiosmtpd.controller import Controller

    class Inbox:
        def __init__(self):
            self.messages = []

        async def handle_DATA(self, server, session, envelope):  # aiosmtpd handler hook
            self.messages.append(envelope.rcpt_tos)
            return "250 OK"

    settings.TASKS, settings.CLASSIFY_INLINE = DB_QUEUE, False
    inbox, smtp_port = Inbox(), free_port()
    smtp = Controller(inbox, hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    try:
        report = services.report_create(photo=unique_jpeg(lat=51.5, lon=-0.1), reporter_email="ann@example.org").report
        queued = {t.task_path.rsplit(".", 1)[-1]: t.queue_name for t in DBTaskResult.objects.all()}
        assert queued == {"classify_report": "classify", "send_message": "default"}

        public, private = media_dirs
        out = run_python(TASK_WORKER, {"DJANGO_SETTINGS_MODULE": "tests.worker_settings",
                                       "DATABASE_URL": database_url(), "EMAIL_URL": f"smtp://127.0.0.1:{smtp_port}",
                                       "MEDIA_ROOT": str(public), "PRIVATE_MEDIA_ROOT": str(private)})
    finally:
        smtp.stop()
    assert inbox.messages == [["ann@example.org"]] and out["onnxruntime"] is False
    assert DBTaskResult.objects.get(task_path="notifications.tasks.send_message").status == "SUCCESSFUL"
    assert DBTaskResult.objects.get(task_path="classifier.tasks.classify_report").status == "READY"
    assert Report.objects.get(pk=report.pk).status == Report.Status.PENDING  # not the task worker's job

    call_command("run_worker", "--queue-name", "classify", "--batch", "--no-startup-delay")  # the classifier worker
    assert DBTaskResult.objects.get(task_path="classifier.tasks.classify_report").status == "SUCCESSFUL"
    assert Report.objects.get(pk=report.pk).status == Report.Status.NEEDS_REVIEW  # no model yet: staff triage


# --- PgBouncer in transaction mode ---------------------------------------------------------------

def pgbouncer_config(folder: Path, *, port: int) -> Path:
    """deploy/pgbouncer.ini's [pgbouncer] settings, with this test's port, database and trust
    authentication (the test cluster trusts loopback)."""
    shipped = configparser.ConfigParser()
    shipped.read(ROOT / "deploy" / "pgbouncer.ini")
    assert shipped["pgbouncer"]["pool_mode"] == "transaction"
    s = connection.settings_dict
    ini = configparser.ConfigParser()
    ini["databases"] = {s["NAME"]: f"host={s['HOST']} port={s['PORT']} dbname={s['NAME']}"}
    ini["pgbouncer"] = {**shipped["pgbouncer"], "listen_addr": "127.0.0.1", "listen_port": str(port),
                        "unix_socket_dir": "", "auth_type": "trust", "auth_file": str(folder / "userlist.txt"),
                        "admin_users": s["USER"], "default_pool_size": "2"}
    (folder / "userlist.txt").write_text(f'"{s["USER"]}" ""\n')
    with (folder / "pgbouncer.ini").open("w") as f:
        ini.write(f)
    return folder / "pgbouncer.ini"


@pytest.fixture
def pgbouncer():
    """Debian's pgbouncer on a free loopback port in front of the test database; yields the port.
    As root it runs as `postgres` (pgbouncer refuses root), so its folder is readable by all."""
    if not Path(PGBOUNCER).exists():
        pytest.fail("pgbouncer is not installed: bash deploy/dev/system-deps.sh")
    folder = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
    folder.chmod(0o755)
    port = free_port()
    config = pgbouncer_config(folder, port=port)
    as_root = ["-u", "postgres"] if os.getuid() == 0 else []
    log = (folder / "pgbouncer.log").open("w+b")  # opened here: written through the inherited descriptor
    proc = subprocess.Popen([PGBOUNCER, *as_root, str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise AssertionError(f"pgbouncer did not start: {log.read().decode()[-2000:]}")
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()
        shutil.rmtree(folder, ignore_errors=True)


def pgbouncer_stats(port: int) -> dict:
    """SHOW STATS of the admin console for the test database (psql: the console speaks only the simple protocol)."""
    psql = shutil.which("psql") or "/usr/lib/postgresql/15/bin/psql"
    out = subprocess.run([psql, "-h", "127.0.0.1", "-p", str(port), "-U", connection.settings_dict["USER"],
                          "-d", "pgbouncer", "-c", "SHOW STATS", "-A", "-F", "\t", "-P", "footer=off"],
                         capture_output=True, text=True, check=True, timeout=30).stdout.splitlines()
    header, *rows = [line.split("\t") for line in out]
    return next(dict(zip(header, row)) for row in rows if row[0] == connection.settings_dict["NAME"])


THROUGH_POOLER = """
import json
import django
django.setup()
from django.conf import settings
from django.core.management import call_command
from reports.models import Report
from reports.services import report_create
from tests.images import jpeg

db = settings.DATABASES["default"]
report = report_create(photo=jpeg(lat=51.5, lon=-0.1, color=(%(color)d, 5, 1))).report  # intake: one transaction
call_command("run_worker", "--queue-name", "classify", "--batch", "--no-startup-delay")  # claims: SKIP LOCKED
seen = sum(1 for _ in Report.objects.order_by("pk").iterator(chunk_size=1))  # would be a server-side cursor
print(json.dumps({"report": report.pk, "seen": seen, "conn_max_age": db["CONN_MAX_AGE"],
                  "no_server_side_cursors": db["DISABLE_SERVER_SIDE_CURSORS"],
                  "prepare_threshold": db["OPTIONS"].get("prepare_threshold", "unset")}))
"""


@pytest.mark.django_db(transaction=True)
def test_intake_and_the_task_queue_work_through_pgbouncer_in_transaction_mode(pgbouncer, media_dirs):
    public, private = media_dirs

    out = run_python(THROUGH_POOLER % {"color": int(time.time()) % 250},
                     {"DJANGO_SETTINGS_MODULE": "tests.worker_settings", "DATABASE_POOLER": "pgbouncer",
                      "DATABASE_URL": database_url(port=pgbouncer),
                      "MEDIA_ROOT": str(public), "PRIVATE_MEDIA_ROOT": str(private)})

    assert (out["conn_max_age"], out["no_server_side_cursors"], out["prepare_threshold"]) == (0, True, None)
    assert out["seen"] == 1
    report = Report.objects.get(pk=out["report"])
    assert report.status == Report.Status.NEEDS_REVIEW  # classified by the worker (no model yet: staff triage)
    assert DBTaskResult.objects.get(task_path="classifier.tasks.classify_report").status == "SUCCESSFUL"
    assert int(pgbouncer_stats(pgbouncer)["total_xact_count"]) >= 5  # a fresh pooler: it all went through it


def test_an_unknown_database_pooler_is_refused_at_start_up():
    out = subprocess.run([sys.executable, "-c", "import config.settings.base"], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, env={**os.environ, "DATABASE_POOLER": "pgpool"})
    assert out.returncode != 0 and "DATABASE_POOLER='pgpool'; choose pgbouncer" in out.stderr


# --- deploy/gpu-check.sh -------------------------------------------------------------------------

def test_the_gpu_check_runs_the_workers_path_and_says_so_when_there_is_no_cuda(exported_model, tmp_path):
    import onnxruntime

    from tests.images import jpeg

    for i in range(2):
        (tmp_path / f"{i}.jpg").write_bytes(jpeg(color=(40 * i, 90, 200), size=(1200, 900)))
    out = subprocess.run(["bash", str(ROOT / "deploy" / "gpu-check.sh"), str(exported_model), str(tmp_path)],
                         capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHON": sys.executable, "BATCH_SIZES": "1,2", "OMP_NUM_THREADS": "1"})
    report = json.loads(out.stdout)
    assert set(report["worker_path_cpu"]) == {"1", "2"} and report["photos"] == 2
    assert report["worker_path_cpu"]["2"]["images_per_s"] > 0
    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():  # a GPU machine
        assert out.returncode == 0 and report["ok"] and report["agreement"]["top1_same"] == "2/2", report
    else:
        assert out.returncode == 2 and report["cuda"] is False
        assert "no usable CUDA here" in report["failures"][0]
