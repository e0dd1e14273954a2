"""Issue 2: a citizen sends a geotagged photo through the form and gets a reference."""
from __future__ import annotations

import re

import pytest

from reports.models import Report
from tests import images

pytestmark = pytest.mark.browser


def test_citizen_form_submits_a_photo_and_shows_the_reference(live_server, page, seeded, tmp_path, shot):
    photo = tmp_path / "pothole.jpg"
    photo.write_bytes(images.jpeg(lat=51.5033, lon=-0.1196))
    page.goto(f"{live_server.url}/report/")
    page.set_input_files("input[name=photo]", str(photo))
    page.select_option("select[name=category]", "pothole")
    page.fill("textarea[name=description]", "Deep hole by the bus stop")
    page.get_by_role("button", name="Send report").click()
    page.wait_for_url(re.compile(r"/report/[A-Z0-9]{10}/thanks/$"))
    reference = re.search(r"/report/([A-Z0-9]{10})/thanks/", page.url).group(1)
    assert reference in page.content()
    shot(page, "citizen-thanks")
    report = Report.objects.get(service_request_id=reference)
    assert report.location_source == Report.LocationSource.EXIF
    assert (round(report.location.y, 4), round(report.location.x, 4)) == (51.5033, -0.1196)
    assert report.citizen_category.slug == "pothole"
