"""Staff console at scale: 100,000 generated reports, server time per page, query plans.

    DATABASE_URL=postgis://civic@127.0.0.1:54339/civic_console_bench \\
        .venv/bin/python benchmarks/console_bench.py [--reports 100000] [--runs 20] [--explain] \\
        [--baseline-selectors COMMIT]

Uses its own database (created if missing; the name must contain "bench" so the
shared dev database is never filled). Reports are inserted by one INSERT ...
SELECT over generate_series; every photo field points at one placeholder file.
Times are measured in-process around Django's test client (middleware, views,
queries and template rendering; no network), median of --runs after 2 warm-ups.
--baseline-selectors COMMIT also times every page with console/selectors.py as at COMMIT
(read with `git show`, the views pointed at it), request by request beside the current one,
so a busy machine slows both alike; the schema must be the same at COMMIT.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
import types
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
os.environ.setdefault("MEDIA_ROOT", "/tmp/console-bench/media")
os.environ.setdefault("PRIVATE_MEDIA_ROOT", "/tmp/console-bench/private")

# Reports in a ~22 x 14 km box around central London.
LON0, LAT0, DLON, DLAT = -0.30, 51.44, 0.32, 0.13

GENERATE = """
WITH cats AS (SELECT array_agg(id ORDER BY "order") AS ids, array_agg(slug ORDER BY "order") AS slugs
              FROM reports_category)
INSERT INTO reports_report (
    service_request_id, status, channel, location, location_source, address, description,
    citizen_category_id, predicted_label, predicted_category_id, predicted_probability, predicted_top_k,
    model_version, classified_at, auto_triaged, possibly_not_issue, citizen_model_disagree, predicted_unknown, reject_reason,
    final_category_id, verified_at, reporter_name, reporter_email,
    photo_original, photo_public, photo_thumbnail, photo_format, photo_width, photo_height,
    photo_sha256, photo_phash, media_url, language, created_at, updated_at, version)
SELECT
    upper(substr(md5('r' || g), 1, 10)),
    (ARRAY['needs_review','needs_review','needs_review','triaged','triaged','triaged','in_progress',
           'fixed','closed','rejected','duplicate','pending_classification'])[1 + (g * 7919) %% 12],
    'web',
    ST_SetSRID(ST_MakePoint(%(lon0)s + %(dlon)s * random(), %(lat0)s + %(dlat)s * random()), 4326)::geography,
    'client', '', 'Generated report ' || g,
    CASE WHEN g %% 5 < 2 THEN cats.ids[1 + (g * 31) %% array_length(cats.ids, 1)] END,
    CASE WHEN g %% 10 = 0 THEN 'no_issue' ELSE cats.slugs[1 + (g * 13) %% array_length(cats.ids, 1)] END,
    CASE WHEN g %% 10 = 0 THEN NULL ELSE cats.ids[1 + (g * 13) %% array_length(cats.ids, 1)] END,
    round(random()::numeric, 4)::float8,
    '[["pothole", 0.5], ["graffiti", 0.3], ["other", 0.1]]'::jsonb,
    'bench-1', now(), g %% 7 = 0, g %% 10 = 0, g %% 9 = 0, false, '',
    CASE WHEN g %% 3 = 0 THEN cats.ids[1 + (g * 13) %% array_length(cats.ids, 1)] END,
    CASE WHEN g %% 3 = 0 THEN now() END,
    'Reporter ' || g, 'r' || g || '@example.org',
    'originals/placeholder.jpg', 'photos/placeholder.jpg', 'thumbs/placeholder.jpg', 'JPEG', 640, 480,
    md5('s' || g) || md5('t' || g), lpad(to_hex((random() * 2147483647)::bigint), 8, '0') || '00000000', '', '',
    now() - (random() * interval '365 days'), now(), 1
FROM generate_series(%(start)s, %(stop)s) AS g, cats
"""

EVENTS = """
INSERT INTO reports_reportevent (report_id, actor_label, action, field, from_value, to_value, note, public, created_at)
SELECT id, 'citizen', 'created', 'status', '', 'pending_classification', '', false, created_at
FROM reports_report r WHERE NOT EXISTS (SELECT 1 FROM reports_reportevent e WHERE e.report_id = r.id)
"""


def ensure_database(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if "bench" not in name:
        sys.exit(f"refusing to fill database {name!r}: use a dedicated one whose name contains 'bench'")
    admin = url.replace("postgis://", "postgresql://", 1).rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    with psycopg.connect(url.replace("postgis://", "postgresql://", 1), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")


def generate(n: int) -> float:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM reports_report")
        have = cur.fetchone()[0]
        if have >= n:
            return 0.0
        started = time.perf_counter()
        cur.execute(GENERATE, {"lon0": LON0, "lat0": LAT0, "dlon": DLON, "dlat": DLAT,
                               "start": have + 1, "stop": n})
        cur.execute(EVENTS)
        return time.perf_counter() - started


def placeholder_photos() -> None:
    from django.core.files.storage import storages

    from tests.images import jpeg

    data = jpeg(size=(640, 480))
    for storage, name in ((storages["private"], "originals/placeholder.jpg"),
                          (storages["public"], "photos/placeholder.jpg"), (storages["public"], "thumbs/placeholder.jpg")):
        if not storage.exists(name):
            from django.core.files.base import ContentFile

            storage.save(name, ContentFile(data))


def time_get(client, url: str, runs: int) -> tuple[float, int, int]:
    """Median milliseconds over `runs`, response size, queries per request."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(2):
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code, response.content[:500])
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - started) * 1000)
    with CaptureQueriesContext(connection) as ctx:
        client.get(url)
    return statistics.median(times), len(response.content), len(ctx.captured_queries)


def selectors_at(commit: str) -> types.ModuleType:
    """console/selectors.py at `commit`, imported as a sibling of the current one."""
    source = subprocess.run(["git", "show", f"{commit}:console/selectors.py"], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout
    module = types.ModuleType("console.selectors_baseline")
    module.__package__ = "console"
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(source, f"{commit}:console/selectors.py", "exec"), module.__dict__)
    return module


@contextmanager
def selectors_swapped(module: types.ModuleType | None):
    """The console's views call `module` (None: the current selectors) for the requests inside."""
    from console import views

    current = views.selectors
    views.selectors = module or current
    try:
        yield
    finally:
        views.selectors = current


def time_pair(client, url: str, runs: int, baseline: types.ModuleType) -> tuple[tuple, tuple]:
    """time_get's answer for the current selectors and for `baseline`, alternating request by request."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    times: dict[str, list[float]] = {"now": [], "before": []}
    result = {}
    for n in range(runs + 2):  # two warm-ups each
        for which, module in (("now", None), ("before", baseline)):
            with selectors_swapped(module):
                started = time.perf_counter()
                response = client.get(url)
                elapsed = (time.perf_counter() - started) * 1000
                assert response.status_code == 200, (url, which, response.status_code, response.content[:500])
                if n >= 2:
                    times[which].append(elapsed)
                if n == runs + 1:
                    with CaptureQueriesContext(connection) as ctx:
                        client.get(url)
                    result[which] = (len(response.content), len(ctx.captured_queries))
    return tuple((statistics.median(times[w]), *result[w]) for w in ("now", "before"))


def explain(client, url: str, min_ms: float = 0.0) -> list[str]:
    """EXPLAIN ANALYZE of every SELECT on reports_report that one request runs."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as ctx:
        client.get(url)
    out = []
    with connection.cursor() as cur:
        for q in ctx.captured_queries:
            sql = q["sql"]
            if not sql.startswith("SELECT") or '"reports_report"' not in sql.split(" WHERE ")[0] + sql[:400]:
                continue
            cur.execute("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY ON) " + sql)
            plan = [row[0] for row in cur.fetchall()]
            out.append(sql[:300] + (" …" if len(sql) > 300 else ""))
            out.extend("    " + line for line in plan)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reports", type=int, default=100_000, help="reports to generate (total)")
    parser.add_argument("--runs", type=int, default=20, help="timed requests per page")
    parser.add_argument("--explain", action="store_true", help="print query plans")
    parser.add_argument("--baseline-selectors", metavar="COMMIT",
                        help="also time each page with console/selectors.py as at COMMIT, interleaved")
    args = parser.parse_args()

    url = os.environ.get("DATABASE_URL", "")
    if not url:
        sys.exit("set DATABASE_URL to a dedicated benchmark database, e.g. "
                 "postgis://civic@127.0.0.1:54339/civic_console_bench")
    ensure_database(url)

    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    settings.ALLOWED_HOSTS = ["*"]
    call_command("migrate", verbosity=0)
    seconds = generate(args.reports)
    with connection.cursor() as cur:  # steady state: autovacuum would have done this by now
        cur.execute("VACUUM ANALYZE reports_report")
        cur.execute("VACUUM ANALYZE reports_reportevent")
    placeholder_photos()
    from reports.models import Report

    total = Report.objects.count()
    user, _ = get_user_model().objects.get_or_create(username="bench-supervisor")
    from console.roles import setup_roles

    user.groups.add(setup_roles()["supervisor"])
    client = Client()
    client.force_login(user)

    first = Report.objects.filter(status="needs_review").order_by("predicted_probability").first()
    mid = Report.objects.filter(status="needs_review").order_by("-predicted_probability").first()
    from console import selectors

    page = selectors.report_queue(filters=selectors.QueueFilters())
    bbox = "-0.1500,51.5000,-0.1200,51.5200"  # about 2 x 2 km
    pages = {
        "queue (default: needs review, least confident first)": "/console/",
        "queue, page 2 (keyset cursor)": f"/console/?cursor={page.next_cursor}",
        "queue counts (htmx fragment: per status, per flag)": "/console/counts/",
        "queue filtered (any status, category, confidence 0.2-0.6, disagree)":
            "/console/?status=&category=pothole&min_confidence=0.2&max_confidence=0.6&disagree=on",
        "counts for that filter":
            "/console/counts/?status=&category=pothole&min_confidence=0.2&max_confidence=0.6&disagree=on",
        "queue filtered (map area + date range)":
            f"/console/?status=&bbox={bbox}&date_from=2026-01-01&date_to=2026-12-31",
        "map GeoJSON, 2 x 2 km bbox, any status": f"/console/map/reports.geojson?status=&bbox={bbox}",
        "map GeoJSON, whole area (capped at 2000)": "/console/map/reports.geojson?status=&bbox=-0.4,51.4,0.1,51.6",
        "report view (labels, neighbours J/K, audit trail)": f"/console/reports/{first.service_request_id}/",
        "report view, most confident in queue": f"/console/reports/{mid.service_request_id}/",
        "duplicate candidates (50 m)": f"/console/reports/{first.service_request_id}/duplicates/",
    }
    print(f"reports: {total:,} (generated {seconds:.1f} s this run) · runs per page: {args.runs}")
    print(f"machine: {platform.node()} · {os.cpu_count()} CPUs · Python {platform.python_version()}")
    print()
    if args.baseline_selectors:
        baseline = selectors_at(args.baseline_selectors)
        print(f"| page | median ms | queries | bytes | {args.baseline_selectors}: median ms | queries |")
        print("|---|---:|---:|---:|---:|---:|")
        for name, page_url in pages.items():
            (median, size, queries), (b_median, _, b_queries) = time_pair(client, page_url, args.runs, baseline)
            print(f"| {name} | {median:.1f} | {queries} | {size:,} | {b_median:.1f} | {b_queries} |", flush=True)
    else:
        print("| page | median ms | queries | bytes |")
        print("|---|---:|---:|---:|")
        for name, page_url in pages.items():
            median, size, queries = time_get(client, page_url, args.runs)
            print(f"| {name} | {median:.1f} | {queries} | {size:,} |", flush=True)
    if args.explain:
        for name in ("queue (default: needs review, least confident first)",
                     "queue counts (htmx fragment: per status, per flag)",
                     "queue filtered (map area + date range)", "map GeoJSON, 2 x 2 km bbox, any status",
                     "report view (labels, neighbours J/K, audit trail)"):
            print(f"\n### {name}\n```")
            print("\n".join(explain(client, pages[name])))
            print("```")


if __name__ == "__main__":
    main()
