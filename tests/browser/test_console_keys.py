"""Issue 12: Enter accepts only a suggested category; X rejects with a reason the citizen reads."""
from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model

from reports.models import Category, Report
from reports.services import report_create
from tests import images

pytestmark = pytest.mark.browser
S = Report.Status


def _report(n: int, *, predicted: str, probability: float, lat: float, **fields) -> Report:
    report = report_create(photo=images.jpeg(size=(400, 300), color=((n * 53) % 256, (n * 97) % 256, 90)),
                           latitude=lat, longitude=-0.12).report
    Report.objects.filter(pk=report.pk).update(
        status=S.NEEDS_REVIEW, predicted_label=predicted, predicted_probability=probability,
        predicted_category=Category.objects.filter(slug=predicted).first(),
        predicted_top_k=[[predicted, probability], ["graffiti", round(1 - probability, 3)]], model_version="demo-1",
        **fields)
    return Report.objects.get(pk=report.pk)


def _login(page, live_server, seeded):
    user = get_user_model().objects.create_user("tina", password="correct-horse-9")
    user.groups.add(seeded["triager"])
    page.goto(f"{live_server.url}/console/login/")
    page.fill("input[name=username]", "tina")
    page.fill("input[name=password]", "correct-horse-9")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server.url}/console/")


def _at(report: Report):
    return re.compile(rf"/console/reports/{report.service_request_id}/(\?.*)?$")


def test_enter_does_nothing_on_no_issue_or_unknown_but_verifies_a_category(live_server, page, seeded, shot,
                                                                             settings):
    settings.MAP_TILE_URL = ""
    no_issue = _report(1, predicted="no_issue", probability=0.97, lat=51.50)
    unknown = _report(2, predicted="fly_tipping", probability=0.91, lat=51.51, predicted_unknown=True,
                      unknown_score=5.1)
    pothole = _report(3, predicted="pothole", probability=0.6, lat=51.52)
    _login(page, live_server, seeded)

    page.goto(f"{live_server.url}/console/reports/{no_issue.service_request_id}/")
    assert not page.locator("#enter-hint").is_visible()
    page.keyboard.press("Enter")
    hint = page.locator("#enter-hint")
    hint.wait_for(state="visible")
    assert "Enter never rejects" in hint.inner_text() and "X to reject" in hint.inner_text()
    page.wait_for_timeout(300)  # a navigation, had Enter submitted anything, would have started by now
    assert _at(no_issue).search(page.url)
    shot(page, "console-enter-hint")
    no_issue.refresh_from_db()
    assert (no_issue.status, no_issue.version, no_issue.verified_by) == (S.NEEDS_REVIEW, 1, None)

    page.goto(f"{live_server.url}/console/reports/{unknown.service_request_id}/")
    assert "Unlike anything the model was trained on" in page.locator("#model-unknown").inner_text()
    page.keyboard.press("Enter")
    page.locator("#enter-hint").wait_for(state="visible")
    page.wait_for_timeout(300)
    unknown.refresh_from_db()
    assert (unknown.status, unknown.version, unknown.final_category) == (S.NEEDS_REVIEW, 1, None)

    page.goto(f"{live_server.url}/console/reports/{pothole.service_request_id}/")
    page.keyboard.press("Enter")  # a real category: accepted
    page.wait_for_url(lambda url: not _at(pothole).search(url))
    pothole.refresh_from_db()
    assert (pothole.status, pothole.final_category.slug, pothole.verified_by.username) == (S.TRIAGED, "pothole", "tina")


def test_x_then_a_digit_rejects_with_the_reason_shown_to_the_citizen(live_server, page, seeded):
    report = _report(4, predicted="no_issue", probability=0.97, lat=51.53)
    _login(page, live_server, seeded)
    page.goto(f"{live_server.url}/console/reports/{report.service_request_id}/")
    page.keyboard.press("x")
    reasons = page.locator("details.reject form.reasons")
    reasons.wait_for(state="visible")
    page.keyboard.press("Escape")  # cancels
    reasons.wait_for(state="hidden")
    page.keyboard.press("x")
    reasons.wait_for(state="visible")
    page.keyboard.press("2")  # Private land; not category 2, which the open reasons hide
    page.wait_for_url(lambda url: not _at(report).search(url))
    report.refresh_from_db()
    assert (report.status, report.reject_reason, report.final_category) == (S.REJECTED, "private_land", None)
    page.goto(f"{live_server.url}/report/{report.service_request_id}/")
    assert "This is on private land" in page.content()
