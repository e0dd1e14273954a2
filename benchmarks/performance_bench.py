"""Performance page at scale: server time of /console/performance/ (and its CSV) over
100,000 generated reports (benchmarks/console_bench.py's seeding), a year's period.

    DATABASE_URL=postgis://civic@127.0.0.1:54339/civic_console_bench \\
        .venv/bin/python benchmarks/performance_bench.py [--reports 100000] [--runs 10]

The generated reports get due dates, first-triage and close times by one UPDATE (targets of
2 and 10 calendar days, triage 0-5 days after coming in, closing 0-30 days after).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import console_bench  # noqa: E402  (sets up the path and settings module)

TIMES = """
UPDATE reports_report SET
    triage_due_at = created_at + interval '2 days', fix_due_at = created_at + interval '10 days',
    triaged_at = CASE WHEN status NOT IN ('pending_classification', 'needs_review')
                      THEN created_at + random() * interval '5 days' END,
    closed_at = CASE WHEN status IN ('fixed', 'closed', 'rejected', 'duplicate')
                     THEN created_at + random() * interval '30 days' END
WHERE triage_due_at IS NULL
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reports", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=10)
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
    from django.utils import timezone

    from console.roles import setup_roles

    settings.ALLOWED_HOSTS = ["*"]
    call_command("migrate", verbosity=0)
    console_bench.generate(args.reports)
    with connection.cursor() as cur:
        cur.execute(TIMES)
        cur.execute("VACUUM ANALYZE reports_report")
        cur.execute("SELECT count(*) FROM reports_report")
        total = cur.fetchone()[0]
    user, _ = get_user_model().objects.get_or_create(username="bench-supervisor")
    user.groups.add(setup_roles()["supervisor"])
    client = Client()
    client.force_login(user)
    today = timezone.localdate()
    period = f"date_from={today.replace(year=today.year - 1)}&date_to={today}"
    print(f"reports: {total:,} · runs: {args.runs}")
    print("| page | median ms | queries | bytes |")
    print("|---|---:|---:|---:|")
    for name, page in (("performance page, last 12 months", f"/console/performance/?{period}"),
                       ("performance CSV, last 12 months", f"/console/performance.csv?{period}"),
                       ("performance page, default 90 days", "/console/performance/")):
        median, size, queries = console_bench.time_get(client, page, args.runs)
        print(f"| {name} | {median:.1f} | {queries} | {size:,} |", flush=True)


if __name__ == "__main__":
    main()
