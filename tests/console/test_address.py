"""Staff see the address (the nearest gazetteer street, filled at intake) beside the coordinates."""
from __future__ import annotations

import html

import pytest
from django.contrib.gis.geos import Point
from django.urls import reverse

from reports.models import Place

pytestmark = pytest.mark.django_db


def test_the_queue_and_the_report_page_show_the_address_reverse_lookup_filled(client, triager, make_report):
    Place.objects.create(ref="street|mill lane|demo", name="Mill Lane", kind="street", locality="Demo",
                         point=Point(-0.1201, 51.5001, srid=4326))
    report = make_report(lat=51.5, lon=-0.12)
    assert report.address == "Mill Lane, Demo"
    client.force_login(triager)
    queue = client.get(reverse("console:queue") + "?status=needs_review").content.decode()
    assert '<small class="address">Mill Lane, Demo</small>' in queue
    page = html.unescape(client.get(reverse("console:report", args=[report.service_request_id])).content.decode())
    assert "Mill Lane, Demo" in page and "51.500000, -0.120000" in page
