"""Issue 15: the reporter opens their private link, adds an update with a photo and says "still not fixed"."""
from __future__ import annotations

import pytest
from django.urls import reverse

from reports import tokens
from reports.models import Category, Report, ReportEvent, ReportUpdate
from reports.services import report_create, report_transition
from tests import images

pytestmark = pytest.mark.browser


def test_reporter_adds_an_update_and_reopens_a_fixed_report(live_server, page, seeded, tmp_path, shot):
    report = report_create(photo=images.jpeg(lat=51.5033, lon=-0.1196, color=(30, 60, 90)), classify=False,
                           reporter_email="jo@example.org", description="Deep hole by the bus stop").report
    report.final_category = Category.objects.get(slug="pothole")
    report_transition(report=report, to=Report.Status.TRIAGED, fields=["final_category"], actor_label="tina")
    report_transition(report=report, to=Report.Status.FIXED, actor_label="tina")
    token = tokens.reporter_link_token(reference=report.service_request_id)
    photo = tmp_path / "again.jpg"
    photo.write_bytes(images.jpeg(lat=51.5033, lon=-0.1196, color=(200, 60, 90)))

    page.goto(live_server.url + reverse("report-manage", args=[report.service_request_id, token]))
    page.fill("#text", "The patch has already cracked.")
    page.set_input_files("#photo", str(photo))
    page.get_by_role("button", name="Add update").click()
    page.locator("#manage-done").wait_for()
    assert "your update is on the report" in page.locator("#manage-done").inner_text()
    assert "The patch has already cracked." in page.locator(".timeline").inner_text()
    assert ReportUpdate.objects.get().photo_public

    page.fill("#note", "Water still pools in it.")
    page.get_by_role("button", name="It is still not fixed").click()
    page.locator("#manage-done").wait_for()
    assert "we have reopened the report" in page.locator("#manage-done").inner_text()
    assert page.locator("#still-not-fixed").count() == 0  # open again: nothing to reopen
    shot(page, "reporter-manage")
    report.refresh_from_db()
    assert report.status == Report.Status.NEEDS_REVIEW
    assert report.events.filter(action=ReportEvent.Action.REOPEN, actor_label="reporter",
                                note="Water still pools in it.").exists()

    page.goto(live_server.url + reverse("report-status", args=[report.service_request_id]))
    timeline = page.locator(".timeline").inner_text()
    assert "Fixed" in timeline and "The reporter says it is still not fixed" in timeline
    assert page.locator(".timeline img.thumb").count() == 1

    response = page.goto(live_server.url + reverse("report-manage", args=[report.service_request_id, "forged"]))
    assert response.status == 403 and "not valid or has expired" in page.content()
