"""The multi-node run on one machine (issue 17): a cluster on loopback, a bounded load with faults, a verdict.

    bash deploy/dev/cluster.sh            (or `make cluster`; it starts PostGIS and calls this)

Topology, every process on 127.0.0.1 and production settings (config.settings.production):

    locust (N users) ──► nginx ──round robin──► web-1 (gunicorn)  ─┐
                          passive health checks  web-2 (gunicorn)  ─┼─► PgBouncer ─► PostgreSQL + PostGIS
                          (proxy_next_upstream)                     │   (transaction    (the task queue too)
                classify-1, classify-2 (run_worker --queue-name classify)  pooling)
                tasks-1 (run_worker --queue-name default)           ┘
                photos (and the model): the S3 test server, or local folders every process shares

Phases: the load against one web node, then two (throughput measured in the same run), then
with faults: web-1 and classify-1 killed with SIGKILL and restarted after a few seconds (as
systemd would), and PostgreSQL restarted once. Then the workers drain the queue and every
accepted upload is checked in the database: exactly one report for its photo, with the
reference the client was given, its three photo objects (original, public copy, thumbnail) in
storage and a classification by the active model. A 500, a 4xx, a lost or duplicated accepted
report, a missing object or an unclassified report is a FAIL (exit 1); 502/503 answers while a
node or the database is down are expected and counted.

Everything it starts it stops (SIGTERM, then SIGKILL); it writes the process group of each into
WORK/pgids so cluster.sh's trap can end any that outlive it. Only loopback is ever contacted.
"""
from __future__ import annotations

import argparse
import configparser
import hashlib
import io
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
PY = sys.executable
LOCUSTFILE = ROOT / "deploy" / "dev" / "cluster_locustfile.py"
MODEL_VERSION = "cluster-1"
EXPECTED_OUTAGE = {502, 503, 504}  # nginx with no node left, the database restarting
sys.path.insert(0, str(ROOT))


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


# --- Processes --------------------------------------------------------------------------------

@dataclass
class Service:
    """One process of the cluster, in its own process group, so SIGKILL takes the whole node
    (a gunicorn master and its workers) as a crash would."""

    name: str
    argv: list[str]
    env: dict[str, str]
    logs: Path
    pgids: Path
    proc: subprocess.Popen | None = None
    starts: int = 0

    def start(self) -> None:
        self.starts += 1
        out = (self.logs / f"{self.name}.log").open("ab")
        self.proc = subprocess.Popen(self.argv, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        out.close()
        with self.pgids.open("a") as f:
            f.write(f"{self.proc.pid}\n")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        """What `kill -9` of the node does: no cleanup, no goodbye."""
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout: float = 15) -> None:
        if not self.alive():
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def wait_http(url: str, *, timeout: float = 60, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:  # noqa: S310 (loopback only)
                r.read()
                return
        except urllib.error.HTTPError:
            return  # it answers (e.g. 503 degraded): it is up
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"{what or url} did not answer within {timeout:.0f} s")


NGINX_CONF = """\
# Written by deploy/dev/cluster_load.py for one run; nothing outside loopback.
worker_processes 1;
error_log {dir}/error.log warn;
pid {dir}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
    log_format upstream '$remote_addr [$time_local] "$request" $status $request_time '
                        'upstream=$upstream_addr status=$upstream_status time=$upstream_response_time';
    access_log {dir}/access.log upstream;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    client_max_body_size 16m;     # PHOTO_MAX_BYTES (15 MB) and the other fields
    client_body_buffer_size 16m;  # whole uploads in memory: nginx can resend one to the other node
    proxy_max_temp_file_size 0;

    upstream web {{
        # Passive health checks: a node that fails once is left out for fail_timeout.
{servers}
    }}
    server {{
        listen {host}:{port};
        location / {{
            proxy_pass http://web;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            # A node that refuses or drops the connection: try the other one. POSTs too
            # (non_idempotent): an upload is idempotent by its photo's SHA-256 (one report per
            # photo, a unique index), so a resend answers 200 with the report already made.
            proxy_next_upstream error timeout http_502 non_idempotent;
            proxy_next_upstream_tries 2;
            proxy_connect_timeout 2s;
            proxy_read_timeout 60s;
        }}
    }}
}}
"""


def nginx_conf(directory: Path, port: int, web_ports: list[int]) -> str:
    servers = "\n".join(f"        server {HOST}:{p} max_fails=1 fail_timeout=5s;" for p in web_ports)
    return NGINX_CONF.format(dir=directory, host=HOST, port=port, servers=servers)


# --- Photos -----------------------------------------------------------------------------------

def write_photos(folder: Path, count: int, *, seed: int = 17) -> dict[str, str]:
    """`count` distinct phone-like JPEGs (1024x768, EXIF GPS in central London, a camera make);
    returns file name -> SHA-256. A few base scenes, each photo with its own noise patch and
    position, so every file differs (one report per photo) and encoding stays cheap."""
    import numpy as np
    from PIL import Image

    from tests.images import exif_bytes

    rng = np.random.default_rng(seed)
    h, w = 768, 1024
    y, x = np.mgrid[0:h, 0:w]
    scenes = []
    for _ in range(6):
        base = rng.uniform(40, 200, 3)
        wave = 40 * np.sin(x / rng.uniform(8, 60) + y / rng.uniform(20, 90) + rng.uniform(0, 6))
        scenes.append((base[None, None, :] + wave[..., None] + rng.normal(0, 6, (h, w, 3))).clip(0, 255)
                      .astype("uint8"))
    folder.mkdir(parents=True, exist_ok=True)
    hashes = {}
    for i in range(count):
        pixels = scenes[i % len(scenes)].copy()
        py, px = rng.integers(0, h - 64), rng.integers(0, w - 64)
        pixels[py:py + 64, px:px + 64] = rng.integers(0, 256, (64, 64, 3), dtype="uint8")
        lat, lon = 51.45 + rng.uniform(0, 0.1), -0.20 + rng.uniform(0, 0.2)
        out = io.BytesIO()
        Image.fromarray(pixels).save(out, "JPEG", quality=85, exif=exif_bytes(lat=lat, lon=lon, make="CivicPhone"))
        name = f"{i:05d}.jpg"
        (folder / name).write_bytes(out.getvalue())
        hashes[name] = hashlib.sha256(out.getvalue()).hexdigest()
    return hashes


# --- Results ----------------------------------------------------------------------------------

def percentile(ordered: list[float], p: float) -> float:
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def phase_stats(rounds: list[tuple[list[dict], float]]) -> dict:
    """Throughput and p50/p95/p99 (successful requests) per request type, errors by status and
    when they came, over one or more rounds of (records, the round's start). Throughput is
    over the rounds' own wall time (the gaps between them left out); times are seconds from
    each round's start."""
    requests = [(r, t0) for records, t0 in rounds for r in records if "ms" in r]
    if not requests:
        return {"requests": 0}
    walls = []
    for records, _ in rounds:
        mine = [r for r in records if "ms" in r]
        if mine:
            walls.append(max(r["t"] + r["ms"] / 1000 for r in mine) - min(r["t"] for r in mine))
    wall = max(sum(walls), 1e-9)
    ok = lambda r: 200 <= r["status"] < 300  # noqa: E731
    by_type = {}
    for name in sorted({r["name"] for r, _ in requests}):
        mine = [r for r, _ in requests if r["name"] == name]
        good = sorted(r["ms"] for r in mine if ok(r))
        by_type[name] = {"requests": len(mine), "ok": len(good), "per_s": len(good) / wall,
                         "p50": percentile(good, 50), "p95": percentile(good, 95), "p99": percentile(good, 99)}
    errors: dict[str, int] = {}
    windows: dict[str, list[float]] = {}  # status -> [first, last] request start
    timeline: dict[int, list[int]] = {}  # 10 s bucket -> [ok, failed] (requests started in it)
    for r, t0 in requests:
        timeline.setdefault(int((r["t"] - t0) // 10) * 10, [0, 0])[0 if ok(r) else 1] += 1
        if not ok(r):
            key = f"{r['status'] or 'no answer'} {r['name']}"
            errors[key] = errors.get(key, 0) + 1
            w = windows.setdefault(str(r["status"] or "no answer"), [r["t"] - t0, r["t"] - t0])
            w[0], w[1] = min(w[0], r["t"] - t0), max(w[1], r["t"] - t0)
    ok_all = sum(1 for r, _ in requests if ok(r))
    accepted = sum(1 for records, _ in rounds for r in records if "upload" in r and r.get("reference"))
    return {"requests": len(requests), "ok": ok_all, "wall_s": wall, "per_s": ok_all / wall,
            "uploads_accepted_per_s": accepted / wall, "error_rate": 1 - ok_all / len(requests),
            "by_type": by_type, "errors": errors, "windows": windows, "timeline": dict(sorted(timeline.items())),
            "rounds_per_s": [phase_stats([one])["per_s"] for one in rounds] if len(rounds) > 1 else []}


def error_samples(records: list[dict], limit: int = 6) -> list[str]:
    seen, out = set(), []
    for r in records:
        if "ms" in r and not 200 <= r["status"] < 300:
            key = (r["status"], r["name"])
            if key not in seen:
                seen.add(key)
                out.append(f"{r['status'] or 'no answer'} {r['name']}: {(r.get('error') or '').strip()[:120]}")
    return out[:limit]


# --- The run ----------------------------------------------------------------------------------

@dataclass
class Run:
    args: argparse.Namespace
    work: Path
    env: dict[str, str] = field(default_factory=dict)
    services: dict[str, Service] = field(default_factory=dict)
    events: list[tuple[float, str]] = field(default_factory=list)
    nginx: Service | None = None
    nginx_port: int = 0
    web_ports: list[int] = field(default_factory=list)
    next_photo: int = 0
    api_key: str = ""
    queues: tuple[str, str] = ("default", "default")  # classifier workers', task worker's
    phase_t0: dict[str, float] = field(default_factory=dict)  # when each phase's load started
    s3_port: int = 0

    @property
    def logs(self) -> Path:
        return self.work / "logs"

    def service(self, name: str, argv: list[str], env: dict | None = None) -> Service:
        env = {**self.env, **(env or {})}
        if env.get("MODEL_STORAGE") == "s3":  # as on separate machines: no shared model folder
            env["MODEL_ROOT"] = str(self.work / "model-cache" / name)
        svc = Service(name, argv, env, self.logs, self.work / "pgids")
        self.services[name] = svc
        return svc

    def event(self, what: str) -> None:
        self.events.append((time.time(), what))
        log(what)

    # set-up

    def configure(self) -> None:
        a = self.args
        media = self.work / "media"
        self.env = {
            **{k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL")},
            "DJANGO_SETTINGS_MODULE": "config.settings.production",
            "SECRET_KEY": secrets.token_urlsafe(40),
            "DATABASE_URL": f"postgis://civic@{HOST}:{a.pg_port}/civic",
            "ALLOWED_HOSTS": f"{HOST},localhost",
            "SECURE_SSL_REDIRECT": "false", "SECURE_COOKIES": "false", "SECURE_HSTS_SECONDS": "0",
            "TRUSTED_PROXIES": f"{HOST}/32",  # nginx: X-Forwarded-For is believed from it only
            "MEDIA_ROOT": str(media / "public"), "PRIVATE_MEDIA_ROOT": str(media / "private"),
            "MODEL_ROOT": str(self.work / "models"), "STATIC_ROOT": str(self.work / "static"),
            "RETRAIN_DIR": str(self.work / "retrain"), "TRAINING_FEATURE_CACHE": str(self.work / "feature-cache"),
            "EMAIL_URL": "dummymail://", "SITE_URL": "http://127.0.0.1",
            "CLASSIFY_INLINE": "false",  # the web role never classifies (issue 17 item 2)
            "CLASSIFIER_DEVICE": "cpu", "CLASSIFIER_THREADS": "1", "OMP_NUM_THREADS": "1",
            # Workers that notice a dead peer within seconds, not the production minute.
            "WORKER_HEARTBEAT_SECONDS": "2", "WORKER_LEASE_SECONDS": "10", "WORKER_CATCHUP_SECONDS": "5",
            "PENDING_CATCHUP_AFTER_SECONDS": "15", "WORKER_RECONNECT_MAX_SECONDS": "4",
            "LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1",
        }
        if a.storage == "s3":  # the S3 test server (tests/s3server.py: moto's server mode) on loopback
            from tests.s3server import ACCESS_KEY, REGION, SECRET_KEY

            self.s3_port = free_port()
            self.env.update(PHOTO_STORAGE="s3", S3_ENDPOINT_URL=f"http://{HOST}:{self.s3_port}", S3_REGION=REGION,
                            S3_ACCESS_KEY_ID=ACCESS_KEY, S3_SECRET_ACCESS_KEY=SECRET_KEY,
                            S3_PRIVATE_BUCKET="civic-private", S3_PUBLIC_BUCKET="civic-public",
                            MODEL_STORAGE="s3")  # the model too: each process below has its own MODEL_ROOT
        os.environ.update(self.env)

    def start_s3(self) -> None:
        """Both photo buckets, set up as README says (the public one readable by anyone)."""
        svc = self.service("s3", [PY, "-m", "tests.s3server", "--port", str(self.s3_port), "--quiet",
                                  "--private-bucket", self.env["S3_PRIVATE_BUCKET"],
                                  "--public-bucket", self.env["S3_PUBLIC_BUCKET"]])
        svc.start()
        deadline = time.monotonic() + 60
        while "S3 on" not in (self.logs / "s3.log").read_text():  # printed once the buckets exist
            if time.monotonic() > deadline or not svc.alive():
                raise SystemExit(f"the S3 test server did not start; see {self.logs / 's3.log'}")
            time.sleep(0.2)

    def prepare_database(self, model_dir: Path) -> None:
        import django

        django.setup()
        from django.core.management import call_command

        from classifier.services import model_activate, model_register
        from classifier.tasks import classify_report
        from reports.apikeys import api_key_create
        from reports.models import ApiKey

        call_command("migrate", verbosity=0)
        call_command("createcachetable", verbosity=0)
        call_command("seed_categories", stdout=io.StringIO())
        key_row, self.api_key = api_key_create(name="cluster load")
        # One client sending hundreds of reports: its key's quota must not be what is measured.
        ApiKey.objects.filter(pk=key_row.pk).update(reports_per_hour=1_000_000)
        model_activate(version=model_register(source_dir=model_dir).version)
        if classify_report.queue_name != "default":  # its own queue (issue 17 item 2)
            self.queues = (classify_report.queue_name, "default")
        from django.db import connections

        connections.close_all()

    def start_cluster(self) -> None:
        a = self.args
        worker = [PY, "manage.py", "run_worker", "--no-startup-delay", "--interval", "0.2"]
        classify_q, tasks_q = self.queues
        for i in (1, 2):
            self.service(f"classify-{i}", [*worker, "--queue-name", classify_q]).start()
        self.service("tasks-1", [*worker, "--queue-name", tasks_q]).start()
        self.web_ports = [free_port(), free_port()]
        for i, port in enumerate(self.web_ports, 1):
            self.service(f"web-{i}", [PY, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "config.wsgi"],
                         {"BIND": f"{HOST}:{port}", "WEB_CONCURRENCY": str(a.web_workers),
                          "FORWARDED_ALLOW_IPS": HOST})
        self.services["web-1"].start()
        wait_http(f"http://{HOST}:{self.web_ports[0]}/healthz", what="web-1")
        ndir = self.work / "nginx"
        ndir.mkdir()
        self.nginx_port = free_port()
        (ndir / "nginx.conf").write_text(nginx_conf(ndir, self.nginx_port, self.web_ports[:1]))
        self.nginx = self.service("nginx", ["nginx", "-p", str(ndir), "-c", str(ndir / "nginx.conf"),
                                            "-g", "daemon off;"])
        self.nginx.start()
        wait_http(f"http://{HOST}:{self.nginx_port}/healthz", what="nginx")

    def start_pgbouncer(self) -> None:
        """PgBouncer in transaction mode between every role and PostgreSQL: deploy/pgbouncer.ini's
        [pgbouncer] settings with loopback, a free port and trust (as tests/test_roles.py does).
        As root it runs as `postgres` (pgbouncer refuses root), so its folder is world-readable."""
        folder = self.work / "pgbouncer"
        folder.mkdir()
        folder.chmod(0o755)
        self.work.chmod(0o711)  # `postgres` passes through to it; nothing else here is readable
        port = free_port()
        shipped = configparser.ConfigParser()
        shipped.read(ROOT / "deploy" / "pgbouncer.ini")
        ini = configparser.ConfigParser()
        ini["databases"] = {"civic": f"host={HOST} port={self.args.pg_port} dbname=civic"}
        ini["pgbouncer"] = {**shipped["pgbouncer"], "listen_addr": HOST, "listen_port": str(port),
                            "unix_socket_dir": "", "auth_type": "trust", "auth_file": str(folder / "userlist.txt"),
                            "admin_users": "civic",
                            **({"server_login_retry": str(self.args.pgbouncer_login_retry)}
                               if self.args.pgbouncer_login_retry is not None else {})}
        (folder / "userlist.txt").write_text('"civic" ""\n')
        with (folder / "pgbouncer.ini").open("w") as f:
            ini.write(f)
        binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
        self.service("pgbouncer", [binary, *(["-u", "postgres"] if os.getuid() == 0 else []),
                                   str(folder / "pgbouncer.ini")]).start()
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection((HOST, port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or not self.services["pgbouncer"].alive():
                    raise SystemExit(f"pgbouncer did not start; see {self.logs / 'pgbouncer.log'}") from None
                time.sleep(0.1)
        self.env.update(DATABASE_URL=f"postgis://civic@{HOST}:{port}/civic", DATABASE_POOLER="pgbouncer")

    def requeued_tasks(self) -> tuple[int, int]:
        """Tasks put back on the queue (classifier.worker logs each): (those of a worker silent for
        the lease, e.g. the killed classifier worker's; those a worker lost with the database)."""
        silent = lost = 0
        for log_file in self.logs.glob("*.log"):
            if log_file.name.startswith(("classify-", "tasks-")):
                text = log_file.read_text(errors="replace")
                silent += len(re.findall(r"task \S+ of silent worker \S+ re-queued", text))
                lost += sum(int(n) for n in re.findall(r"re-queued (\d+) task\(s\) this worker lost", text))
        return silent, lost

    def nginx_retries(self) -> int:
        """Requests nginx passed on to the other node after the first failed (passive health check)."""
        access = self.work / "nginx" / "access.log"
        if not access.exists():
            return 0
        return sum(1 for line in access.read_text().splitlines()
                   if (m := re.search(r"upstream=(.*?) status=", line)) and "," in m.group(1))

    def use_nodes(self, n: int) -> None:
        """nginx sends to the first `n` web nodes (a graceful reload: old workers finish)."""
        web2 = self.services["web-2"]
        if n > 1 and not web2.alive():
            web2.start()
            wait_http(f"http://{HOST}:{self.web_ports[1]}/healthz", what="web-2")
        ndir = self.work / "nginx"
        (ndir / "nginx.conf").write_text(nginx_conf(ndir, self.nginx_port, self.web_ports[:n]))
        self.nginx.proc.send_signal(signal.SIGHUP)
        time.sleep(1.5)
        self.event(f"nginx -> {', '.join(f'web-{i}' for i in range(1, n + 1))}")

    # load

    def load(self, phase: str, seconds: float, faults=None) -> list[dict]:
        results = self.work / f"results-{phase}.jsonl"
        env = {**self.env, "CLUSTER_PHOTOS": str(self.work / "photos"), "CLUSTER_PHOTO_START": str(self.next_photo),
               "CLUSTER_API_KEY": self.api_key, "CLUSTER_PHASE": phase, "CLUSTER_RESULTS": str(results)}
        users = str(self.args.users)
        argv = [PY, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "-u", users, "-r", users,
                "-t", f"{seconds:.0f}s", "--stop-timeout", "60", "-H", f"http://{HOST}:{self.nginx_port}",
                "--only-summary", "--loglevel", "WARNING", "--exit-code-on-error", "0"]
        self.event(f"phase {phase}: {users} users for {seconds:.0f} s")
        self.phase_t0[phase] = time.time()
        out = (self.logs / f"locust-{phase}.log").open("wb")
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        with (self.work / "pgids").open("a") as f:
            f.write(f"{proc.pid}\n")
        thread = None
        if faults:
            thread = threading.Thread(target=faults, daemon=True)
            thread.start()
        try:
            proc.wait(timeout=seconds + 120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise SystemExit(f"locust ({phase}) did not stop; see {self.logs / f'locust-{phase}.log'}") from None
        finally:
            out.close()
        if thread:
            thread.join()
        records = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
        self.next_photo = max([r["next_photo"] for r in records if "next_photo" in r] + [self.next_photo])
        return records

    def faults(self) -> None:
        """The fault schedule, in seconds from the phase's start (a thread beside the load)."""
        a = self.args
        t0 = time.monotonic()

        def at(second: float) -> None:
            time.sleep(max(0.0, t0 + second - time.monotonic()))

        at(a.fault_at[0])
        self.services["web-1"].kill9()
        self.event("kill -9 web-1 (gunicorn master and workers)")
        at(a.fault_at[0] + a.restart_after)
        self.services["web-1"].start()
        self.event("web-1 restarted")
        at(a.fault_at[1])
        self.services["classify-1"].kill9()
        self.event("kill -9 classify-1")
        at(a.fault_at[1] + a.restart_after)
        self.services["classify-1"].start()
        self.event("classify-1 restarted")
        at(a.fault_at[2])
        self.event("PostgreSQL stopping (pg_ctl -m fast)")
        pg = ["bash", str(ROOT / "deploy" / "dev" / "pg.sh")]
        subprocess.run([*pg, "stop", a.pg_name], check=True, capture_output=True)
        time.sleep(a.pg_down)
        subprocess.run([*pg, "start", a.pg_name, str(a.pg_port)], check=True, capture_output=True)
        self.event(f"PostgreSQL started again (down about {a.pg_down:g} s)")

    # verdict

    def drain(self) -> float:
        """Wait (bounded) until no report is pending classification; returns the seconds waited."""
        from django.db import connections

        from reports.models import Report

        connections.close_all()  # the driver's own connection did not survive the restart
        started = time.monotonic()
        while time.monotonic() - started < self.args.drain_seconds:
            pending = Report.objects.filter(status=Report.Status.PENDING).count()
            if pending == 0:
                break
            time.sleep(1)
        return time.monotonic() - started

    def check(self, uploads: list[dict], hashes: dict[str, str]) -> tuple[list[str], dict]:
        """Every accepted upload: one report for its photo, the reference the client got, three
        objects in storage, classified by the active model. Returns (failures, counts)."""
        from reports.models import Report

        failures: list[str] = []
        accepted: dict[str, str] = {}  # sha256 -> reference
        for u in uploads:
            if u.get("reference"):
                sha = hashes[u["upload"]]
                if accepted.setdefault(sha, u["reference"]) != u["reference"]:
                    failures.append(f"{u['upload']}: two references {accepted[sha]} and {u['reference']}")
        rows: dict[str, list] = {}
        for r in Report.objects.filter(photo_sha256__in=list(hashes.values())):
            rows.setdefault(r.photo_sha256, []).append(r)
        for sha, reference in accepted.items():
            found = rows.get(sha, [])
            if len(found) != 1:
                failures.append(f"photo {sha[:12]} accepted as {reference}: {len(found)} reports in the database")
            elif found[0].service_request_id != reference:
                failures.append(f"photo {sha[:12]}: client got {reference}, database has {found[0].service_request_id}")
        # Every report made from the photos sent, accepted or cut off by a kill: objects and a classification.
        unclassified = missing_objects = 0
        for report in (r for found in rows.values() for r in found):
            for f in (report.photo_original, report.photo_public, report.photo_thumbnail):
                if not f.name or not f.storage.exists(f.name):
                    missing_objects += 1
                    failures.append(f"{report.service_request_id}: {f.field.name} {f.name!r} missing from storage")
            if report.status == Report.Status.PENDING or report.classified_at is None \
                    or report.model_version != MODEL_VERSION:
                unclassified += 1
                failures.append(f"{report.service_request_id}: not classified (status {report.status}, "
                                f"model {report.model_version!r})")
        lags = sorted((r.classified_at - r.created_at).total_seconds() for found in rows.values() for r in found
                      if r.classified_at)
        unseen = sum(len(v) for sha, v in rows.items() if sha not in accepted)
        attempts: dict[str, int] = {}
        for u in uploads:
            attempts[u["upload"]] = attempts.get(u["upload"], 0) + 1
        counts = {"accepted": len(accepted), "reports": sum(len(v) for v in rows.values()),
                  "unclassified": unclassified, "missing_objects": missing_objects,
                  "committed_but_unanswered": unseen, "orphan_files": self.orphan_files(),
                  "resent": sum(n - 1 for n in attempts.values()),
                  "resent_already_reported": sum(1 for u in uploads if u["status"] == 200),
                  "lag_p50": percentile(lags, 50), "lag_p95": percentile(lags, 95), "lag_max": max(lags, default=0)}
        return failures, counts

    def orphan_files(self) -> list[tuple[str, float]]:
        """Photo objects no report points to, with when each was written: left by an upload whose
        node was killed between writing its files and committing (SIGKILL runs no clean-up).
        Reported with the time, so one written at any other moment (a failed upload whose
        clean-up did not run) stands out; not a failure: nothing refers to them."""
        from django.core.files.storage import storages

        from reports.models import Report

        names = set()
        for row in Report.objects.values_list("photo_original", "photo_public", "photo_thumbnail"):
            names.update(row)
        stored: dict[str, float] = {}
        for alias in ("public", "private"):
            storage = storages[alias]
            if (bucket := getattr(storage, "bucket", None)) is not None:
                stored.update((o.key, o.last_modified.timestamp()) for o in bucket.objects.all())
            elif (root := Path(storage.location)).exists():
                stored.update((str(f.relative_to(root)), f.stat().st_mtime) for f in root.rglob("*") if f.is_file())
        return sorted(((name, t) for name, t in stored.items()
                       if name not in names and not name.startswith("models/")),  # MODEL_STORAGE=s3's files
                      key=lambda o: o[1])

    def stop_all(self) -> None:
        for name in ["nginx", "web-1", "web-2", "classify-1", "classify-2", "tasks-1", "pgbouncer", "s3"]:
            if name in self.services:
                self.services[name].stop()


def report(run: Run, phases: dict[str, dict], counts: dict, failures: list[str], extra: dict) -> str:
    a = run.args
    pooler = "PgBouncer (transaction mode) -> " if "pgbouncer" in run.services else ""
    lines = [f"## Multi-node run: {'PASS' if not failures else 'FAIL'}", "",
             f"machine: {platform.node()} · {os.cpu_count()} CPUs · load average at start {extra['load_start']}, "
             f"at end {extra['load_end']} · Python {platform.python_version()}",
             f"cluster: nginx -> {len(run.web_ports)} web nodes (gunicorn, {a.web_workers} worker(s) x 2 threads "
             f"each) · 2 classifier workers (queue {run.queues[0]}) · 1 task worker (queue {run.queues[1]}) · "
             f"{pooler}PostgreSQL {extra['pg']} · photos: {extra['storage']}",
             f"load: locust, {a.users} users, no pause between requests; {a.rounds} rounds of one node then two "
             f"nodes, {a.phase_seconds:g} s each, then faults {a.fault_seconds:g} s; whole run "
             f"{extra['total_s']:.0f} s", ""]
    lines += ["| phase | requests | ok/s | uploads accepted/s | error rate |", "|---|---:|---:|---:|---:|"]
    for phase, s in phases.items():
        lines.append(f"| {phase} | {s['requests']:,} | {s['per_s']:.1f} | {s['uploads_accepted_per_s']:.2f} | "
                     f"{s['error_rate']:.2%} |")
    one, two = phases.get("one-node"), phases.get("two-nodes")
    if one and two and one["per_s"]:
        lines += ["", f"two web nodes / one: {two['per_s'] / one['per_s']:.2f}x requests/s, "
                      f"{two['uploads_accepted_per_s'] / max(one['uploads_accepted_per_s'], 1e-9):.2f}x uploads/s"
                      + (f" (ok/s per round: one node {', '.join(f'{v:.1f}' for v in one['rounds_per_s'])}; "
                         f"two nodes {', '.join(f'{v:.1f}' for v in two['rounds_per_s'])})" if one["rounds_per_s"] else "")]
    for phase, s in phases.items():
        lines += ["", f"{phase}: latency of successful requests (ms)", "",
                  "| request | requests | ok | ok/s | p50 | p95 | p99 |", "|---|---:|---:|---:|---:|---:|---:|"]
        for name, t in s["by_type"].items():
            lines.append(f"| {name} | {t['requests']:,} | {t['ok']:,} | {t['per_s']:.1f} | {t['p50']:.0f} | "
                         f"{t['p95']:.0f} | {t['p99']:.0f} |")
        if s["errors"]:
            lines += ["", "errors: " + ", ".join(f"{k} x{v}" for k, v in sorted(s["errors"].items())),
                      "answered between: " + ", ".join(f"{status} {w[0]:.1f}-{w[1]:.1f} s"
                                                       for status, w in sorted(s["windows"].items()))]
    if "faults" in phases:
        tl = phases["faults"]["timeline"]
        lines += ["", "faults phase, requests started in each 10 s (ok / failed):", "",
                  "| " + " | ".join(f"{b}-{b + 10} s" for b in tl) + " |", "|" + "---:|" * len(tl),
                  "| " + " | ".join(f"{ok} / {bad}" for ok, bad in tl.values()) + " |"]
    lines += ["", "faults (seconds from the start of the faults phase):"]
    t0 = run.phase_t0.get("faults", 0)
    lines += [f"- {t - t0:5.1f} s  {what}" for t, what in run.events if t >= t0]
    lines += ["", f"nginx passed {extra['nginx_retries']} request(s) on to the other node after the first failed; "
                  f"workers re-queued {extra['requeued'][0]} task(s) of a silent (killed) worker and "
                  f"{extra['requeued'][1]} lost with the database",
              f"classification: created to classified p50 {counts['lag_p50']:.1f} s, p95 {counts['lag_p95']:.1f} s, "
              f"max {counts['lag_max']:.1f} s; "
              + (f"queue drained {extra['drain_s']:.1f} s after the load stopped" if not counts["unclassified"]
                 else f"gave up waiting after {extra['drain_s']:.0f} s"), "",
              f"accepted uploads: {counts['accepted']} · reports in the database for the photos sent: "
              f"{counts['reports']} · unclassified: {counts['unclassified']} · missing objects: "
              f"{counts['missing_objects']}",
              f"uploads sent again after an outage: {counts['resent']} (answered 200, already reported: "
              f"{counts['resent_already_reported']}) · committed but never answered 2xx (not lost; checked "
              f"too): {counts['committed_but_unanswered']} · orphan photo objects: {len(counts['orphan_files'])}"
              + "".join(f"\n  - {name}, written at {t - t0:.1f} s" for name, t in counts["orphan_files"][:10])
              + ("\n  (what `manage.py sweep_orphan_photos` deletes once they are older than its cutoff, 24 h)"
                 if counts["orphan_files"] else "")]
    if extra["out_of_photos"]:
        lines += [f"WARNING: the photos ran out; {extra['out_of_photos']} uploads became map reads (--photos)"]
    if extra["samples"]:
        lines += ["", "error samples:"] + [f"- {s}" for s in extra["samples"]]
    if failures:
        lines += ["", f"FAIL: {len(failures)} problem(s)"] + [f"- {f}" for f in failures[:30]]
    return "\n".join(lines)


def verdict_on_errors(phases: dict[str, dict]) -> list[str]:
    """Only the faults phase may have errors, and only 502/503/504 or a dropped connection."""
    failures = []
    for name, s in phases.items():
        for key, n in s["errors"].items():
            status = int(key.split()[0]) if key.split()[0].isdigit() else 0
            if not (name == "faults" and (status in EXPECTED_OUTAGE or status == 0)):
                failures.append(f"{name}: {n} x {key}")
    return failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="a temporary folder (cluster.sh makes it)")
    parser.add_argument("--pg-name", required=True, help="deploy/dev/pg.sh cluster name (already started)")
    parser.add_argument("--pg-port", type=int, required=True)
    parser.add_argument("--users", type=int, default=8, help="concurrent locust users")
    parser.add_argument("--web-workers", type=int, default=1, help="gunicorn workers per web node (2 threads each)")
    parser.add_argument("--phase-seconds", type=float, default=15, help="each round of a throughput phase")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of one node, then two, alternating")
    parser.add_argument("--fault-seconds", type=float, default=90, help="the phase with the kills and the restart")
    parser.add_argument("--fault-at", type=float, nargs=3, default=[15, 35, 55], metavar=("WEB", "CLASSIFY", "PG"),
                        help="seconds into the faults phase: kill web-1, kill classify-1, restart PostgreSQL")
    parser.add_argument("--restart-after", type=float, default=5, help="seconds a killed process stays down")
    parser.add_argument("--pg-down", type=float, default=3, help="seconds PostgreSQL stays stopped")
    parser.add_argument("--drain-seconds", type=float, default=90, help="at most this long for the queue to drain")
    parser.add_argument("--photos", type=int, default=1200, help="distinct photos written for the uploads")
    parser.add_argument("--storage", choices=["s3", "local"], default="s3",
                        help="photos in the S3 test server (default) or in local folders every process shares")
    parser.add_argument("--no-pgbouncer", action="store_true", help="the roles connect to PostgreSQL directly")
    parser.add_argument("--pgbouncer-login-retry", type=int, metavar="SECONDS",
                        help="PgBouncer's server_login_retry (default: deploy/pgbouncer.ini's, else PgBouncer's 15 s)")
    parser.add_argument("--report", type=Path, help="also write the summary (markdown) and results (JSON) here")
    args = parser.parse_args()

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # `timeout` or Ctrl-C in cluster.sh: still tear down
    started = time.time()
    load_start = " ".join(f"{v:.2f}" for v in os.getloadavg())
    run = Run(args=args, work=args.work)
    run.logs.mkdir(parents=True, exist_ok=True)
    with (args.work / "pgids").open("a") as f:  # this driver's own group first (cluster.sh runs it under timeout)
        f.write(f"{os.getpgid(0)}\n")
    run.configure()
    try:
        log("exporting the model (Lite0 with a fresh head, tests/fixtures_models.py) and writing photos")
        exporter = subprocess.Popen(
            [PY, "-c", "import sys; from pathlib import Path; from tests.fixtures_models import export_test_model; "
                       f"export_test_model(Path(sys.argv[1]), version={MODEL_VERSION!r})", str(args.work / "model-src")],
            cwd=ROOT, env=run.env, stdout=subprocess.DEVNULL, stderr=(run.logs / "export.log").open("wb"))
        hashes = write_photos(args.work / "photos", args.photos)
        if exporter.wait(timeout=180) != 0:
            raise SystemExit(f"model export failed; see {run.logs / 'export.log'}")
        log("migrating, categories, API key, model")
        if args.storage == "s3":
            run.start_s3()
        run.prepare_database(args.work / "model-src")  # straight to PostgreSQL, as a deploy's migrate would
        if not args.no_pgbouncer:
            run.start_pgbouncer()
        run.start_cluster()
        run.event("cluster up: nginx -> web-1; classify-1, classify-2, tasks-1"
                  + (", PgBouncer" if not args.no_pgbouncer else "") + (", S3" if args.storage == "s3" else ""))

        # One node against two, alternating rounds so a neighbour's load on the machine falls on both.
        rounds: dict[str, list[tuple[list[dict], float]]] = {"one-node": [], "two-nodes": [], "faults": []}
        for i in range(1, args.rounds + 1):
            for phase, nodes in (("one-node", 1), ("two-nodes", 2)):
                run.use_nodes(nodes)
                name = f"{phase}-{i}"
                rounds[phase].append((run.load(name, args.phase_seconds), run.phase_t0[name]))
        rounds["faults"].append((run.load("faults", args.fault_seconds, faults=run.faults), run.phase_t0["faults"]))
        log("load stopped; waiting for the workers to drain the queue")
        all_records = [r for rs in rounds.values() for records, _ in rs for r in records]
        drain_s = run.drain()
        failures, counts = run.check([r for r in all_records if "upload" in r], hashes)
        phases = {name: phase_stats(rs) for name, rs in rounds.items()}
        failures += verdict_on_errors(phases)
        from django.db import connection

        with connection.cursor() as cur:
            cur.execute("SHOW server_version")
            pg = cur.fetchone()[0].split()[0]
        extra = {"load_start": load_start, "load_end": " ".join(f"{v:.2f}" for v in os.getloadavg()),
                 "total_s": time.time() - started, "drain_s": drain_s, "pg": pg,
                 "storage": "S3 test server (tests/s3server.py), two buckets; the model in the private one, "
                            "each process its own MODEL_ROOT" if args.storage == "s3"
                 else "local folders",
                 "nginx_retries": run.nginx_retries(), "requeued": run.requeued_tasks(),
                 "out_of_photos": sum(1 for r in all_records if "out_of_photos" in r),
                 "samples": error_samples(all_records)}
        text = report(run, phases, counts, failures, extra)
        print("\n" + text, flush=True)
        if args.report:
            args.report.mkdir(parents=True, exist_ok=True)
            (args.report / "cluster-report.md").write_text(text + "\n")
            results = args.report / "results"  # every request of the run, one JSON line each (a few hundred kB)
            shutil.rmtree(results, ignore_errors=True)
            results.mkdir()
            for f in args.work.glob("results-*.jsonl"):
                shutil.copy(f, results / f.name)
            (args.report / "cluster-report.json").write_text(json.dumps(
                {"phases": phases, "counts": counts, "failures": failures, "events": run.events,
                 "phase_t0": run.phase_t0, **extra}, indent=1))
        return 1 if failures else 0
    finally:
        run.stop_all()


if __name__ == "__main__":
    sys.exit(main())
