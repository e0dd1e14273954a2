"""Who may do what: every console URL needs login, every action its permission."""
from __future__ import annotations

import io

import pytest
from django.test import Client
from django.urls import reverse
from PIL import Image

from console.roles import setup_roles
from reports.models import Report
from tests import images

GET_URLS = ["console:queue", "console:map", "console:map-geojson", "console:model", "console:export-csv",
            "console:export-geojson"]
REPORT_GET_URLS = ["console:report", "console:original", "console:photo", "console:duplicates"]
REPORT_POST_URLS = ["console:verify", "console:status", "console:note", "console:assign", "console:duplicate"]
POST_URLS = ["console:bulk", "console:threshold", "console:retrain", "console:rollback"]


def _all_urls(ref):
    return ([("get", reverse(n)) for n in GET_URLS] + [("get", reverse(n, args=[ref])) for n in REPORT_GET_URLS]
            + [("post", reverse(n, args=[ref])) for n in REPORT_POST_URLS] + [("post", reverse(n)) for n in POST_URLS])


@pytest.mark.django_db
def test_anonymous_is_sent_to_login_from_every_console_url(client, make_report):
    report = make_report()
    for method, url in _all_urls(report.service_request_id):
        response = getattr(client, method)(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/console/login/?next="), url


@pytest.mark.django_db
def test_logged_in_user_without_a_console_role_gets_403_everywhere(client, outsider, make_report):
    report = make_report()
    client.force_login(outsider)
    for method, url in _all_urls(report.service_request_id):
        assert getattr(client, method)(url).status_code == 403, url


@pytest.mark.django_db
def test_login_page_logs_a_triager_in(client, triager):
    response = client.post(reverse("console:login"), {"username": "tina", "password": "pw-tina", "next": "/console/"})
    assert response.status_code == 302 and response["Location"] == "/console/"
    assert client.get("/console/").status_code == 200


def _post_action(client, name, report, **data):
    return client.post(reverse(name, args=[report.service_request_id]), {"version": report.version, **data})


@pytest.mark.django_db
@pytest.mark.parametrize("name, data", [
    ("console:assign", {"team": ""}),
    ("console:duplicate", {"original": "OTHER"}),
])
def test_triager_posting_a_supervisor_report_action_gets_403(client, triager, make_report, name, data):
    report = make_report()
    original = make_report(lat=51.50001)
    if name == "console:duplicate":
        data = {"original": original.service_request_id}
    client.force_login(triager)
    assert _post_action(client, name, report, **data).status_code == 403
    report.refresh_from_db()
    assert report.version == 1 and report.status == Report.Status.NEEDS_REVIEW
    assert not report.events.exclude(action="created").exists()


@pytest.mark.django_db
def test_triager_cannot_reopen_but_supervisor_can(client, triager, supervisor, make_report):
    report = make_report(status=Report.Status.FIXED)
    client.force_login(triager)
    assert _post_action(client, "console:status", report, status="triaged").status_code == 403
    client.force_login(supervisor)
    assert _post_action(client, "console:status", report, status="triaged").status_code == 302
    report.refresh_from_db()
    assert report.status == Report.Status.TRIAGED
    assert report.events.filter(action="reopen", from_value="fixed", to_value="triaged").exists()


@pytest.mark.django_db
@pytest.mark.parametrize("name, data", [
    ("console:threshold", {"category": "pothole", "threshold": "0.5"}),
    ("console:retrain", {}),
    ("console:rollback", {}),
])
def test_triager_posting_a_supervisor_model_action_gets_403(client, triager, name, data):
    client.force_login(triager)
    assert client.post(reverse(name), data).status_code == 403


@pytest.mark.django_db
def test_supervisor_can_change_a_threshold(client, supervisor):
    client.force_login(supervisor)
    assert client.post(reverse("console:threshold"), {"category": "pothole", "threshold": "0.6",
                                                      "reason": "too many potholes waiting"}).status_code == 302
    from reports.models import Category
    assert Category.objects.get(slug="pothole").auto_triage_threshold == 0.6


@pytest.mark.django_db
@pytest.mark.parametrize("data, message", [
    ({"category": "pothole", "threshold": "0.6"}, "Say why you override the threshold"),
    ({"category": "pothole", "threshold": "0.6", "reason": "   "}, "Say why you override the threshold"),
    ({"category": "pothole", "threshold": "1.5", "reason": "why not"}, "probabilities between 0 and 1"),
    ({"category": "unicorn", "threshold": "0.6", "reason": "why not"}, "for a known category"),
])
def test_a_threshold_override_without_a_reason_or_out_of_range_is_refused(client, supervisor, data, message):
    from classifier.models import AutoTriageChange
    from reports.models import Category

    client.force_login(supervisor)
    response = client.post(reverse("console:threshold"), data)
    assert response.status_code == 400 and message in response.content.decode()
    assert Category.objects.get(slug="pothole").auto_triage_threshold == 0.85 and not AutoTriageChange.objects.exists()


@pytest.mark.django_db
def test_triager_can_verify_set_status_and_note(client, triager, make_report):
    report = make_report()
    client.force_login(triager)
    assert _post_action(client, "console:verify", report, category="graffiti").status_code == 302
    report.refresh_from_db()
    assert _post_action(client, "console:status", report, status="in_progress").status_code == 302
    assert client.post(reverse("console:note", args=[report.service_request_id]),
                       {"note": "crew booked"}).status_code == 302
    report.refresh_from_db()
    assert (report.status, report.final_category.slug, report.verified_by) == ("in_progress", "graffiti", triager)
    assert list(report.events.values_list("action", flat=True)) == ["created", "correct", "status", "status", "note"]


@pytest.mark.django_db
def test_posts_without_csrf_token_are_refused(triager, make_report):
    report = make_report()
    client = Client(enforce_csrf_checks=True)
    client.force_login(triager)
    response = client.post(reverse("console:verify", args=[report.service_request_id]),
                           {"version": 1, "category": "pothole"})
    assert response.status_code == 403
    report.refresh_from_db()
    assert report.final_category is None


@pytest.mark.django_db
def test_report_view_forms_carry_csrf_tokens(client, supervisor, make_report):
    report = make_report()
    client.force_login(supervisor)
    html = client.get(reverse("console:report", args=[report.service_request_id])).content.decode()
    assert html.count("<form") == html.count('name="csrfmiddlewaretoken"') > 5


@pytest.mark.django_db
def test_original_with_gps_is_served_to_staff_only(client, triager, outsider):
    from reports.services import report_create

    report = report_create(photo=images.jpeg(lat=51.501, lon=-0.141)).report
    url = reverse("console:original", args=[report.service_request_id])
    assert client.get(url).status_code == 302
    client.force_login(outsider)
    assert client.get(url).status_code == 403
    client.force_login(triager)
    response = client.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    assert "no-store" in response["Cache-Control"]
    original = Image.open(io.BytesIO(b"".join(response.streaming_content)))
    assert original.getexif().get_ifd(0x8825)  # GPS still in the original


@pytest.mark.django_db
def test_reporter_contact_in_export_only_for_supervisors(client, triager, supervisor, make_report):
    make_report(reporter_email="jane@example.org")
    client.force_login(triager)
    body = b"".join(client.get(reverse("console:export-csv")).streaming_content).decode()
    assert "jane@example.org" not in body and "reporter_email" not in body
    client.force_login(supervisor)
    body = b"".join(client.get(reverse("console:export-csv")).streaming_content).decode()
    assert "jane@example.org" in body


@pytest.mark.django_db
def test_roles_have_nested_permissions():
    groups = setup_roles()
    perms = {name: {p.codename for p in g.permissions.all()} for name, g in groups.items()}
    assert perms["triager"] < perms["supervisor"] < perms["admin"]
    assert "merge_duplicates" not in perms["triager"] and "merge_duplicates" in perms["supervisor"]
    assert {"change_category", "add_apikey"} <= perms["admin"] - perms["supervisor"]
