"""Imported training examples never reach the staff queue, its counts or the map."""
import io

import pytest
from django.core.management import call_command
from django.urls import reverse

from classifier.models import TrainingExample
from console import selectors
from console.selectors import QueueFilters
from tests import images

pytestmark = pytest.mark.django_db


@pytest.fixture
def one_report_and_examples(tmp_path, make_report):
    report = make_report(status="needs_review")
    folder = images.labelled_folder(tmp_path / "photos", 3)
    (folder / "graffiti" / "gps.jpg").write_bytes(images.jpeg(lat=51.5, lon=-0.12))
    call_command("import_labelled_photos", str(folder), stdout=io.StringIO())
    assert TrainingExample.objects.count() == 13
    return report


def test_queue_and_its_counts_hold_only_reports(client, triager, one_report_and_examples):
    every_status = QueueFilters(status="")
    assert [r.pk for r in selectors.report_queue(filters=every_status).reports] == [one_report_and_examples.pk]
    counts = selectors.queue_counts(every_status)
    assert counts.by_status == {"needs_review": 1} and counts.total == 1
    client.force_login(triager)
    html = client.get(reverse("console:counts"), {"status": ""}).content.decode()
    assert 'id="queue-total" hx-swap-oob="true">· 1 report<' in html
    page = client.get(reverse("console:queue"), {"status": ""}).content.decode()
    assert one_report_and_examples.service_request_id in page


def test_map_data_holds_only_reports(client, triager, one_report_and_examples):
    data = selectors.map_features(QueueFilters(status=""))
    assert [f["properties"]["reference"] for f in data["features"]] == [one_report_and_examples.service_request_id]
    client.force_login(triager)
    body = client.get(reverse("console:map-geojson"), {"status": ""}).json()
    assert [f["properties"]["reference"] for f in body["features"]] == [one_report_and_examples.service_request_id]
