"""Performance page at scale: server time of /console/performance/ (and its CSV) over
100,000 generated reports (benchmarks/console_bench.py's seeding), a year's period.

    DATABASE_URL=postgis://civic@127.0.0.1:54339/civic_console_bench \\
        .venv/bin/python benchmarks/performance_bench.py [--reports 100000] [--runs 10] [--baseline]

The generated reports get due dates, first-triage and close times by one UPDATE (targets of
2 and 10 calendar days, triage 0-5 days after coming in, closing 0-30 days after), and four
teams share four fifths of them. --baseline also times the page as it was at BASELINE_COMMIT
(its console/performance.py, read with `git show`, and no covering index: dropped in a
transaction that is rolled back), request by request beside the current one, so a busy
machine slows both alike.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import types
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import console_bench  # noqa: E402  (sets up the path and settings module)

BASELINE_COMMIT = "21994de"  # the page before one-pass aggregation and report_period_idx
TIMES = """
UPDATE reports_report SET
    triage_due_at = created_at + interval '2 days', fix_due_at = created_at + interval '10 days',
    triaged_at = CASE WHEN status NOT IN ('pending_classification', 'needs_review')
                      THEN created_at + random() * interval '5 days' END,
    closed_at = CASE WHEN status IN ('fixed', 'closed', 'rejected', 'duplicate')
                     THEN created_at + random() * interval '30 days' END
WHERE triage_due_at IS NULL
"""
TEAMS = """
UPDATE reports_report r SET team_id = t.ids[1 + r.id % 5]
FROM (SELECT array_agg(id ORDER BY slug) AS ids FROM reports_team WHERE slug LIKE 'bench-%') t
WHERE r.team_id IS NULL AND r.id % 5 < 4
"""


def baseline_module():
    """console/performance.py at BASELINE_COMMIT, imported as a sibling of the current one."""
    source = subprocess.run(["git", "show", f"{BASELINE_COMMIT}:console/performance.py"], cwd=console_bench.ROOT,
                            capture_output=True, text=True, check=True).stdout
    module = types.ModuleType("console.performance_baseline")
    module.__package__ = "console"
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(source, f"{BASELINE_COMMIT}:console/performance.py", "exec"), module.__dict__)
    return module


@contextmanager
def before_the_change(baseline):
    """The page's old performance() and no covering index, for the requests inside."""
    from django.db import connection, transaction

    from console import performance

    current = performance.performance
    with transaction.atomic():
        with connection.cursor() as cur:
            cur.execute("DROP INDEX IF EXISTS report_period_idx")
        performance.performance = baseline.performance
        try:
            yield
        finally:
            performance.performance = current
            transaction.set_rollback(True)


def timed(client, url: str) -> float:
    started = time.perf_counter()
    response = client.get(url)
    elapsed = (time.perf_counter() - started) * 1000
    assert response.status_code == 200, (url, response.status_code, response.content[:500])
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reports", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--baseline", action="store_true", help=f"also time the page as at {BASELINE_COMMIT}")
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", "")
    if "bench" not in url:
        sys.exit("set DATABASE_URL to a dedicated benchmark database (its name contains 'bench')")
    console_bench.ensure_database(url)

    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from console.roles import setup_roles
    from reports.models import Team

    settings.ALLOWED_HOSTS = ["*"]
    call_command("migrate", verbosity=0)
    console_bench.generate(args.reports)
    for n in range(1, 5):
        Team.objects.get_or_create(slug=f"bench-{n}", defaults={"name": f"Bench team {n}"})
    with connection.cursor() as cur:
        cur.execute(TIMES)
        cur.execute(TEAMS)
        cur.execute("VACUUM ANALYZE reports_report")
        cur.execute("SELECT count(*) FROM reports_report")
        total = cur.fetchone()[0]
    user, _ = get_user_model().objects.get_or_create(username="bench-supervisor")
    user.groups.add(setup_roles()["supervisor"])
    client = Client()
    client.force_login(user)
    today = timezone.localdate()
    period = f"date_from={today.replace(year=today.year - 1)}&date_to={today}"
    baseline = baseline_module() if args.baseline else None
    print(f"reports: {total:,} · runs: {args.runs}" + (f" · baseline: {BASELINE_COMMIT}" if baseline else ""))
    print("| page | median ms | queries | bytes |" + (" baseline median ms | baseline queries |" if baseline else ""))
    print("|---|---:|---:|---:|" + ("---:|---:|" if baseline else ""))
    for name, page in (("performance page, last 12 months", f"/console/performance/?{period}"),
                       ("performance CSV, last 12 months", f"/console/performance.csv?{period}"),
                       ("performance page, default 90 days", "/console/performance/")):
        times, before = [], []
        for _ in range(args.runs + 2):  # two warm-ups
            times.append(timed(client, page))
            if baseline:
                with before_the_change(baseline):
                    before.append(timed(client, page))
        with CaptureQueriesContext(connection) as ctx:
            size = len(client.get(page).content)
        line = f"| {name} | {statistics.median(times[2:]):.1f} | {len(ctx.captured_queries)} | {size:,} |"
        if baseline:
            with before_the_change(baseline), CaptureQueriesContext(connection) as ctx:
                client.get(page)
            line += f" {statistics.median(before[2:]):.1f} | {len(ctx.captured_queries)} |"
        print(line, flush=True)


if __name__ == "__main__":
    main()
