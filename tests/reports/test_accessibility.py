"""Issue 16: the GOV.UK error summary and error messages in the form's markup, and the accessibility
statement (the browser side, focus and axe, is tests/browser/test_accessibility.py)."""
from __future__ import annotations

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from django.urls import reverse

from reports import tokens
from reports.accessibility import TESTED_ON
from reports.services import report_create

pytestmark = pytest.mark.django_db


def summary_links(page: str) -> dict[str, str]:
    """The error summary's links: href -> text."""
    match = re.search(r'<div class="error-summary" id="error-summary" role="alert" tabindex="-1"[^>]*>(.*?)</div>',
                      page, re.S)
    assert match, "no error summary"
    return {href: text for href, text in re.findall(r'<a href="([^"]+)">([^<]+)</a>', match.group(1))}


def tag(page: str, element_id: str) -> str:
    match = re.search(rf'<(?:input|select|textarea)[^>]*\bid="{element_id}"[^>]*>', page)
    assert match, f"no input {element_id}"
    return match.group()


def test_the_error_summary_links_each_error_to_its_field(client):
    resp = client.post("/report/", {"email": "not an address", "category": "unicorns"})
    assert resp.status_code == 400
    page = resp.content.decode()
    links = summary_links(page)
    assert set(links) == {"#id_photo", "#id_category", "#id_email"}
    assert links["#id_photo"] == "Choose a photo of the problem."
    assert re.search(r"<title>Error: ", page)
    for field in ("photo", "category", "email"):
        element = tag(page, f"id_{field}")
        assert 'aria-invalid="true"' in element
        described = re.search(r'aria-describedby="([^"]+)"', element).group(1).split()
        assert f"id_{field}_error" in described
        assert f'id="id_{field}_error"' in page  # the message it points to exists
    assert 'aria-invalid' not in tag(page, "id_description")


def test_a_location_error_links_to_the_location_fieldset(client, unique_jpeg):
    photo = SimpleUploadedFile("p.jpg", unique_jpeg(), content_type="image/jpeg")  # no GPS, no pin
    page = client.post("/report/", {"photo": photo}).content.decode()
    links = summary_links(page)
    assert list(links) == ["#where"] and "Location required" in links["#where"]
    assert re.search(r'<fieldset class="field" id="where" aria-describedby="where-error">', page)
    assert 'id="where-error"' in page


def test_a_form_without_errors_has_no_summary_and_no_error_title(client):
    page = client.get("/report/").content.decode()
    assert 'id="error-summary"' not in page and "<title>Error" not in page


def test_every_citizen_page_links_to_the_accessibility_statement(client):
    for url in ("/report/", "/accessibility/"):
        assert 'href="/accessibility/"' in client.get(url).content.decode()
    page = client.get("/accessibility/").content.decode()
    assert "WCAG" in page and TESTED_ON.strftime("%B %Y") in page


def test_the_statement_names_the_contact_address_when_set(client, settings):
    settings.ACCESSIBILITY_CONTACT_EMAIL = "access@example.gov.uk"
    assert 'href="mailto:access@example.gov.uk"' in client.get("/accessibility/").content.decode()


def test_the_reporters_page_lists_its_errors_at_the_top_linked_to_the_fields(client, unique_jpeg):
    report = report_create(photo=unique_jpeg(lat=51.5, lon=-0.12), classify=False).report
    url = reverse("report-manage", args=[report.service_request_id,
                                         tokens.reporter_link_token(reference=report.service_request_id)])
    page = client.post(url, {"action": "update", "text": ""}).content.decode()
    links = summary_links(page)
    assert list(links) == ["#text"]
    assert re.search(r"<title>Error: ", page)
    assert 'aria-invalid="true" aria-describedby="text-error"' in tag(page, "text") and 'id="text-error"' in page
    page = client.post(url, {"action": "nothing"}).content.decode()
    assert "Choose what to do" in re.search(r'id="error-summary".*?</div>', page, re.S).group()
