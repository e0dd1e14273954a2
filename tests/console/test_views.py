"""The report view's keys: Enter accepts only a suggested category; X rejects with a reason."""
from __future__ import annotations

import re

import pytest
from django.urls import reverse

from console import services
from reports.models import Report

S = Report.Status
pytestmark = pytest.mark.django_db


def _page(client, report) -> str:
    return client.get(reverse("console:report", args=[report.service_request_id])).content.decode()


def _enter_buttons(html: str) -> list[str]:
    return re.findall(r'<button[^>]*data-key="Enter"[^>]*>.*?</button>', html, flags=re.S)


def test_enter_accepts_a_suggested_category(client, triager, make_report):
    report = make_report(predicted="pothole", probability=0.41)
    client.force_login(triager)
    html = _page(client, report)
    [button] = _enter_buttons(html)
    assert 'value="pothole"' in button and "Accept model: Pothole" in button
    assert 'data-key-hint="Enter"' not in html


@pytest.mark.parametrize("fields, why", [
    ({"predicted": "no_issue", "probability": 0.97}, "The model says “not a council issue”; Enter never rejects."),
    ({"predicted": "pothole", "probability": 0.9, "predicted_unknown": True, "unknown_score": 4.2},
     "unlike anything the model was trained on"),
    ({"predicted": None, "probability": None}, "The model has no category to suggest."),
])
def test_enter_has_nothing_to_accept_on_no_issue_unknown_or_no_suggestion(client, triager, make_report, fields, why):
    report = make_report(**fields)
    client.force_login(triager)
    html = _page(client, report)
    assert _enter_buttons(html) == [] and "Accept model" not in html
    hint = re.search(r'<p class="key-hint" id="enter-hint" data-key-hint="Enter"[^>]*>(.*?)</p>', html, re.S).group(1)
    assert why in hint and "1–9" in hint and "X to reject" in hint


def test_unknown_photo_is_shown_to_staff_as_unlike_the_training_classes(client, triager, make_report):
    report = make_report(predicted="pothole", probability=0.9, predicted_unknown=True, unknown_score=4.2)
    client.force_login(triager)
    html = _page(client, report)
    assert "Unlike anything the model was trained on" in html and "score 4.20" in html
    queue = client.get(reverse("console:queue")).content.decode()
    assert 'class="flag unknown"' in queue


def test_reject_offers_the_canned_reasons_behind_x(client, triager, make_report):
    report = make_report(predicted="pothole", probability=0.97, status=S.TRIAGED, auto_triaged=True)
    client.force_login(triager)
    html = _page(client, report)
    reject = re.search(r'<details class="reject".*?</details>', html, re.S).group(0)
    assert '<summary data-key="x"' in reject
    for key, reason in services.REJECT_REASONS.items():
        assert f'name="reason" value="{key}"' in reject and str(reason.label) in reject
    status_menu = re.search(r'<select name="status" id="id_status".*?</select>', html, re.S).group(0)
    assert 'value="rejected"' not in status_menu  # rejecting only through X, with a reason


@pytest.mark.parametrize("reason", ["", "because"])
def test_reject_without_a_valid_reason_is_a_400_and_changes_nothing(client, triager, make_report, reason):
    report = make_report(predicted="no_issue", probability=0.97)
    client.force_login(triager)
    response = client.post(reverse("console:status", args=[report.service_request_id]),
                           {"version": 1, "status": "rejected", "reason": reason})
    assert response.status_code == 400
    assert "Rejecting needs a reason; choose one of: not_council (Not a council matter)" in response.content.decode()
    report.refresh_from_db()
    assert (report.status, report.version, report.reject_reason) == (S.NEEDS_REVIEW, 1, "")


def test_reject_with_a_reason_moves_on_and_tells_the_citizen(client, triager, make_report):
    report = make_report(predicted="no_issue", probability=0.97)
    following = make_report(lat=51.6, probability=0.99)  # the queue is least confident first
    client.force_login(triager)
    response = client.post(reverse("console:status", args=[report.service_request_id]),
                           {"version": 1, "status": "rejected", "reason": "private_land"})
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("console:report", args=[following.service_request_id]))
    report.refresh_from_db()
    assert (report.status, report.reject_reason) == (S.REJECTED, "private_land")
    status = client.get(f"/report/{report.service_request_id}/").content.decode()
    assert "This is on private land" in status


def test_bulk_reject_without_a_reason_is_refused(client, triager, make_report):
    report = make_report()
    client.force_login(triager)
    response = client.post(reverse("console:bulk"), {"action": "status", "status": "rejected",
                                                     "selected": [f"{report.pk}:1"]}, follow=True)
    assert "Choose a reason for rejecting." in response.content.decode()
    report.refresh_from_db()
    assert report.status == S.NEEDS_REVIEW


def test_a_spot_check_is_marked_with_its_reason_in_the_queue_and_the_report(client, triager, make_report):
    from classifier.models import SpotCheck
    from reports.models import Category

    report = make_report(predicted="pothole", probability=0.97)
    SpotCheck.objects.create(report=report, model_version="v1", category=Category.objects.get(slug="pothole"),
                             probability=0.97, share=0.05)
    plain = make_report(predicted="pothole", probability=0.4)
    client.force_login(triager)
    html = _page(client, report)
    reason = html.split('id="spot-check-reason"')[1].split("</p>")[0]
    assert "would have auto-triaged this as <strong>Pothole</strong> (0.97, model v1)" in reason
    assert "5% of auto-triages come to a person like this" in reason
    assert 'id="spot-check-reason"' not in _page(client, plain)
    queue = client.get(reverse("console:queue") + "?status=needs_review").content.decode()
    [row] = [r for r in re.findall(r"<tr.*?</tr>", queue, flags=re.S) if report.service_request_id in r]
    assert 'class="flag spot"' in row and "would have auto-triaged this as Pothole (0.97)" in row
