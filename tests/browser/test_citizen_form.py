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


def test_citizen_confirms_the_guess_in_one_tap_without_a_reload(live_server, page, seeded, tmp_path, shot):
    from django.utils import timezone

    from reports.models import Category

    photo = tmp_path / "sofa.jpg"
    photo.write_bytes(images.jpeg(lat=51.5033, lon=-0.1196, color=(90, 60, 30)))
    page.goto(f"{live_server.url}/report/")
    page.set_input_files("input[name=photo]", str(photo))
    page.get_by_role("button", name="Send report").click()
    page.wait_for_url(re.compile(r"/report/[A-Z0-9]{10}/thanks/$"))
    report = Report.objects.get(service_request_id=re.search(r"/report/([A-Z0-9]{10})/", page.url).group(1))
    # As the classify task leaves a confident prediction (no model is needed to show the page).
    Report.objects.filter(pk=report.pk).update(
        status=Report.Status.TRIAGED, auto_triaged=True, predicted_label="fly_tipping",
        predicted_category=Category.objects.get(slug="fly_tipping"), predicted_probability=0.96,
        predicted_top_k=[["fly_tipping", 0.96], ["graffiti", 0.02]], model_version="demo-1",
        classified_at=timezone.now())
    page.reload()
    assert "It looks like it might be: Fly-tipping. Is that right?" in page.locator("#suggestion").inner_text()
    shot(page, "citizen-thanks-question")
    page.evaluate("window.stillThisPage = true")
    page.get_by_role("button", name="Street light").click()
    page.locator("#suggestion-answered").wait_for()
    assert "we have noted it as Street light" in page.locator("#suggestion").inner_text()
    assert page.evaluate("window.stillThisPage === true")  # answered in place, no reload
    report.refresh_from_db()
    assert (report.citizen_category.slug, report.status, report.citizen_model_disagree) == (
        "streetlight", Report.Status.NEEDS_REVIEW, True)
    assert report.events.filter(action="citizen_label", actor_label="citizen", to_value="streetlight").exists()
