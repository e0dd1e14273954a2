"""Every message the reporter (and the people who also reported it) gets, read back from a real
SMTP server: its trigger, its content, and what it never contains."""
from __future__ import annotations

import io
import re

import pytest
from PIL import Image

from console import services as console
from notifications.models import OutgoingMessage
from reports.models import Category, Report, ReportEvent, Team
from reports.services import record_event, report_create
from reports.tokens import reporter_link_valid
from .conftest import html_of, text_of

pytestmark = pytest.mark.django_db
S = Report.Status
REPORTER = "rita@example.org"


def submit(committed, unique_jpeg, *, email: str = REPORTER, name: str = "Rita Reporter", photo=None) -> Report:
    with committed():
        intake = report_create(photo=photo or unique_jpeg(), latitude=51.5, longitude=-0.12, reporter_email=email,
                               reporter_name=name, description="Deep hole by the bus stop")
    return Report.objects.get(pk=intake.report.pk)


def fresh(report: Report) -> Report:
    return Report.objects.get(pk=report.pk)


def set_status(committed, report, staff, status, **kwargs) -> Report:
    with committed():
        console.report_set_status(report=report, staff=staff, status=status, expected_version=fresh(report).version,
                                  **kwargs)
    return fresh(report)


def verify(committed, report, staff, slug="pothole") -> Report:
    with committed():
        console.report_verify(report=report, staff=staff, category=Category.objects.get(slug=slug),
                              expected_version=fresh(report).version)
    return fresh(report)


def test_confirmation_has_the_reference_the_private_link_and_one_click_unsubscribe(mailbox, committed, unique_jpeg):
    report = submit(committed, unique_jpeg)
    ref = report.service_request_id
    [message] = mailbox.to(REPORTER)
    assert message["Subject"] == f"We have your report {ref}"
    text, html = text_of(message), html_of(message)
    assert ref in text and ref in html
    token = re.search(rf"https://reports\.example\.test/report/{ref}/manage/([^/\s]+)/", text).group(1)
    assert reporter_link_valid(reference=ref, token=token)
    assert f"/report/{ref}/manage/{token}/" in html
    unsubscribe = re.search(r"https://reports\.example\.test/mail/unsubscribe/[^/\s]+/", text).group(0)
    assert message["List-Unsubscribe"].strip() == f"<{unsubscribe}>"  # parsing keeps the fold's space
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert unsubscribe in html
    stored = OutgoingMessage.objects.get(report=report)
    assert (stored.kind, stored.status, stored.attempts, stored.to_address) == ("confirmation", "sent", 1, REPORTER)


def test_no_email_address_no_message(mailbox, committed, unique_jpeg, triager):
    report = submit(committed, unique_jpeg, email="", name="")
    verify(committed, report, triager)
    set_status(committed, report, triager, S.FIXED)
    assert mailbox.messages == []
    assert not OutgoingMessage.objects.exists()


def test_triaged_in_progress_fixed_and_closed_each_send_one_message(mailbox, committed, unique_jpeg, triager):
    report = submit(committed, unique_jpeg)
    ref = report.service_request_id
    verify(committed, report, triager)
    set_status(committed, report, triager, S.IN_PROGRESS)
    set_status(committed, report, triager, S.FIXED)
    set_status(committed, report, triager, S.TRIAGED)  # reopened: told again that it is being dealt with
    set_status(committed, report, triager, S.CLOSED)
    assert mailbox.subjects(REPORTER) == [
        f"We have your report {ref}", f"Report {ref} has been checked", f"Work has started on report {ref}",
        f"Report {ref} is fixed", f"Report {ref} has been checked", f"Report {ref} is closed"]
    triaged = text_of(mailbox.to(REPORTER)[1])
    assert "checked as Pothole" in triaged
    fixed = text_of(mailbox.to(REPORTER)[3])
    assert "Still not fixed? Tell us" in fixed and f"/report/{ref}/manage/" in fixed


def test_moves_that_tell_the_citizen_nothing_send_nothing(mailbox, committed, unique_jpeg, triager):
    report = submit(committed, unique_jpeg)
    verify(committed, report, triager)
    with committed():
        console.report_assign(report=report, staff=triager, assignee=triager,  # a council team: no mail
                              team=Team.objects.create(slug="roads", name="Roads"),
                              expected_version=fresh(report).version)
    set_status(committed, report, triager, S.NEEDS_REVIEW)
    assert len(mailbox.to(REPORTER)) == 2  # confirmation, triaged


def test_rejection_says_why_in_one_message(mailbox, committed, unique_jpeg, triager):
    report = submit(committed, unique_jpeg)
    set_status(committed, report, triager, S.REJECTED, reason="private_land")
    [_, rejected] = mailbox.to(REPORTER)
    assert rejected["Subject"] == f"Report {report.service_request_id}: we cannot deal with it"
    text = text_of(rejected)
    assert "Private land" in text
    assert str(console.REJECT_REASONS["private_land"].public_note) in text
    assert "Private land" in html_of(rejected)


def test_duplicate_names_the_original(mailbox, committed, unique_jpeg, triager):
    original = submit(committed, unique_jpeg, email="first@example.org", name="First")
    report = submit(committed, unique_jpeg)
    with committed():
        console.report_mark_duplicate(report=report, original=original, staff=triager,
                                      expected_version=fresh(report).version)
    [_, merged] = mailbox.to(REPORTER)
    ref, orig = report.service_request_id, original.service_request_id
    assert merged["Subject"] == f"Report {ref} was already reported as {orig}"
    assert f"https://reports.example.test/report/{orig}/" in text_of(merged)
    assert "first@example.org" not in merged.as_string() and "First" not in text_of(merged)
    assert len(mailbox.to("first@example.org")) == 1  # its own confirmation only


def test_public_notes_are_sent_and_private_notes_never(mailbox, committed, unique_jpeg, triager):
    report = submit(committed, unique_jpeg)
    with committed():
        console.report_add_note(report=report, staff=triager, text="Crew booked for Tuesday <b>morning</b>.",
                                public=True)
        console.report_add_note(report=report, staff=triager, text="Resident is a known complainer",
                                public=False)
    set_status(committed, report, triager, S.REJECTED, reason="not_council")
    messages = mailbox.to(REPORTER)
    assert [m["Subject"] for m in messages][1] == f"An update on report {report.service_request_id}"
    assert "Crew booked for Tuesday <b>morning</b>." in text_of(messages[1])
    assert "Crew booked for Tuesday &lt;b&gt;morning&lt;/b&gt;." in html_of(messages[1])  # escaped in HTML
    assert len(messages) == 3  # confirmation, public note, rejection
    for message in mailbox.messages:
        assert "known complainer" not in message.as_string()
    assert not OutgoingMessage.objects.filter(text__contains="known complainer").exists()


def test_people_who_also_reported_hear_when_it_is_fixed_and_nobody_sees_anyone_else(
        mailbox, committed, unique_jpeg, triager):
    photo = unique_jpeg()
    report = submit(committed, unique_jpeg, photo=photo)
    with committed():
        again = report_create(photo=photo, latitude=51.5, longitude=-0.12, reporter_email="sam@example.org",
                              reporter_name="Sam Supporter")
    assert not again.created
    with committed():
        report_create(photo=photo, latitude=51.5, longitude=-0.12, reporter_email=REPORTER.upper())  # the reporter again
    verify(committed, report, triager)
    set_status(committed, report, triager, S.FIXED)
    set_status(committed, report, triager, S.TRIAGED)  # only fixed and closed reach supporters
    set_status(committed, report, triager, S.CLOSED)
    ref = report.service_request_id
    assert mailbox.subjects("sam@example.org") == [f"Report {ref} is fixed", f"Report {ref} is closed"]
    assert mailbox.subjects(REPORTER.upper()) == []  # the reporter's own address is mailed once, as reporter
    for message in mailbox.to("sam@example.org"):
        whole = message.as_string()
        assert REPORTER not in whole and "Rita" not in whole
        assert "/manage/" not in whole  # the private link is the reporter's alone
        assert "you also reported" in text_of(message)
    for message in mailbox.to(REPORTER):
        assert "sam@example.org" not in message.as_string() and "Sam Supporter" not in message.as_string()
    assert all(len(m["X-Envelope-To"].split(",")) == 1 for m in mailbox.messages)


def test_an_outside_body_gets_the_report_and_the_citizen_is_told_who_handles_it(
        mailbox, committed, unique_jpeg, triager):
    team = Team.objects.create(slug="highways", name="National Highways", kind=Team.Kind.OUTSIDE_BODY,
                               email="incidents@highways.example")
    report = submit(committed, unique_jpeg, photo=unique_jpeg(lat=51.5, lon=-0.12))
    with committed():  # as team routing records it
        Report.objects.filter(pk=report.pk).update(team=team)
        record_event(report=fresh(report), action=ReportEvent.Action.ASSIGNED, field="team", to_value=team.slug,
                     note="rule 1")
    ref = report.service_request_id
    [forward] = mailbox.to("incidents@highways.example")
    assert forward["Subject"] == f"Report {ref} from Demo Borough Council for National Highways"
    text = text_of(forward)
    assert f"https://reports.example.test/report/{ref}/" in text and "Deep hole by the bus stop" in text
    assert f"https://reports.example.test/media/" in text
    [photo] = [part for part in forward.iter_attachments()]
    assert photo.get_content_type() == "image/jpeg"
    exif = Image.open(io.BytesIO(photo.get_content())).getexif()
    assert 0x8825 not in exif  # the public copy: no GPS block
    whole = forward.as_string()
    assert REPORTER not in whole and "Rita" not in whole and "/manage/" not in whole
    [_, told] = mailbox.to(REPORTER)
    assert told["Subject"] == f"Report {ref} is being handled by National Highways"


def test_a_team_set_by_hand_forwards_and_tells_the_citizen_as_a_rule_does(mailbox, committed, unique_jpeg, triager):
    Team.objects.create(slug="highways", name="National Highways", kind=Team.Kind.OUTSIDE_BODY,
                        email="incidents@highways.example")
    report = submit(committed, unique_jpeg)
    with committed():
        console.report_assign(report=report, staff=triager, assignee=None, team=Team.objects.get(slug="highways"),
                              expected_version=fresh(report).version)
    ref = report.service_request_id
    [forward] = mailbox.to("incidents@highways.example")
    assert forward["Subject"] == f"Report {ref} from Demo Borough Council for National Highways"
    [_, told] = mailbox.to(REPORTER)
    assert told["Subject"] == f"Report {ref} is being handled by National Highways"


def test_a_council_team_is_not_mailed(mailbox, committed, unique_jpeg):
    team = Team.objects.create(slug="roads", name="Roads", kind=Team.Kind.DEPARTMENT, email="roads@council.example")
    report = submit(committed, unique_jpeg)
    with committed():
        Report.objects.filter(pk=report.pk).update(team=team)
        record_event(report=fresh(report), action=ReportEvent.Action.ASSIGNED, field="team", to_value=team.slug)
    assert mailbox.to("roads@council.example") == [] and len(mailbox.to(REPORTER)) == 1


def test_an_event_announced_twice_mails_once(mailbox, committed, unique_jpeg):
    from notifications.receivers import on_report_event

    report = submit(committed, unique_jpeg)
    on_report_event(None, event=ReportEvent.objects.get(report=report, action="created"))
    assert len(mailbox.to(REPORTER)) == 1
