"""The supervisors' performance page: medians, 90th percentiles, within-target shares, the
backlog by age, the CSV, and who may see it."""
from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from console.performance import performance
from reports.models import Category, Report, Team

pytestmark = pytest.mark.django_db
S = Report.Status
DAY = timedelta(days=1)


@pytest.fixture
def history(make_report):
    """Four potholes: triaged after 1, 2, 3, 4 days (triage target 2.5 days), two fixed after
    5 and 20 days (fix target 10 days); one graffiti report open for 40 days."""
    now = timezone.now()
    pothole = Category.objects.get(slug="pothole")
    made = now - 21 * DAY
    for n in (1, 2, 3, 4):
        done = {"status": S.FIXED, "closed_at": made + (5 if n == 1 else 20) * DAY} if n <= 2 else {
            "status": S.TRIAGED}
        r = make_report(final_category=pothole, triaged_at=made + n * DAY, triage_due_at=made + 2.5 * DAY,
                        fix_due_at=made + 10 * DAY, **done)
        Report.objects.filter(pk=r.pk).update(created_at=made)
    old = make_report(predicted="graffiti", status=S.NEEDS_REVIEW)
    Report.objects.filter(pk=old.pk).update(created_at=now - 40 * DAY)
    return now


def test_figures_per_category(history):
    today = timezone.localdate()
    data = performance(date_from=today - timedelta(days=60), date_to=today)
    rows = {(r.kind, r.name): r for r in data["rows"]}
    pothole = rows["category", "Pothole"]
    assert (pothole.reports, pothole.triaged, pothole.fixed) == (4, 4, 2)
    assert pothole.triage_median_s == pytest.approx(2.5 * 86400)
    assert pothole.triage_p90_s == pytest.approx(3.7 * 86400)
    assert pothole.triage_share == 0.5 and pothole.fix_share == 0.5
    assert pothole.fix_median_s == pytest.approx(12.5 * 86400)
    assert rows["all", "All reports"].reports == 5
    assert rows["team", "Not routed"].reports == 5
    assert dict(data["backlog"]) == {"under 2 days": 0, "2–7 days": 0, "1–4 weeks": 2, "over 4 weeks": 1}


def test_the_period_bounds_the_reports(history):
    today = timezone.localdate()
    data = performance(date_from=today - timedelta(days=35), date_to=today)
    assert {r.name: r.reports for r in data["rows"]}["All reports"] == 4


def test_page_and_csv_for_supervisors(client, supervisor, history):
    client.force_login(supervisor)
    html = client.get(reverse("console:performance")).content.decode()
    assert "Pothole" in html and "<svg" in html and "Download CSV" in html
    response = client.get(reverse("console:performance-csv"))
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    pothole = next(r for r in rows if r["name"] == "Pothole")
    assert (pothole["triage_median_days"], pothole["fixed_within_target"]) == ("2.5", "1")


def test_triagers_get_403_and_bad_dates_a_400(client, triager, supervisor):
    client.force_login(triager)
    assert client.get(reverse("console:performance")).status_code == 403
    client.force_login(supervisor)
    response = client.get(reverse("console:performance"), {"date_from": "2025-13-01"})
    assert response.status_code == 400 and "valid date" in response.content.decode()
    response = client.get(reverse("console:performance"), {"date_from": "2025-06-02", "date_to": "2025-06-01"})
    assert response.status_code == 400 and "start is after its end" in response.content.decode()


@pytest.fixture
def mixed(make_report):
    """Two teams, every kind of ending (fixed, closed, rejected, duplicate), a report with no
    category, reports exactly on the backlog's bucket edges and one outside the period."""
    now = timezone.now()
    made = now - 20 * DAY
    highways = Team.objects.create(slug="highways", name="Highways")
    parks = Team.objects.create(slug="parks", name="Parks")
    pothole, graffiti = Category.objects.get(slug="pothole"), Category.objects.get(slug="graffiti")
    specs = [  # category, team, created, triaged after (days), status, closed after (days)
        (pothole, highways, made, 1, S.FIXED, 5), (pothole, highways, made, 2, S.CLOSED, 20),
        (pothole, highways, made, 3, S.REJECTED, 1), (pothole, highways, made, 4, S.IN_PROGRESS, None),
        (graffiti, parks, made, 0.5, S.DUPLICATE, 0.6), (graffiti, parks, made, 3, S.FIXED, 9),
        (graffiti, None, now - 2 * DAY, None, S.NEEDS_REVIEW, None),
        (None, None, now - DAY, None, S.NEEDS_REVIEW, None),
        (None, parks, now - 7 * DAY, None, S.PENDING, None),
        (pothole, None, now - 30 * DAY, 0.25, S.TRIAGED, None),
        (pothole, highways, now - 100 * DAY, 1, S.FIXED, 2),  # before the period
    ]
    for cat, team, created, triaged, status, closed in specs:
        r = make_report(predicted=None, final_category=cat, team=team, status=status,
                        triaged_at=created + triaged * DAY if triaged is not None else None,
                        closed_at=created + closed * DAY if closed is not None else None,
                        triage_due_at=created + 2.5 * DAY, fix_due_at=created + 10 * DAY)
        Report.objects.filter(pk=r.pk).update(created_at=created)
    return now


def test_every_figure_on_a_mixed_history(mixed):
    """Pinned before the query was rewritten for speed: the rewrite must not move a number."""
    today = timezone.localdate()
    data = performance(date_from=today - timedelta(days=60), date_to=today, now=mixed)
    got = [tuple(round(v, 3) if isinstance(v, float) else v for v in (
        r.kind, r.name, r.reports, r.triaged, r.triage_median_s, r.triage_p90_s, r.triage_in_target,
        r.fixed, r.fix_median_s, r.fix_p90_s, r.fix_in_target)) for r in data["rows"]]
    d = 86400
    assert got == [
        ("all", "All reports", 10, 7, 2 * d, 3.4 * d, 4, 3, 9 * d, 17.8 * d, 2),
        ("category", "Graffiti", 3, 2, 1.75 * d, 2.75 * d, 1, 1, 9 * d, 9 * d, 1),
        ("category", "No category yet", 2, 0, None, None, 0, 0, None, None, 0),
        ("category", "Pothole", 5, 5, 2 * d, 3.6 * d, 3, 2, 12.5 * d, 18.5 * d, 1),
        ("team", "Highways", 4, 4, 2.5 * d, 3.7 * d, 2, 2, 12.5 * d, 18.5 * d, 1),
        ("team", "Not routed", 3, 1, 0.25 * d, 0.25 * d, 1, 0, None, None, 0),
        ("team", "Parks", 3, 2, 1.75 * d, 2.75 * d, 1, 1, 9 * d, 9 * d, 1),
    ]
    # A report exactly 2, 7 or 30 days old is in the older bucket.
    assert data["backlog"] == [("under 2 days", 1), ("2–7 days", 1), ("1–4 weeks", 2), ("over 4 weeks", 1)]
