"""The staff queue's section queries at scale: EXPLAIN (ANALYZE) of every LIMITed query on
reports_report that report_queue runs for a few filters, median planning and execution ms.

    DATABASE_URL=postgis://civic@127.0.0.1:54339/civic_console_bench \\
        .venv/bin/python benchmarks/queue_sections_bench.py [--runs 5] [--plans] \\
        [--selectors COMMIT] [--pre SQL ...]

On a database seeded by performance_bench.py (due dates). --selectors COMMIT runs
console/selectors.py as at COMMIT instead (console_bench.selectors_at); --pre runs SQL first
(e.g. "DROP INDEX report_queue_due_idx") in a transaction that is rolled back at the end.
--pages COMMIT times /console/?status=triaged (oldest first, overdue only) now and at COMMIT.
The queries without LIMIT (a page's few overdue reports read by key) are not shown.
"""
import argparse
import os
import re
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import console_bench  # noqa: E402  (sets up the path and settings module)
import django  # noqa: E402

django.setup()
from django.db import connection, transaction  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from console.selectors import QueueFilters, report_queue  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--runs", type=int, default=5)
p.add_argument("--pre", action="append", default=[], help="SQL run first in the rolled-back transaction")
p.add_argument("--plans", action="store_true")
p.add_argument("--selectors", help="console/selectors.py at this commit")
p.add_argument("--pages", metavar="COMMIT", help="instead, time the triaged queue pages now and at COMMIT, "
               "interleaved (console_bench.time_pair, --runs each)")
args = p.parse_args()
if args.selectors:
    mod = console_bench.selectors_at(args.selectors)
    QueueFilters, report_queue = mod.QueueFilters, mod.report_queue

FILTERS = {
    "default": QueueFilters(),
    "filtered (any status, pothole, 0.2-0.6, disagree)": QueueFilters(
        status="", category="pothole", min_confidence=0.2, max_confidence=0.6, disagree=True),
    "triaged": QueueFilters(status="triaged"),
    "triaged, oldest": QueueFilters(status="triaged", sort="oldest"),
    "overdue filter, any status": QueueFilters(status="", overdue=True),
    "triaged, overdue filter": QueueFilters(status="triaged", overdue=True),
}


def run():
    with connection.cursor() as cur:
        for sql in args.pre:
            cur.execute(sql)
        for name, f in FILTERS.items():
            with CaptureQueriesContext(connection) as ctx:
                page = report_queue(filters=f)
            qs = [q["sql"] for q in ctx.captured_queries
                  if q["sql"].startswith("SELECT") and "LIMIT" in q["sql"] and 'FROM "reports_report"' in q["sql"]]
            for i, sql in enumerate(qs):
                plan_ms, exec_ms, plan = [], [], None
                for _ in range(args.runs):
                    cur.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql)
                    plan = [r[0] for r in cur.fetchall()]
                    for line in plan:
                        m = re.match(r"Planning Time: ([\d.]+)", line.strip())
                        if m: plan_ms.append(float(m.group(1)))
                        m = re.match(r"Execution Time: ([\d.]+)", line.strip())
                        if m: exec_ms.append(float(m.group(1)))
                print(f"{name} | query {i + 1}/{len(qs)} | rows on page {len(page.reports)} | "
                      f"planning {statistics.median(plan_ms):.1f} | execution {statistics.median(exec_ms):.1f}")
                if args.plans:
                    print("   " + sql[-700:])
                    print("\n".join("      " + l for l in plan))

def pages():
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.test import Client

    settings.ALLOWED_HOSTS = ["*"]
    base = console_bench.selectors_at(args.pages)
    client = Client()
    client.force_login(get_user_model().objects.get(username="bench-supervisor"))  # console_bench's
    print(f"| page | median ms | queries | {args.pages}: median ms | queries |")
    for url in ("/console/?status=triaged", "/console/?status=triaged&sort=oldest",
                "/console/?status=triaged&overdue=on"):
        (median, _, queries), (b_median, _, b_queries) = console_bench.time_pair(client, url, args.runs, base)
        print(f"| {url} | {median:.1f} | {queries} | {b_median:.1f} | {b_queries} |", flush=True)


if args.pages:
    pages()
    sys.exit()
with transaction.atomic():
    run()
    transaction.set_rollback(True)
