"""Response targets: working days (weekends, the nation's bank holidays, the council's own
closed days, clock changes) and the due dates reports carry from intake on."""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from classifier.services import classify_reports, model_activate, model_register
from console.services import report_set_status, report_verify
from reports.models import Category, NonWorkingDay, Report
from reports.services import report_create, report_set_citizen_category
from reports.targets import ClosedDays, add_working_days, due_at, report_set_due_dates
from tests.console.conftest import make_report, roles, supervisor, triager  # noqa: F401 (fixtures)

LONDON = ZoneInfo("Europe/London")
ENG = ClosedDays(nation="ENG")
D = dt.date


def test_working_days_skip_the_weekend():
    assert add_working_days(D(2025, 6, 2), 2, closed=ENG) == D(2025, 6, 4)  # Monday + 2 = Wednesday
    assert add_working_days(D(2025, 6, 6), 1, closed=ENG) == D(2025, 6, 9)  # Friday + 1 = Monday
    assert add_working_days(D(2025, 6, 7), 1, closed=ENG) == D(2025, 6, 9)  # Saturday + 1 = Monday
    assert add_working_days(D(2025, 6, 2), 10, closed=ENG) == D(2025, 6, 16)  # two weeks


def test_zero_days_is_today_or_the_next_working_day():
    assert add_working_days(D(2025, 6, 4), 0, closed=ENG) == D(2025, 6, 4)
    assert add_working_days(D(2025, 6, 7), 0, closed=ENG) == D(2025, 6, 9)
    with pytest.raises(ValueError):
        add_working_days(D(2025, 6, 4), -1, closed=ENG)


def test_bank_holidays_are_skipped_per_nation():
    # Summer bank holiday: Monday 25 August 2025 in England, Monday 4 August in Scotland.
    assert add_working_days(D(2025, 8, 22), 1, closed=ENG) == D(2025, 8, 26)
    assert add_working_days(D(2025, 8, 22), 1, closed=ClosedDays(nation="SCT")) == D(2025, 8, 25)
    assert add_working_days(D(2025, 8, 1), 1, closed=ClosedDays(nation="SCT")) == D(2025, 8, 5)
    # Christmas week 2025: Thursday 25 and Friday 26 December.
    assert add_working_days(D(2025, 12, 24), 1, closed=ENG) == D(2025, 12, 29)
    # 2 January is a holiday in Scotland only.
    assert add_working_days(D(2026, 1, 1), 1, closed=ENG) == D(2026, 1, 2)
    assert add_working_days(D(2026, 1, 1), 1, closed=ClosedDays(nation="SCT")) == D(2026, 1, 5)


def test_the_councils_own_closed_days_are_skipped():
    closure = ClosedDays(nation="ENG", extra={D(2025, 12, 29), D(2025, 12, 30), D(2025, 12, 31)})
    # Christmas closure up to New Year's Day (a bank holiday): next working day is Friday 2 January.
    assert add_working_days(D(2025, 12, 24), 1, closed=closure) == D(2026, 1, 2)
    assert add_working_days(D(2025, 12, 24), 2, closed=closure) == D(2026, 1, 5)


def test_due_at_is_the_end_of_the_local_day_across_clock_changes(settings):
    settings.TIME_ZONE = "Europe/London"
    # Friday 24 October 2025, British Summer Time; the clocks go back on Sunday the 26th.
    due = due_at(dt.datetime(2025, 10, 24, 12, 0, tzinfo=dt.UTC), 1, closed=ENG)
    assert due == dt.datetime(2025, 10, 27, 23, 59, 59, tzinfo=LONDON)
    assert due.utcoffset() == dt.timedelta(0)  # GMT by then
    assert due.astimezone(dt.UTC) == dt.datetime(2025, 10, 27, 23, 59, 59, tzinfo=dt.UTC)
    # Half past midnight on Monday 30 March 2026 in London is still Sunday in UTC: the local day counts.
    due = due_at(dt.datetime(2026, 3, 29, 23, 30, tzinfo=dt.UTC), 1, closed=ENG)
    assert due == dt.datetime(2026, 3, 31, 23, 59, 59, tzinfo=LONDON)
    assert due.astimezone(dt.UTC) == dt.datetime(2026, 3, 31, 22, 59, 59, tzinfo=dt.UTC)


# --- due dates on reports ------------------------------------------------------------------

def _local_date(value: dt.datetime) -> dt.date:
    return timezone.localtime(value).date()


@pytest.mark.django_db
def test_a_report_with_a_category_gets_due_dates_when_it_comes_in(unique_jpeg):
    Category.objects.filter(slug="pothole").update(triage_target_days=2, fix_target_days=10)
    report = report_create(photo=unique_jpeg(lat=51.5, lon=-0.12), category="pothole", classify=False).report
    report.refresh_from_db()
    today = _local_date(report.created_at)
    closed = ClosedDays(nation="ENG")
    assert _local_date(report.triage_due_at) == add_working_days(today, 2, closed=closed)
    assert _local_date(report.fix_due_at) == add_working_days(today, 10, closed=closed)
    assert report.triaged_at is None and report.closed_at is None


@pytest.mark.django_db
def test_a_report_without_a_category_has_no_due_dates_yet(unique_jpeg):
    report = report_create(photo=unique_jpeg(lat=51.5, lon=-0.12), classify=False).report
    report.refresh_from_db()
    assert report.triage_due_at is None and report.fix_due_at is None


@pytest.mark.django_db
def test_the_councils_closed_days_come_from_the_database(unique_jpeg):
    report = report_create(photo=unique_jpeg(lat=51.5, lon=-0.12), category="pothole", classify=False).report
    before = report.fix_due_at
    NonWorkingDay.objects.create(date=_local_date(before), name="Council closure")
    assert "fix_due_at" in report_set_due_dates(report)
    assert _local_date(report.fix_due_at) > _local_date(before)


@pytest.mark.django_db
def test_staff_changing_the_category_moves_the_due_dates(make_report, triager):
    Category.objects.filter(slug="graffiti").update(triage_target_days=1, fix_target_days=30)
    report = make_report(predicted="pothole", citizen="pothole")
    fix_before = report.fix_due_at
    report = report_verify(report=report, staff=triager, category=Category.objects.get(slug="graffiti"),
                           expected_version=report.version)
    report.refresh_from_db()
    today = _local_date(report.created_at)
    assert _local_date(report.fix_due_at) == add_working_days(today, 30, closed=ClosedDays(nation="ENG"))
    assert report.fix_due_at != fix_before
    assert report.triaged_at is not None  # verifying a report in review triages it


@pytest.mark.django_db
def test_the_citizen_changing_the_label_moves_the_due_dates(unique_jpeg):
    Category.objects.filter(slug="graffiti").update(fix_target_days=25)
    report = report_create(photo=unique_jpeg(lat=51.5, lon=-0.12), category="pothole", classify=False).report
    report = report_set_citizen_category(report=report, category=Category.objects.get(slug="graffiti"))
    report.refresh_from_db()
    today = _local_date(report.created_at)
    assert _local_date(report.fix_due_at) == add_working_days(today, 25, closed=ClosedDays(nation="ENG"))


@pytest.mark.django_db
def test_auto_triage_sets_the_due_dates_of_the_predicted_category(model_dir, unique_jpeg):
    Category.objects.update(auto_triage_threshold=0.0, fix_target_days=7)
    model_activate(version=model_register(source_dir=model_dir("v1")).version)
    report = report_create(photo=unique_jpeg(lat=51.5, lon=-0.12), classify=False).report
    assert report.fix_due_at is None
    classify_reports([report.pk])
    report.refresh_from_db()
    if report.predicted_category is None:
        pytest.skip("the test model said no_issue for this photo")
    today = _local_date(report.created_at)
    assert _local_date(report.fix_due_at) == add_working_days(today, 7, closed=ClosedDays(nation="ENG"))
    assert (report.status == Report.Status.TRIAGED) == (report.triaged_at is not None)


@pytest.mark.django_db
def test_closing_stamps_closed_at_and_reopening_clears_it(make_report, supervisor):
    report = make_report(status=Report.Status.TRIAGED, final_category=Category.objects.get(slug="pothole"))
    report = report_set_status(report=report, staff=supervisor, status=Report.Status.FIXED,
                               expected_version=report.version)
    report.refresh_from_db()
    assert report.closed_at is not None
    report = report_set_status(report=report, staff=supervisor, status=Report.Status.IN_PROGRESS,
                               expected_version=report.version)
    report.refresh_from_db()
    assert report.closed_at is None


@pytest.mark.django_db
def test_open311_expected_datetime_is_the_fix_target_while_open(client, unique_jpeg):
    report = report_create(photo=unique_jpeg(lat=51.5, lon=-0.12), category="pothole", classify=False).report
    url = f"/open311/v2/requests/{report.service_request_id}.json"
    [item] = client.get(url).json()
    assert item["expected_datetime"] == timezone.localtime(report.fix_due_at).isoformat(timespec="seconds")
    assert item["expected_datetime"].endswith(("+00:00", "+01:00"))
    Report.objects.filter(pk=report.pk).update(status=Report.Status.FIXED)
    [item] = client.get(url).json()
    assert item["expected_datetime"] is None


@pytest.mark.django_db
def test_the_public_status_page_shows_the_fix_target_while_open(client, unique_jpeg):
    from django.urls import reverse

    report = report_create(photo=unique_jpeg(lat=51.5, lon=-0.12), category="pothole", classify=False).report
    due = timezone.localtime(report.fix_due_at)
    html = client.get(reverse("report-status", args=[report.service_request_id])).content.decode()
    assert f"We aim to fix this by {due:%A} {due.day} {due:%B %Y}" in html
    Report.objects.filter(pk=report.pk).update(status=Report.Status.CLOSED)
    html = client.get(reverse("report-status", args=[report.service_request_id])).content.decode()
    assert "We aim to fix this by" not in html
