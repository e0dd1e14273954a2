"""The supervisors' performance page: per category and per team, median and 90th percentile
time to triage and to fix, the share done within target, and the open backlog by age, for
reports that came in during a chosen period; as a page with inline SVG, or CSV.

One GROUPING SETS query answers every row (categories, teams, all reports) and the backlog,
so the page costs one scan of a covering index over the period's reports.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass
from html import escape

from django import forms
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from reports import workflow
from reports.models import Category, Team

from .views import staff_view

PERM = "console.assign_report"  # supervisors: the role that assigns and reopens work
DEFAULT_DAYS = 90
BACKLOG_BUCKETS = [(0, 2, "under 2 days"), (2, 7, "2–7 days"), (7, 30, "1–4 weeks"), (30, None, "over 4 weeks")]
DONE = tuple(sorted(workflow.CLOSED - {workflow.S.REJECTED, workflow.S.DUPLICATE}))  # fixed, closed
OPEN = tuple(sorted(workflow.OPEN))


class PeriodForm(forms.Form):
    date_from = forms.DateField(required=False, label="From")
    date_to = forms.DateField(required=False, label="To")

    def clean(self):
        d = super().clean()
        today = timezone.localdate()
        d["date_to"] = d.get("date_to") or today
        d["date_from"] = d.get("date_from") or d["date_to"] - dt.timedelta(days=DEFAULT_DAYS)
        if d["date_from"] > d["date_to"]:
            raise forms.ValidationError("The period's start is after its end.")
        return d


@dataclass
class Row:
    kind: str  # "category", "team" or "all"
    name: str
    reports: int
    triaged: int
    triage_median_s: float | None
    triage_p90_s: float | None
    triage_in_target: int
    fixed: int
    fix_median_s: float | None
    fix_p90_s: float | None
    fix_in_target: int

    @property
    def triage_share(self) -> float | None:
        return self.triage_in_target / self.triaged if self.triaged else None

    @property
    def fix_share(self) -> float | None:
        return self.fix_in_target / self.fixed if self.fixed else None


_DONE_SQL = f"status IN ({', '.join(['%s'] * len(DONE))})"
# One pass over the period's rows, read from the covering index report_period_idx alone
# (reports/migrations/0012). Each row's durations and backlog bucket are computed once, in the
# inner SELECT: durations as float8 (date_part; extract's numeric goes back to float8 through
# text), the bucket by comparing created_at with the buckets' (contiguous) cut-offs.
_SQL = f"""
SELECT GROUPING(cat) AS no_cat, GROUPING(team_id) AS no_team, cat, team_id, count(*),
       count(triage_s),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY triage_s),
       percentile_cont(0.9) WITHIN GROUP (ORDER BY triage_s),
       count(*) FILTER (WHERE triage_ok),
       count(fix_s),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY fix_s),
       percentile_cont(0.9) WITHIN GROUP (ORDER BY fix_s),
       count(*) FILTER (WHERE fix_ok),
       {", ".join(f"count(*) FILTER (WHERE bucket = {i})" for i in range(len(BACKLOG_BUCKETS)))}
FROM (SELECT COALESCE(final_category_id, predicted_category_id, citizen_category_id) AS cat, team_id,
             date_part('epoch', triaged_at - created_at) AS triage_s, triaged_at <= triage_due_at AS triage_ok,
             CASE WHEN {_DONE_SQL} THEN date_part('epoch', closed_at - created_at) END AS fix_s,
             {_DONE_SQL} AND closed_at <= fix_due_at AS fix_ok,
             CASE WHEN status IN ({", ".join(["%s"] * len(OPEN))}) THEN CASE
                 {" ".join(f"WHEN created_at <= %s THEN {i}" for i in reversed(range(len(BACKLOG_BUCKETS))))}
             END END AS bucket
      FROM reports_report WHERE created_at >= %s AND created_at < %s) r
GROUP BY GROUPING SETS ((cat), (team_id), ())
"""


def _bounds(date_from: dt.date, date_to: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = timezone.make_aware(dt.datetime.combine(date_from, dt.time.min))
    return start, timezone.make_aware(dt.datetime.combine(date_to + dt.timedelta(days=1), dt.time.min))


def performance(*, date_from: dt.date, date_to: dt.date, now: dt.datetime | None = None) -> dict:
    """Rows (all reports, then categories, then teams) and the backlog by age, for reports
    created from `date_from` to `date_to` inclusive (local dates)."""
    start, end = _bounds(date_from, date_to)
    categories = dict(Category.objects.values_list("pk", "name"))
    teams = dict(Team.objects.values_list("pk", "name"))
    now = (now or timezone.now()).astimezone(dt.timezone.utc)  # cut-offs in elapsed time, not wall-clock days
    cutoffs = [now - dt.timedelta(days=lo) for lo, _, _ in reversed(BACKLOG_BUCKETS)]
    rows: list[Row] = []
    backlog_counts = [0] * len(BACKLOG_BUCKETS)
    with connection.cursor() as cursor:
        cursor.execute(_SQL, [*DONE, *DONE, *OPEN, *cutoffs, start, end])
        for no_cat, no_team, cat, team, *numbers in cursor.fetchall():
            numbers, buckets = numbers[:9], numbers[9:]
            if no_cat and no_team:
                kind, name, backlog_counts = "all", "All reports", buckets
            elif not no_cat:
                kind, name = "category", categories.get(cat, "No category yet") if cat else "No category yet"
            else:
                kind, name = "team", teams.get(team, "Not routed") if team else "Not routed"
            rows.append(Row(kind, name, *numbers))
    backlog = list(zip([label for *_, label in BACKLOG_BUCKETS], backlog_counts))
    order = {"all": 0, "category": 1, "team": 2}
    rows.sort(key=lambda r: (order[r.kind], r.name))
    return {"rows": rows, "backlog": backlog, "start": start, "end": end}


def days(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds / 86400:.1f}"


def share(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def bar_chart(items: list[tuple[str, int]], *, title: str, width: int = 480, bar: int = 28) -> str:
    """Horizontal bars with their counts: inline SVG, every text escaped."""
    top, left, gap = 8, 120, 8
    most = max((n for _, n in items), default=0) or 1
    height = top * 2 + len(items) * (bar + gap)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}"><title>{escape(title)}</title>']
    for i, (label, n) in enumerate(items):
        y = top + i * (bar + gap)
        w = round((width - left - 60) * n / most)
        parts.append(f'<text x="{left - 6}" y="{y + bar * 0.65:.0f}" text-anchor="end">{escape(label)}</text>'
                     f'<rect x="{left}" y="{y}" width="{w}" height="{bar}" fill="#0072b2"><title>{escape(label)}: '
                     f'{n}</title></rect><text x="{left + w + 6}" y="{y + bar * 0.65:.0f}">{n}</text>')
    parts.append("</svg>")
    return "".join(parts)


_CSV_HEADER = ["group", "name", "reports", "triaged", "triage_median_days", "triage_p90_days",
               "triaged_within_target", "fixed", "fix_median_days", "fix_p90_days", "fixed_within_target"]


def _csv(data: dict) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(_CSV_HEADER)
    for r in data["rows"]:
        writer.writerow([r.kind, r.name, r.reports, r.triaged, days(r.triage_median_s), days(r.triage_p90_s),
                         r.triage_in_target, r.fixed, days(r.fix_median_s), days(r.fix_p90_s), r.fix_in_target])
    for label, n in data["backlog"]:
        writer.writerow(["backlog", label, n, "", "", "", "", "", "", "", ""])
    return out.getvalue()


@require_GET
@staff_view
def performance_view(request, fmt: str = "html"):
    """Supervisors only (403 otherwise); bad dates are a 400 with the form's message."""
    if not request.user.has_perm(PERM):
        raise PermissionDenied("The performance page is for supervisors.")
    form = PeriodForm(request.GET)
    if not form.is_valid():
        return render(request, "console/performance.html", {"form": form, "nav": "performance"}, status=400)
    d = form.cleaned_data
    data = performance(date_from=d["date_from"], date_to=d["date_to"])
    if fmt == "csv":
        response = HttpResponse(_csv(data), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = (f'attachment; filename="performance-{d["date_from"]}-{d["date_to"]}.csv"')
        return response
    rows = [{"row": r, "triage_median": days(r.triage_median_s), "triage_p90": days(r.triage_p90_s),
             "triage_share": share(r.triage_share), "fix_median": days(r.fix_median_s),
             "fix_p90": days(r.fix_p90_s), "fix_share": share(r.fix_share)} for r in data["rows"]]
    fix_chart = bar_chart([(r.name, round((r.fix_share or 0) * 100)) for r in data["rows"] if r.kind == "category"],
                          title="Share fixed within target, % per category")
    return render(request, "console/performance.html", {
        "form": form, "nav": "performance", "rows": rows, "backlog": data["backlog"],
        "backlog_chart": bar_chart(data["backlog"], title="Open reports by age"), "fix_chart": fix_chart,
        "date_from": d["date_from"], "date_to": d["date_to"],
    })
