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
from reports.models import Category, Report

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
