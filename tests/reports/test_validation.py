"""One validation path: the same text rules for the citizen form, REST and Open311 (reports.validation,
applied by reports.services.report_create), so no channel stores what another refuses."""
import xml.etree.ElementTree as ET

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile

from reports import apikeys, services
from reports.models import Report
from reports.validation import clean_text
from tests.conftest import stored_files

pytestmark = pytest.mark.django_db

# Every character XML 1.0 cannot carry, and DEL; tab, newline and carriage return are fine.
FORBIDDEN = ["\x00", "\x01", "\x08", "\x0b", "\x0c", "\x0e", "\x1f", "\x7f", "\ufffe", "\uffff"]


@pytest.mark.parametrize("char", FORBIDDEN)
def test_clean_text_refuses_control_characters_naming_the_field(char):
    with pytest.raises(ValidationError) as err:
        clean_text(f"Sofa{char}dumped", field="description", label="Description", max_length=100)
    message = err.value.message_dict["description"][0]
    assert message.startswith("Description contains a control character") and f"U+{ord(char):04X}" in message


def test_clean_text_keeps_tabs_and_line_breaks_and_strips_the_ends():
    assert clean_text("  one\ttwo\r\nthree\n ", field="d", max_length=20) == "one\ttwo\r\nthree"
    assert clean_text("trailing\x0b", field="d", max_length=20) == "trailing"  # as Django's forms strip it
    assert clean_text(None, field="d", max_length=5) == ""


def test_clean_text_counts_the_length_after_stripping():
    assert clean_text("  abc  ", field="d", max_length=3) == "abc"
    with pytest.raises(ValidationError, match=r"d is too long \(4 characters\); the limit is 3"):
        clean_text("abcd", field="d", max_length=3)


@pytest.fixture
def api_key():
    return apikeys.api_key_create(name="fixmystreet")[1]


def open311_post(client, api_key, photo: bytes, **fields):
    return client.post("/open311/v2/requests.json", {
        "api_key": api_key, "service_code": "pothole", "lat": "51.5", "long": "-0.12",
        "media": SimpleUploadedFile("p.jpg", photo, content_type="image/jpeg"), **fields})


def rest_post(client, photo: bytes, **fields):
    return client.post("/api/v1/reports/", {
        "photo": SimpleUploadedFile("p.jpg", photo, content_type="image/jpeg"), "latitude": "51.5",
        "longitude": "-0.12", **fields})


def test_open311_refuses_a_million_character_description(client, api_key, unique_jpeg, media_dirs):
    resp = open311_post(client, api_key, unique_jpeg(), description="x" * 1_000_000)
    assert resp.status_code == 400, resp.content[:200]
    [error] = resp.json()
    assert error["description"] == "Description is too long (1,000,000 characters); the limit is 2,000."
    assert Report.objects.count() == 0 and stored_files(media_dirs) == []


@pytest.mark.parametrize("fields,message", [
    ({"description": "Hole\x0bhere"}, "Description contains a control character (U+000B)"),
    ({"address_string": "1 High St\x01"}, "Address contains a control character (U+0001)"),
    ({"first_name": "Jane\ufffe"}, "Name contains a control character (U+FFFE)"),
    ({"email": "jane\x7f@example.org"}, "Email contains a control character (U+007F)"),
    ({"media_url": "http://example.org/\x1f.jpg"}, "media_url contains a control character (U+001F)"),
    ({"first_name": "J" * 60, "last_name": "C" * 60}, "Name is too long (121 characters); the limit is 100."),
    ({"email": "not an email"}, "Email: enter a valid email address."),
    ({"media_url": "ftp://example.org/p.jpg"}, "media_url must be an http or https URL."),
])
def test_open311_gets_the_intake_rules_for_every_text_field(client, api_key, unique_jpeg, media_dirs, fields, message):
    resp = open311_post(client, api_key, unique_jpeg(), **fields)
    assert resp.status_code == 400, resp.content
    assert message in " ".join(e["description"] for e in resp.json())
    assert Report.objects.count() == 0 and stored_files(media_dirs) == []


def test_open311_xml_error_for_a_control_character_is_parseable(client, api_key, unique_jpeg):
    resp = client.post("/open311/v2/requests.xml", {
        "api_key": api_key, "service_code": "pothole", "lat": "51.5", "long": "-0.12", "description": "a\x0bb",
        "media": SimpleUploadedFile("p.jpg", unique_jpeg(), content_type="image/jpeg")})
    assert resp.status_code == 400
    root = ET.fromstring(resp.content)  # the message names the character, it does not echo it
    assert "U+000B" in root.find("error/description").text


@pytest.mark.parametrize("fields,field,message", [
    ({"description": "Hole\x0bhere"}, "description", "Description contains a control character (U+000B)"),
    ({"address": "1 High\x1fSt"}, "address", "Address contains a control character (U+001F)"),
    ({"name": "Jane\x01"}, "name", "Name contains a control character (U+0001)"),
])
def test_rest_api_refuses_control_characters_naming_its_own_field(client, unique_jpeg, media_dirs, fields, field,
                                                                   message):
    resp = rest_post(client, unique_jpeg(), **fields)
    assert resp.status_code == 400, resp.content
    body = resp.json()
    assert message in body["errors"][field][0] and message in body["detail"]
    assert Report.objects.count() == 0 and stored_files(media_dirs) == []


def test_every_bad_text_field_is_reported_at_once(unique_jpeg, media_dirs):
    with pytest.raises(ValidationError) as err:
        services.report_create(photo=unique_jpeg(), latitude=51.5, longitude=-0.12, description="d" * 2001,
                               reporter_name="n\x00", reporter_email="e" * 250 + "@x.org", address="a" * 256)
    assert set(err.value.message_dict) == {"description", "reporter_name", "reporter_email", "address"}
    assert Report.objects.count() == 0 and stored_files(media_dirs) == []


def test_a_photo_error_is_keyed_to_the_photo_field(media_dirs):
    with pytest.raises(ValidationError) as err:
        services.report_create(photo=b"hello, not an image", latitude=51.5, longitude=-0.12)
    assert "not a photo we can read" in err.value.message_dict["photo"][0]


def test_text_is_stored_stripped(unique_jpeg):
    report = services.report_create(photo=unique_jpeg(), latitude=51.5, longitude=-0.12,
                                    description="  Deep hole\n", reporter_email=" jane@example.org ").report
    report.refresh_from_db()
    assert (report.description, report.reporter_email) == ("Deep hole", "jane@example.org")
