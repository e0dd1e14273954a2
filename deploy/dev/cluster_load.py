"""The multi-node run on one machine (issue 17): a cluster on loopback, a bounded load with faults, a verdict.

    bash deploy/dev/cluster.sh            (or `make cluster`; it starts PostGIS and calls this)

Topology, every process on 127.0.0.1 and production settings (config.settings.production):

    locust (N users) ──► nginx ──round robin──► web-1 (gunicorn)  ─┐
                          passive health checks  web-2 (gunicorn)  ─┼──► PostgreSQL + PostGIS
                          (proxy_next_upstream)                     │      (task queue too)
                classify-1, classify-2 (run_worker: classification) ┤
                tasks-1 (run_worker: the other queues)              ┘
                photos: local folders shared by every process, or the S3 test server

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
import hashlib
import io
import json
import os
import platform
import secrets
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


def phase_stats(records: list[dict]) -> dict:
    """Throughput and p50/p95/p99 (successful requests) per request type, errors by status."""
    requests = [r for r in records if "ms" in r]
    if not requests:
        return {"requests": 0}
    start = min(r["t"] for r in requests)
    end = max(r["t"] + r["ms"] / 1000 for r in requests)
    wall = max(end - start, 1e-9)
    by_type = {}
    for name in sorted({r["name"] for r in requests}):
        mine = [r for r in requests if r["name"] == name]
        ok = sorted(r["ms"] for r in mine if 200 <= r["status"] < 300)
        by_type[name] = {"requests": len(mine), "ok": len(ok), "per_s": len(ok) / wall,
                         "p50": percentile(ok, 50), "p95": percentile(ok, 95), "p99": percentile(ok, 99)}
    errors: dict[str, int] = {}
    for r in requests:
        if not 200 <= r["status"] < 300:
            key = f"{r['status'] or 'no answer'} {r['name']}"
            errors[key] = errors.get(key, 0) + 1
    ok_all = sum(1 for r in requests if 200 <= r["status"] < 300)
    uploads = [r for r in records if "upload" in r]
    return {"requests": len(requests), "ok": ok_all, "wall_s": wall, "per_s": ok_all / wall,
            "uploads_accepted_per_s": sum(1 for u in uploads if u.get("reference")) / wall,
            "error_rate": 1 - ok_all / len(requests), "by_type": by_type, "errors": errors}


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

    @property
    def logs(self) -> Path:
        return self.work / "logs"

    def service(self, name: str, argv: list[str], env: dict | None = None) -> Service:
        svc = Service(name, argv, {**self.env, **(env or {})}, self.logs, self.work / "pgids")
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
        os.environ.update(self.env)

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
        call_command("seed_categories", verbosity=0)
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

    def add_second_node(self) -> None:
        self.services["web-2"].start()
        wait_http(f"http://{HOST}:{self.web_ports[1]}/healthz", what="web-2")
        ndir = self.work / "nginx"
        (ndir / "nginx.conf").write_text(nginx_conf(ndir, self.nginx_port, self.web_ports))
        self.nginx.proc.send_signal(signal.SIGHUP)  # graceful reload: new workers, old ones finish
        time.sleep(1.5)
        self.event("web-2 added behind nginx")

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
        unseen = sum(len(v) for sha, v in rows.items() if sha not in accepted)
        counts = {"accepted": len(accepted), "reports": sum(len(v) for v in rows.values()),
                  "unclassified": unclassified, "missing_objects": missing_objects,
                  "committed_but_unanswered": unseen, "orphan_files": self.orphan_files()}
        return failures, counts

    def orphan_files(self) -> int:
        """Photo files no report points to: left by an upload whose node was killed mid-write
        (SIGKILL runs no rollback handler). Reported, not a failure: no report refers to them."""
        from reports.models import Report

        names = set()
        for a, b, c in Report.objects.values_list("photo_original", "photo_public", "photo_thumbnail"):
            names.update((a, b, c))
        count = 0
        for root in (Path(self.env["MEDIA_ROOT"]), Path(self.env["PRIVATE_MEDIA_ROOT"])):
            if root.exists():
                count += sum(1 for p in root.rglob("*") if p.is_file() and str(p.relative_to(root)) not in names)
        return count

    def stop_all(self) -> None:
        for name in ["nginx", "web-1", "web-2", "classify-1", "classify-2", "tasks-1"]:
            if name in self.services:
                self.services[name].stop()


def report(run: Run, phases: dict[str, dict], counts: dict, failures: list[str], extra: dict) -> str:
    a = run.args
    lines = [f"## Multi-node run: {'PASS' if not failures else 'FAIL'}", "",
             f"machine: {platform.node()} · {os.cpu_count()} CPUs · load average at start {extra['load_start']}, "
             f"at end {extra['load_end']} · Python {platform.python_version()}",
             f"cluster: nginx -> {len(run.web_ports)} web nodes (gunicorn, {a.web_workers} worker(s) x 2 threads "
             f"each) · 2 classifier workers (queue {run.queues[0]}) · 1 task worker (queue {run.queues[1]}) · "
             f"PostgreSQL {extra['pg']} · photos: {extra['storage']}",
             f"load: locust, {a.users} users, no pause between requests; phases one node {a.phase_seconds:g} s, "
             f"two nodes {a.phase_seconds:g} s, faults {a.fault_seconds:g} s; total run {extra['total_s']:.0f} s", ""]
    lines += ["| phase | requests | ok/s | uploads accepted/s | error rate |", "|---|---:|---:|---:|---:|"]
    for phase, s in phases.items():
        lines.append(f"| {phase} | {s['requests']:,} | {s['per_s']:.1f} | {s['uploads_accepted_per_s']:.2f} | "
                     f"{s['error_rate']:.2%} |")
    one, two = phases.get("one-node"), phases.get("two-nodes")
    if one and two and one["per_s"]:
        lines += ["", f"two web nodes / one: {two['per_s'] / one['per_s']:.2f}x requests/s, "
                      f"{two['uploads_accepted_per_s'] / max(one['uploads_accepted_per_s'], 1e-9):.2f}x uploads/s"]
    for phase, s in phases.items():
        lines += ["", f"{phase}: latency of successful requests (ms)", "",
                  "| request | requests | ok | ok/s | p50 | p95 | p99 |", "|---|---:|---:|---:|---:|---:|---:|"]
        for name, t in s["by_type"].items():
            lines.append(f"| {name} | {t['requests']:,} | {t['ok']:,} | {t['per_s']:.1f} | {t['p50']:.0f} | "
                         f"{t['p95']:.0f} | {t['p99']:.0f} |")
        if s["errors"]:
            lines.append("")
            lines.append("errors: " + ", ".join(f"{k} x{v}" for k, v in sorted(s["errors"].items())))
    lines += ["", "faults (seconds from the start of the faults phase):"]
    t0 = extra["faults_t0"]
    lines += [f"- {t - t0:5.1f} s  {what}" for t, what in run.events if t >= t0]
    lines += ["", f"drain: every report classified {extra['drain_s']:.1f} s after the load stopped"
              if not counts["unclassified"] else f"drain: gave up after {extra['drain_s']:.0f} s", "",
              f"accepted uploads: {counts['accepted']} · reports in the database for the photos sent: "
              f"{counts['reports']} · unclassified: {counts['unclassified']} · missing objects: "
              f"{counts['missing_objects']}",
              f"committed but the client saw no 2xx (its node was killed before answering; not lost, "
              f"also checked): {counts['committed_but_unanswered']} · orphan photo files: {counts['orphan_files']}"]
    if extra["samples"]:
        lines += ["", "error samples:"] + [f"- {s}" for s in extra["samples"]]
    if failures:
        lines += ["", f"FAIL: {len(failures)} problem(s)"] + [f"- {f}" for f in failures[:30]]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="a temporary folder (cluster.sh makes it)")
    parser.add_argument("--pg-name", required=True, help="deploy/dev/pg.sh cluster name (already started)")
    parser.add_argument("--pg-port", type=int, required=True)
    parser.add_argument("--users", type=int, default=8, help="concurrent locust users")
    parser.add_argument("--web-workers", type=int, default=1, help="gunicorn workers per web node (2 threads each)")
    parser.add_argument("--phase-seconds", type=float, default=30, help="each throughput phase (one node, two)")
    parser.add_argument("--fault-seconds", type=float, default=90, help="the phase with the kills and the restart")
    parser.add_argument("--fault-at", type=float, nargs=3, default=[15, 35, 55], metavar=("WEB", "CLASSIFY", "PG"),
                        help="seconds into the faults phase: kill web-1, kill classify-1, restart PostgreSQL")
    parser.add_argument("--restart-after", type=float, default=5, help="seconds a killed process stays down")
    parser.add_argument("--pg-down", type=float, default=3, help="seconds PostgreSQL stays stopped")
    parser.add_argument("--drain-seconds", type=float, default=90, help="at most this long for the queue to drain")
    parser.add_argument("--photos", type=int, default=900, help="distinct photos written for the uploads")
    parser.add_argument("--report", type=Path, help="also write the summary (markdown) and results (JSON) here")
    args = parser.parse_args()

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # `timeout` or Ctrl-C in cluster.sh: still tear down
    started = time.time()
    load_start = " ".join(f"{v:.2f}" for v in os.getloadavg())
    run = Run(args=args, work=args.work)
    run.logs.mkdir(parents=True, exist_ok=True)
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
        run.prepare_database(args.work / "model-src")
        run.start_cluster()
        run.event("cluster up: nginx -> web-1; classify-1, classify-2, tasks-1")

        records: dict[str, list[dict]] = {}
        records["one-node"] = run.load("one-node", args.phase_seconds)
        run.add_second_node()
        records["two-nodes"] = run.load("two-nodes", args.phase_seconds)
        faults_t0 = time.time()
        records["faults"] = run.load("faults", args.fault_seconds, faults=run.faults)
        log("load stopped; waiting for the workers to drain the queue")
        all_records = [r for rs in records.values() for r in rs]
        uploads = [r for r in all_records if "upload" in r]
        drain_s = run.drain()
        failures, counts = run.check(uploads, hashes)
        phases = {name: phase_stats(rs) for name, rs in records.items()}
        for name, s in phases.items():
            for key, n in s["errors"].items():
                status = int(key.split()[0]) if key.split()[0].isdigit() else 0
                expected = name == "faults" and (status in EXPECTED_OUTAGE or status == 0)
                if not expected:
                    failures.append(f"{name}: {n} x {key}")
        from django.db import connection

        with connection.cursor() as cur:
            cur.execute("SHOW server_version")
            pg = cur.fetchone()[0].split()[0]
        extra = {"load_start": load_start, "load_end": " ".join(f"{v:.2f}" for v in os.getloadavg()),
                 "total_s": time.time() - started, "drain_s": drain_s, "faults_t0": faults_t0, "pg": pg,
                 "storage": "local folders", "samples": error_samples(all_records)}
        text = report(run, phases, counts, failures, extra)
        print("\n" + text, flush=True)
        if args.report:
            args.report.mkdir(parents=True, exist_ok=True)
            (args.report / "cluster-report.md").write_text(text + "\n")
            (args.report / "cluster-report.json").write_text(json.dumps(
                {"phases": phases, "counts": counts, "failures": failures, "events": run.events, **extra}, indent=1))
        return 1 if failures else 0
    finally:
        run.stop_all()


if __name__ == "__main__":
    sys.exit(main())
