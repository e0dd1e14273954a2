"""Issue 15, the whole loop in a real browser: a citizen reports through the form with an e-mail
address, staff triage and fix it in the console, the citizen's mailbox (a real SMTP server on
loopback) holds the three messages, and the "still not fixed" link in the last one reopens it.

Mail in a live server: the test settings' task backend is immediate, so the live server's
request thread queues each message after its transaction commits and sends it at once over
SMTP to the aiosmtpd server (tests/notifications/conftest.py); SITE_URL points the links in
the messages at the live server."""
from __future__ import annotations

import re
import time

import pytest
from django.contrib.auth import get_user_model

from notifications.models import OutgoingMessage
from reports.models import Report, ReportEvent
from tests import images
from tests.notifications.conftest import mailbox, text_of  # noqa: F401 (fixture)

pytestmark = pytest.mark.browser
S = Report.Status
CITIZEN = "jo.citizen@example.org"


def wait_for_mail(box, address: str, count: int, timeout: float = 10.0) -> list:
    deadline = time.monotonic() + timeout
    while len(box.to(address)) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    return box.to(address)


def test_report_triage_fix_mail_and_still_not_fixed(live_server, page, seeded, mailbox, settings, tmp_path, shot):
    settings.SITE_URL = live_server.url
    settings.MAIL_TASK_BACKEND = "default"  # the immediate backend (config/settings/test.py): sent after commit
    staff = get_user_model().objects.create_user("tina", password="correct-horse-9")
    staff.groups.add(seeded["supervisor"])

    # The citizen: a photo with EXIF GPS, their e-mail address, no account.
    photo = tmp_path / "pothole.jpg"
    photo.write_bytes(images.jpeg(lat=51.5033, lon=-0.1196, color=(70, 20, 110)))
    page.goto(f"{live_server.url}/report/")
    page.set_input_files("input[name=photo]", str(photo))
    page.fill("textarea[name=description]", "Deep hole by the bus stop")
    page.fill("input[name=email]", CITIZEN)
    page.get_by_role("button", name="Send report").click()
    page.wait_for_url(re.compile(r"/report/[A-Z0-9]{10}/thanks/$"))
    ref = re.search(r"/report/([A-Z0-9]{10})/thanks/", page.url).group(1)
    report = Report.objects.get(service_request_id=ref)
    assert (report.reporter_email, report.location_source, report.status) == (
        CITIZEN, Report.LocationSource.EXIF, S.NEEDS_REVIEW)  # no model yet: a person looks at it
    [confirmation] = wait_for_mail(mailbox, CITIZEN, 1)
    assert ref in confirmation["Subject"]

    # Staff: log in, verify the category, then mark it fixed.
    page.goto(f"{live_server.url}/console/reports/{ref}/")
    page.wait_for_url(re.compile(r"/console/login/"))
    page.fill("input[name=username]", "tina")
    page.fill("input[name=password]", "correct-horse-9")
    page.get_by_role("button", name=re.compile("log in", re.I)).click()
    page.wait_for_url(re.compile(rf"/console/reports/{ref}/"))
    with page.expect_navigation():
        page.locator("#verify-form button[value=pothole]").click()
    assert Report.objects.get(pk=report.pk).status == S.TRIAGED
    page.goto(f"{live_server.url}/console/reports/{ref}/")
    page.select_option("#id_status", "fixed")
    with page.expect_navigation():
        page.locator(".status-form button[type=submit]").click()
    assert Report.objects.get(pk=report.pk).status == S.FIXED

    # The citizen's mailbox: confirmation, triaged, fixed; nothing else, nobody else.
    messages = wait_for_mail(mailbox, CITIZEN, 3)
    assert len(messages) == 3 and len(mailbox.messages) == 3
    kinds = list(OutgoingMessage.objects.filter(report=report).order_by("id").values_list("kind", "status"))
    assert kinds == [("confirmation", "sent"), ("triaged", "sent"), ("fixed", "sent")]
    assert [m["Subject"] for m in messages] == [
        f"We have your report {ref}", f"Report {ref} has been checked", f"Report {ref} is fixed"]
    fixed = text_of(messages[2])
    link = re.search(rf"{re.escape(live_server.url)}/report/{ref}/manage/[^/\s]+/", fixed).group(0)

    # "Still not fixed" from the link in the fixed message reopens the report.
    page.context.clear_cookies()  # the reporter is not the staff member's session
    page.goto(link)
    page.fill("#note", "The hole is back after the rain.")
    page.get_by_role("button", name="It is still not fixed").click()
    page.locator("#manage-done").wait_for()
    assert "we have reopened the report" in page.locator("#manage-done").inner_text()
    shot(page, "civic-loop-reopened")
    report = Report.objects.get(pk=report.pk)
    assert (report.status, report.closed_at) == (S.NEEDS_REVIEW, None)
    reopen = report.events.get(action=ReportEvent.Action.REOPEN)
    assert (reopen.actor_label, reopen.from_value, reopen.to_value, reopen.note) == (
        "reporter", S.FIXED, S.NEEDS_REVIEW, "The hole is back after the rain.")
