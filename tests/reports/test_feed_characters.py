"""Feeds stay parseable for rows stored with characters XML 1.0 cannot carry.

Intake refuses such text now, but rows stored before (or by another writer) must
not break the Open311 XML for every client: each XML resource is read back with
two real XML parsers, and each JSON writer with a strict JSON parser.
"""
from __future__ import annotations

import json
import xml.dom.minidom
import xml.etree.ElementTree as ET

import pytest
from django.urls import reverse

from reports import open311, services
from reports.models import Category, Report, ReportEvent

pytestmark = pytest.mark.django_db

BAD = "\x01\x08\x0b\x0c\x0e\x1f\ufffe\uffff"  # what PostgreSQL can store; lone surrogates it cannot
DESCRIPTION = f"Deep{BAD} hole\tby the\nbus stop"
NOTE = f"Crew{BAD} booked"
BASE = "/open311/v2/"


def parse_xml(response) -> ET.Element:
    assert response.status_code < 500 and response["Content-Type"] == "text/xml; charset=utf-8", response.content
    xml.dom.minidom.parseString(response.content)  # a second, independent parser (expat through DOM)
    return ET.fromstring(response.content)


def parse_json(response):
    assert response.status_code < 500, response.content
    return json.loads(response.content.decode("utf-8"), strict=True)


@pytest.fixture
def tainted(unique_jpeg):
    """A report whose description, address and public note were stored with control characters."""
    report = services.report_create(photo=unique_jpeg(), latitude=51.5, longitude=-0.12, category="pothole").report
    Report.objects.filter(pk=report.pk).update(description=DESCRIPTION, address=f"1{BAD} High St")
    ReportEvent.objects.create(report=report, actor_label="staff", action="note", note=NOTE,
                               public=True)
    assert Report.objects.get(pk=report.pk).description == DESCRIPTION  # really stored as such
    return report


def test_requests_xml_parses_and_keeps_the_text_around_the_bad_characters(client, tainted):
    root = parse_xml(client.get(f"{BASE}requests.xml"))
    request = root.find("request")
    assert request.find("description").text == "Deep hole\tby the\nbus stop"
    assert request.find("address").text == "1 High St"
    assert request.find("status_notes").text == "Crew booked"


def test_single_request_xml_parses(client, tainted):
    root = parse_xml(client.get(f"{BASE}requests/{tainted.service_request_id}.xml"))
    assert root.find("request/description").text == "Deep hole\tby the\nbus stop"


def test_open311_json_carries_the_same_text_as_the_xml(client, tainted):
    body = parse_json(client.get(f"{BASE}requests/{tainted.service_request_id}.json"))
    assert body[0]["description"] == "Deep hole\tby the\nbus stop" and body[0]["status_notes"] == "Crew booked"


def test_services_xml_parses_with_a_tainted_category(client):
    Category.objects.filter(slug="pothole").update(name=f"Pot{BAD}hole", description=f"Holes{BAD}")
    root = parse_xml(client.get(f"{BASE}services.xml"))
    names = [s.find("service_name").text for s in root.findall("service")]
    assert "Pothole" in names
    assert "Pothole" in [s["service_name"] for s in parse_json(client.get(f"{BASE}services.json"))]


def test_discovery_xml_parses_with_a_tainted_council_name(client, settings):
    settings.COUNCIL_NAME = f"Demo{BAD} Borough"
    assert parse_xml(client.get(f"{BASE}discovery.xml")).find("contact").text == "Demo Borough"


def test_error_lists_parse_whatever_the_description_holds():
    for fmt in ("xml", "json"):
        response = open311.render_errors(fmt, 400, [f"bad{BAD}\ud800 input"])
        if fmt == "xml":
            assert parse_xml(response).find("error/description").text == "bad input"
        else:
            assert parse_json(response)[0]["description"] == "bad input"


def test_printable_strips_lone_surrogates_too():
    assert open311.printable({"a": ["x\ud800y\udfffz", 3, None]}) == {"a": ["xyz", 3, None]}


def test_rest_json_stays_strict_json(client, tainted):
    body = parse_json(client.get(f"/api/v1/reports/{tainted.service_request_id}/"))
    assert body["description"] == "Deep hole\tby the\nbus stop"
    parse_json(client.get("/api/v1/reports/geojson/"))


def test_console_geojson_export_stays_strict_json(client, tainted, django_user_model):
    from console.roles import setup_roles

    user = django_user_model.objects.create_user(username="tina", password="pw")
    user.groups.add(setup_roles()["triager"])
    client.force_login(user)
    response = client.get(reverse("console:export-geojson"), {"status": ""})
    body = json.loads(b"".join(response.streaming_content).decode("utf-8"), strict=True)
    assert body["features"][0]["properties"]["reference"] == tainted.service_request_id
