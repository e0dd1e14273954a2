"""Issue 15, data protection: reporter contact details are erased a set time after a report
closes, with an audit event that names what went and never the values. Real mail first: the
messages come from a real SMTP round trip, so their rows hold real addresses and unsubscribe links."""
from __future__ import annotations

import datetime as dt
import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from console import services as console
from notifications.models import OutgoingMessage, Unsubscribe
from notifications.services import unsubscribe_create
from reports.models import Category, Report, ReportEvent, ReportSupporter
from reports.retention import contact_details_erase_due, reports_due_for_erasure
from reports.services import report_create
from tests.notifications.conftest import committed, mailbox, triager  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db
S = Report.Status
A = ReportEvent.Action
NAME, EMAIL = "Rita Reporter", "rita@example.org"
OTHER_NAME, OTHER = "Sam Second", "sam@example.org"
DAY = dt.timedelta(days=1)


def fresh(report: Report) -> Report:
    return Report.objects.get(pk=report.pk)


def submit(committed, photo: bytes, *, name: str = NAME, email: str = EMAIL) -> Report:
    with committed():
        intake = report_create(photo=photo, latitude=51.5, longitude=-0.12, reporter_name=name,
                               reporter_email=email, description="Deep hole by the bus stop")
    return Report.objects.get(pk=intake.report.pk)


def move(committed, report: Report, staff, status: str) -> Report:
    with committed():
        if status == S.TRIAGED and fresh(report).status == S.NEEDS_REVIEW:
            console.report_verify(report=report, staff=staff, category=Category.objects.get(slug="pothole"),
                                  expected_version=fresh(report).version)
        else:
            console.report_set_status(report=report, staff=staff, status=status,
                                      expected_version=fresh(report).version)
    return fresh(report)


def fixed_report(committed, unique_jpeg, staff, *, days_ago: float, **contact) -> Report:
    report = submit(committed, unique_jpeg(), **contact)
    move(committed, report, staff, S.TRIAGED)
    report = move(committed, report, staff, S.FIXED)
    Report.objects.filter(pk=report.pk).update(closed_at=timezone.now() - days_ago * DAY)
    return fresh(report)


def personal_values_in(report: Report) -> list[str]:
    """Every stored string about `report` that still holds a name or address."""
    values = [report.reporter_name, report.reporter_email]
    values += [v for s in report.supporters.all() for v in (s.reporter_name, s.reporter_email)]
    for m in OutgoingMessage.objects.filter(report=report).exclude(kind=OutgoingMessage.Kind.FORWARD):
        values += [m.to_address, m.text, m.html, str(m.headers), m.last_error]
    values += [e.email for e in Unsubscribe.objects.filter(report=report)]
    for e in report.events.all():
        values += [e.actor_label, e.field, e.from_value, e.to_value, e.note]
    return [v for v in values if any(p.lower() in v.lower() for p in (NAME, EMAIL, OTHER_NAME, OTHER, "rita", "sam@"))]


def test_contact_details_are_erased_after_the_period_and_the_erasure_is_audited(
        settings, mailbox, committed, unique_jpeg, triager):
    settings.REPORTER_CONTACT_RETENTION_DAYS = 365
    report = fixed_report(committed, unique_jpeg, triager, days_ago=366)
    assert len(mailbox.to(EMAIL)) == 3  # confirmation, triaged, fixed: real rows, real addresses
    assert personal_values_in(report)

    totals = contact_details_erase_due()

    report = fresh(report)
    assert (report.reporter_name, report.reporter_email) == ("", "")
    assert totals == {"reports": 1, "reporter name": 1, "reporter email": 1, "message addresses": 3}
    assert personal_values_in(report) == []
    messages = OutgoingMessage.objects.filter(report=report)
    assert sorted(messages.values_list("kind", flat=True)) == ["confirmation", "fixed", "triaged"]
    assert all(m.status == "sent" and m.sent_at and report.service_request_id in m.subject for m in messages)
    [event] = report.events.filter(action=A.CONTACT_ERASED)
    assert (event.actor_label, event.field, event.from_value, event.to_value, event.public) == (
        "retention", "contact details", "", "", False)
    assert event.note == "Erased after the retention period: 1 reporter name, 1 reporter email, 3 message addresses."
    # The report itself, its status and its photo stay.
    assert report.status == S.FIXED and report.photo_public and report.photo_original
    assert len(mailbox.messages) == 3  # the erasure tells nobody


def test_not_before_the_period_and_never_when_the_setting_is_zero(settings, mailbox, committed, unique_jpeg, triager):
    settings.REPORTER_CONTACT_RETENTION_DAYS = 365
    report = fixed_report(committed, unique_jpeg, triager, days_ago=364)
    assert contact_details_erase_due() == {}
    assert fresh(report).reporter_email == EMAIL
    assert not report.events.filter(action=A.CONTACT_ERASED).exists()

    Report.objects.filter(pk=report.pk).update(closed_at=timezone.now() - 3650 * DAY)
    settings.REPORTER_CONTACT_RETENTION_DAYS = 0  # keep for ever
    assert contact_details_erase_due() == {}
    assert fresh(report).reporter_email == EMAIL


def test_open_and_reopened_reports_are_kept(settings, mailbox, committed, unique_jpeg, triager):
    settings.REPORTER_CONTACT_RETENTION_DAYS = 30
    report = fixed_report(committed, unique_jpeg, triager, days_ago=40)
    reopened = move(committed, report, triager, S.TRIAGED)  # the council reopens it
    assert reopened.closed_at is None
    never_closed = submit(committed, unique_jpeg(), name=OTHER_NAME, email=OTHER)
    assert contact_details_erase_due(now=timezone.now() + 400 * DAY) == {}
    assert fresh(reopened).reporter_email == EMAIL and fresh(never_closed).reporter_email == OTHER

    closed_again = move(committed, reopened, triager, S.FIXED)  # the period starts again
    assert contact_details_erase_due() == {}
    assert contact_details_erase_due(now=closed_again.closed_at + 31 * DAY)["reports"] == 1
    assert fresh(closed_again).reporter_email == "" and fresh(never_closed).reporter_email == OTHER


def test_the_people_who_also_reported_it_are_erased_too(settings, mailbox, committed, unique_jpeg, triager):
    settings.REPORTER_CONTACT_RETENTION_DAYS = 365
    photo = unique_jpeg()
    report = submit(committed, photo)
    submit(committed, photo, name=OTHER_NAME, email=OTHER)  # same photo: a supporter, not a second report
    assert ReportSupporter.objects.get(report=report).reporter_email == OTHER
    move(committed, report, triager, S.TRIAGED)
    move(committed, report, triager, S.FIXED)  # reporter and supporter each get "fixed" for one event
    assert mailbox.subjects(OTHER) == [f"Report {report.service_request_id} is fixed"]
    with committed():
        unsubscribe_create(email=OTHER, report=report)
        unsubscribe_create(email=EMAIL, report=None)  # everything, not this report's: the person's wish stays
    Report.objects.filter(pk=report.pk).update(closed_at=timezone.now() - 400 * DAY)

    totals = contact_details_erase_due()

    assert totals == {"reports": 1, "reporter name": 1, "reporter email": 1, "also-reported contacts": 1,
                      "message addresses": 4, "unsubscribes": 1}
    report = fresh(report)
    assert personal_values_in(report) == []
    supporter = ReportSupporter.objects.get(report=report)
    assert (supporter.reporter_name, supporter.reporter_email, supporter.channel) == ("", "", "web")
    assert list(Unsubscribe.objects.values_list("email", "report")) == [(EMAIL, None)]


def test_only_supporters_left_and_running_twice_erases_once(settings, mailbox, committed, unique_jpeg, triager):
    settings.REPORTER_CONTACT_RETENTION_DAYS = 10
    report = fixed_report(committed, unique_jpeg, triager, days_ago=11, name="", email="")
    ReportSupporter.objects.create(report=report, channel="api", reporter_email=OTHER)
    assert contact_details_erase_due() == {"reports": 1, "also-reported contacts": 1}
    assert contact_details_erase_due() == {}  # idempotent: nothing left, no second event
    assert report.events.filter(action=A.CONTACT_ERASED).count() == 1
    assert reports_due_for_erasure().count() == 0


def test_batches_cover_every_report_due(settings, mailbox, committed, unique_jpeg, triager):
    settings.REPORTER_CONTACT_RETENTION_DAYS = 10
    due = [fixed_report(committed, unique_jpeg, triager, days_ago=11 + n) for n in range(3)]
    kept = fixed_report(committed, unique_jpeg, triager, days_ago=5)
    assert contact_details_erase_due(batch_size=1)["reports"] == 3
    assert [fresh(r).reporter_email for r in due] == ["", "", ""]
    assert fresh(kept).reporter_email == EMAIL


def test_command_dry_run_counts_and_changes_nothing_then_erases(settings, mailbox, committed, unique_jpeg, triager):
    settings.REPORTER_CONTACT_RETENTION_DAYS = 365
    report = fixed_report(committed, unique_jpeg, triager, days_ago=366)

    out = io.StringIO()
    call_command("erase_contact_details", "--dry-run", stdout=out)
    assert out.getvalue().strip() == ("Would erase contact details of 1 report closed over 365 days ago: "
                                      "1 reporter name, 1 reporter email, 3 message addresses")
    assert fresh(report).reporter_email == EMAIL
    assert OutgoingMessage.objects.filter(to_address=EMAIL).count() == 3
    assert not report.events.filter(action=A.CONTACT_ERASED).exists()

    out = io.StringIO()
    with committed():
        call_command("erase_contact_details", stdout=out)
    assert out.getvalue().startswith("Erased contact details of 1 report closed over 365 days ago: 1 reporter name")
    assert personal_values_in(fresh(report)) == []

    out = io.StringIO()
    call_command("erase_contact_details", stdout=out)
    assert out.getvalue().strip() == "No contact details to erase (reports closed over 365 days ago)"

    settings.REPORTER_CONTACT_RETENTION_DAYS = 0
    out = io.StringIO()
    call_command("erase_contact_details", stdout=out)
    assert "contact details are kept" in out.getvalue()
    settings.REPORTER_CONTACT_RETENTION_DAYS = 365
    with pytest.raises(CommandError, match="--batch-size must be at least 1"):
        call_command("erase_contact_details", "--batch-size", "0")


def test_a_report_that_fails_is_rolled_back_and_the_others_still_go(settings, mailbox, committed, unique_jpeg,
                                                                     triager):
    from reports.signals import contact_details_erasing

    settings.REPORTER_CONTACT_RETENTION_DAYS = 10
    broken, fine = (fixed_report(committed, unique_jpeg, triager, days_ago=11) for _ in range(2))

    def refuse(sender, *, report, **kwargs):
        if report.pk == broken.pk:
            raise RuntimeError("message store unavailable")

    contact_details_erasing.connect(refuse, dispatch_uid="test.refuse")
    try:
        with pytest.raises(CommandError, match="Could not erase 1 report "):
            call_command("erase_contact_details", stdout=io.StringIO())
    finally:
        contact_details_erasing.disconnect(dispatch_uid="test.refuse")
    assert fresh(fine).reporter_email == ""
    assert fresh(broken).reporter_email == EMAIL  # nothing half-erased: its messages keep their addresses too
    assert OutgoingMessage.objects.filter(report=broken, to_address=EMAIL).count() == 3
    assert not broken.events.filter(action=A.CONTACT_ERASED).exists()
    assert contact_details_erase_due()["reports"] == 1  # the next run gets it
