"""Map GeoJSON under load: gunicorn on loopback, N keep-alive clients, p50/p95, bytes, requests/s.

    DATABASE_URL=postgis://civic@127.0.0.1:54339/civic_console_bench \\
        .venv/bin/python benchmarks/map_load.py [--reports 100000] [--seconds 20] [--connections 4] \\
        [--baseline DIR]

Seeds the database as benchmarks/console_bench.py does (its own database, the name must
contain "bench"), starts gunicorn with deploy/gunicorn.conf.py and production settings on
127.0.0.1 and a free port, and drives the anonymous REST GeoJSON and the console map's
GeoJSON (as a logged-in supervisor) for a city-wide box and a street-level box. --baseline
starts a second gunicorn from another checkout (e.g. `git archive <commit> | tar -x -C DIR`,
the code before clustering) against the same database, measured in the same run. Bounded:
each case runs --seconds or --max-requests, whichever ends first, and talks only to 127.0.0.1.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
import console_bench  # noqa: E402  (sets the settings module and media roots before Django loads)

HOST = "127.0.0.1"
CITY = "-0.32,51.43,0.04,51.58"  # the whole seeded area (about 25 x 17 km), a city-wide map at zoom 12
STREET = "-0.1300,51.5000,-0.1240,51.5025"  # about 400 x 280 m, a street-level map at zoom 17
CASES = {  # name -> path; the baseline ignores `zoom`
    "REST, city-wide": f"/api/v1/reports/geojson/?in_bbox={CITY}&zoom=12",
    "REST, street": f"/api/v1/reports/geojson/?in_bbox={STREET}&zoom=17",
    "console, city-wide": f"/console/map/reports.geojson?status=&bbox={CITY}&zoom=12",
    "console, street": f"/console/map/reports.geojson?status=&bbox={STREET}&zoom=17",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def start_gunicorn(tree: Path, *, secret_key: str, workers: int) -> tuple[subprocess.Popen, int]:
    """gunicorn from `tree` (its deploy/gunicorn.conf.py, production settings) on a free loopback port."""
    port = free_port()
    env = {**os.environ, "BIND": f"{HOST}:{port}", "WEB_CONCURRENCY": str(workers), "SECRET_KEY": secret_key,
           "DJANGO_SETTINGS_MODULE": "config.settings.production", "ALLOWED_HOSTS": HOST,
           "SECURE_SSL_REDIRECT": "false", "SECURE_COOKIES": "false", "SECURE_HSTS_SECONDS": "0",
           "PYTHONPATH": str(tree), "LOG_LEVEL": "WARNING", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", str(tree / "deploy" / "gunicorn.conf.py"),
                             "--chdir", str(tree), "--access-logfile", "/dev/null", "config.wsgi"],
                            cwd=tree, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"gunicorn from {tree} exited:\n{proc.stderr.read().decode()[-3000:]}")
        try:
            conn = http.client.HTTPConnection(HOST, port, timeout=5)
            conn.request("GET", "/healthz")
            conn.getresponse().read()
            return proc, port
        except OSError:
            time.sleep(0.3)
    proc.terminate()
    sys.exit(f"gunicorn from {tree} did not answer within 60 s")


def load(port: int, path: str, *, cookie: str, seconds: float, connections: int, max_requests: int) -> dict:
    """`connections` threads, each one keep-alive connection, GET `path` until time or count runs out."""
    latencies: list[float] = []
    sizes: list[int] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds
    headers = {"Cookie": cookie} if cookie else {}

    def client():
        conn = http.client.HTTPConnection(HOST, port, timeout=30)
        while time.monotonic() < stop_at:
            with lock:
                if len(latencies) + len(errors) >= max_requests:
                    return
            started = time.perf_counter()
            try:
                conn.request("GET", path, headers=headers)
                response = conn.getresponse()
                body = response.read()
            except OSError as exc:
                with lock:
                    errors.append(repr(exc))
                conn.close()
                conn = http.client.HTTPConnection(HOST, port, timeout=30)
                continue
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                if response.status == 200:
                    latencies.append(elapsed)
                    sizes.append(len(body))
                else:
                    errors.append(f"HTTP {response.status}: {body[:200]!r}")
        conn.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    if errors and not latencies:
        sys.exit(f"{path}: every request failed, e.g. {errors[0]}")
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]
    return {"requests": len(latencies), "errors": len(errors), "p50_ms": pct(50), "p95_ms": pct(95),
            "max_ms": ordered[-1], "bytes": max(sizes), "rps": len(latencies) / wall}


def shape(port: int, path: str, cookie: str) -> str:
    """What one answer is: clustered (cells, reports) or features."""
    conn = http.client.HTTPConnection(HOST, port, timeout=60)
    conn.request("GET", path, headers={"Cookie": cookie} if cookie else {})
    response = conn.getresponse()
    raw = response.read()
    if response.status != 200:
        raise SystemExit(f"GET {path} answered {response.status}: {raw[:500]!r}")
    body = json.loads(raw)
    n = len(body["features"])
    if body.get("clustered"):
        return f"{n:,} clusters of {body['count']:,} reports"
    return f"{n:,} features" + (" (truncated)" if body.get("truncated") else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reports", type=int, default=100_000, help="reports to generate (total)")
    parser.add_argument("--seconds", type=float, default=20, help="seconds per case")
    parser.add_argument("--max-requests", type=int, default=5000, help="requests per case at most")
    parser.add_argument("--connections", type=int, default=4, help="concurrent keep-alive clients")
    parser.add_argument("--workers", type=int, default=0, help="gunicorn workers (0: the conf's default)")
    parser.add_argument("--baseline", type=Path, help="another checkout to measure beside this one")
    args = parser.parse_args()

    url = os.environ.get("DATABASE_URL", "")
    if not url:
        sys.exit("set DATABASE_URL to a dedicated benchmark database, e.g. "
                 "postgis://civic@127.0.0.1:54339/civic_console_bench")
    console_bench.ensure_database(url)

    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    from console.roles import setup_roles
    from reports.models import Report

    call_command("migrate", verbosity=0)
    # gunicorn runs production settings, whose database cache (rate limits, map answers) this
    # process's test settings do not name: create its table by name.
    from config.settings.base import CACHES

    call_command("createcachetable", CACHES["default"]["LOCATION"], verbosity=0)
    seeded = console_bench.generate(args.reports)
    if seeded:
        with connection.cursor() as cur:
            cur.execute("VACUUM ANALYZE reports_report")
    console_bench.placeholder_photos()
    user, _ = get_user_model().objects.get_or_create(username="bench-supervisor")
    user.groups.add(setup_roles()["supervisor"])
    client = Client()
    client.force_login(user)  # a session row that every gunicorn worker reads from the database
    cookie = f"sessionid={client.cookies['sessionid'].value}"

    workers = args.workers or os.cpu_count() * 2 + 1
    trees = {"clustered (this tree)": ROOT}
    if args.baseline:
        trees = {"baseline": args.baseline.resolve(), **trees}
    print(f"reports: {Report.objects.count():,} · {args.connections} connections · {args.seconds:g} s or "
          f"{args.max_requests} requests per case · gunicorn {workers} workers x 2 threads")
    print(f"machine: {platform.node()} · {os.cpu_count()} CPUs · load average "
          f"{' '.join(f'{v:.1f}' for v in os.getloadavg())} · Python {platform.python_version()}")
    print()
    print("| code | case | answer | requests | p50 ms | p95 ms | max ms | bytes | req/s |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    results = []
    for label, tree in trees.items():
        proc, port = start_gunicorn(tree, secret_key=settings.SECRET_KEY, workers=workers)
        try:
            for name, path in CASES.items():
                cookie_for = cookie if path.startswith("/console/") else ""
                what = shape(port, path, cookie_for)
                load(port, path, cookie=cookie_for, seconds=min(2.0, args.seconds), connections=args.connections,
                     max_requests=20)  # warm every worker
                r = load(port, path, cookie=cookie_for, seconds=args.seconds, connections=args.connections,
                         max_requests=args.max_requests)
                results.append({"code": label, "case": name, "answer": what, **r})
                failed = f" ({r['errors']} failed)" if r["errors"] else ""
                print(f"| {label} | {name} | {what} | {r['requests']:,}{failed} | "
                      f"{r['p50_ms']:.0f} | {r['p95_ms']:.0f} | {r['max_ms']:.0f} | {r['bytes']:,} | {r['rps']:.1f} |",
                      flush=True)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    print()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
