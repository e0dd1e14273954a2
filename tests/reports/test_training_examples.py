"""Imported training examples are training data only: no public endpoint shows them."""
import io
import xml.etree.ElementTree as ET

import pytest
from django.core.management import call_command

from classifier.models import TrainingExample
from reports import services
from tests import images

pytestmark = pytest.mark.django_db


@pytest.fixture
def citizen_and_examples(tmp_path, unique_jpeg):
    """One citizen report, and 12 imported examples (4 labels, photos with GPS in the same area)."""
    report = services.report_create(photo=unique_jpeg(), latitude=51.5007, longitude=-0.1246).report
    folder = images.labelled_folder(tmp_path / "photos", 2)
    for i in range(4):  # and some with EXIF GPS: as reports, these would have had a place on the map
        (folder / "pothole" / f"gps-{i}.jpg").write_bytes(images.jpeg(lat=51.5 + i / 1000, lon=-0.12, color=(i * 50, 9, 9)))
    call_command("import_labelled_photos", str(folder), "--source", "local", stdout=io.StringIO())
    assert TrainingExample.objects.count() == 12
    return report


def test_open311_requests_json_lists_only_the_citizen_report(client, citizen_and_examples):
    body = client.get("/open311/v2/requests.json").json()
    assert [r["service_request_id"] for r in body] == [citizen_and_examples.service_request_id]
    assert client.get("/open311/v2/requests.json", {"status": "closed"}).json() == []


def test_open311_requests_xml_lists_only_the_citizen_report(client, citizen_and_examples):
    root = ET.fromstring(client.get("/open311/v2/requests.xml").content)
    assert [r.findtext("service_request_id") for r in root] == [citizen_and_examples.service_request_id]
    assert list(ET.fromstring(client.get("/open311/v2/requests.xml", {"status": "closed"}).content)) == []


def test_rest_reports_endpoint_has_no_list_to_leak_into(client, citizen_and_examples):
    response = client.get("/api/v1/reports/")
    assert response.status_code == 405  # create only; reports are read one at a time by reference
    detail = client.get(f"/api/v1/reports/{citizen_and_examples.service_request_id}/").json()
    assert detail["reference"] == citizen_and_examples.service_request_id


def test_geojson_lists_only_the_citizen_report(client, citizen_and_examples):
    features = client.get("/api/v1/reports/geojson/").json()["features"]
    assert [f["properties"]["reference"] for f in features] == [citizen_and_examples.service_request_id]
    assert client.get("/api/v1/reports/geojson/", {"in_bbox": "-0.2,51.4,0.0,51.6", "status": "closed"}).json()["features"] == []
