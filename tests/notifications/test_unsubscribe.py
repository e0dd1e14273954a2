"""The unsubscribe link in every message: a confirm page, one-click POSTs (RFC 8058), and a clear
refusal for forged or expired links."""
from __future__ import annotations

import re

import pytest
from django.test import Client

from notifications.models import OutgoingMessage, Unsubscribe
from notifications.services import unsubscribe_create
from notifications.tokens import unsubscribe_token
from reports.models import Report

from .conftest import text_of
from .test_messages import REPORTER, fresh, set_status, submit, verify

pytestmark = pytest.mark.django_db
S = Report.Status


def link_path(message) -> str:
    return re.search(r"https://reports\.example\.test(/mail/unsubscribe/[^/\s]+/)", text_of(message)).group(1)


def test_opening_the_link_only_asks(mailbox, committed, unique_jpeg):
    report = submit(committed, unique_jpeg)
    response = Client().get(link_path(mailbox.to(REPORTER)[0]))
    assert response.status_code == 200
    page = response.content.decode()
    assert f"Stop e-mails about report {report.service_request_id}" in page and REPORTER in page
    assert not Unsubscribe.objects.exists()


def test_stopping_one_report_keeps_mail_about_others(mailbox, committed, unique_jpeg, triager):
    report, other = submit(committed, unique_jpeg), submit(committed, unique_jpeg)
    client = Client(enforce_csrf_checks=True)  # the token is the proof; mail links carry no CSRF cookie
    response = client.post(link_path(mailbox.to(REPORTER)[0]), {"scope": "report"})
    assert response.status_code == 200 and "will not e-mail" in response.content.decode()
    verify(committed, report, triager)
    verify(committed, other, triager)
    assert mailbox.subjects(REPORTER)[2:] == [f"Report {other.service_request_id} has been checked"]


def test_one_click_post_from_a_mail_client(mailbox, committed, unique_jpeg, triager):
    report = submit(committed, unique_jpeg)
    header = mailbox.to(REPORTER)[0]["List-Unsubscribe"].strip()[1:-1]
    response = Client(enforce_csrf_checks=True).post(header.removeprefix("https://reports.example.test"),
                                                     {"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    assert Unsubscribe.objects.filter(email=REPORTER, report=report).exists()
    verify(committed, report, triager)
    assert len(mailbox.to(REPORTER)) == 1


def test_stopping_everything_stops_every_report_and_cancels_what_waits(mailbox, committed, unique_jpeg, triager):
    report = submit(committed, unique_jpeg)
    mailbox.stop()
    verify(committed, report, triager)  # fails to send: waits for a retry
    assert OutgoingMessage.objects.filter(status="queued").count() == 1
    Client().post(link_path(mailbox.to(REPORTER)[0]), {"scope": "all"})
    assert OutgoingMessage.objects.get(kind="triaged").status == "cancelled"
    mailbox.start()
    submit(committed, unique_jpeg, email=REPORTER.upper())
    assert len(mailbox.messages) == 1


@pytest.mark.parametrize("mangle", [lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),
                                    lambda t: "not-a-token",
                                    lambda t: t.replace(t.split(":")[0], t.split(":")[0][::-1])])
def test_a_forged_link_is_refused_with_a_clear_page(db, mangle):
    token = mangle(unsubscribe_token(email=REPORTER, reference="ABC"))
    for method in ("get", "post"):
        response = getattr(Client(), method)(f"/mail/unsubscribe/{token}/", {"scope": "all"})
        assert response.status_code == 400
        assert "This unsubscribe link does not work" in response.content.decode()
        assert "not valid" in response.content.decode()
    assert not Unsubscribe.objects.exists()


def test_an_expired_link_is_refused(db, settings):
    token = unsubscribe_token(email=REPORTER)
    settings.UNSUBSCRIBE_LINK_MAX_AGE = -1  # every link is older than that
    response = Client().post(f"/mail/unsubscribe/{token}/", {"scope": "all"})
    assert response.status_code == 400 and "expired" in response.content.decode()
    assert not Unsubscribe.objects.exists()


def test_a_post_without_a_choice_is_a_400_naming_the_choices(db):
    response = Client().post(f"/mail/unsubscribe/{unsubscribe_token(email=REPORTER)}/", {"scope": "report"})
    assert response.status_code == 400 and "Choose what to stop" in response.content.decode()
    assert not Unsubscribe.objects.exists()


def test_unsubscribing_twice_is_harmless(db):
    assert unsubscribe_create(email=REPORTER, report=None) == unsubscribe_create(email=REPORTER.upper(), report=None)
    assert Unsubscribe.objects.count() == 1


def test_an_unsubscribed_address_gets_nothing_and_the_change_still_happens(mailbox, committed, unique_jpeg, triager):
    report = submit(committed, unique_jpeg)
    unsubscribe_create(email=REPORTER, report=None)
    set_status(committed, report, triager, S.REJECTED, reason="private_land")
    assert len(mailbox.to(REPORTER)) == 1
    assert fresh(report).status == S.REJECTED
