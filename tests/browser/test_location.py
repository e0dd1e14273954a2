"""Issue 16, location without a map: the address search as a combobox, the pin moved by the keyboard,
and the location line saying where the location came from and matching what is sent. Location access
is refused (the browser is given no geolocation permission)."""
from __future__ import annotations

import re

import pytest
from django.contrib.gis.geos import Point

from reports.models import Place, Report
from tests import images

pytestmark = pytest.mark.browser


@pytest.fixture
def places(seeded):
    for name, lat, lon in (("High Street", 51.5033, -0.1196), ("Hillside Road", 51.5010, -0.1200),
                           ("Market Square", 51.5050, -0.1250)):
        Place.objects.create(ref=f"street|{name}", name=name, kind="street", locality="Demo",
                             point=Point(lon, lat, srid=4326))


def line(page) -> str:
    return page.locator("#location-status").inner_text()


def send(page) -> Report:
    page.get_by_role("button", name="Send report").click()
    page.wait_for_url(re.compile(r"/report/[A-Z0-9]{10}/thanks/$"))
    return Report.objects.get(service_request_id=re.search(r"/report/([A-Z0-9]{10})/", page.url).group(1))


def test_search_as_you_type_with_the_keyboard_sets_the_location(live_server, page, places, tmp_path, shot):
    photo = tmp_path / "no-gps.jpg"
    photo.write_bytes(images.jpeg(color=(30, 90, 160)))
    page.goto(f"{live_server.url}/report/")
    page.locator("#location-status").filter(has_text="Location not shared").wait_for()
    page.set_input_files("input[name=photo]", str(photo))
    assert "we will read it from your photo when you send it" in line(page)  # not the map's centre
    box = page.get_by_role("combobox", name="Search for a street, place or postcode")
    box.press_sequentially("hgh stret", delay=30)
    option = page.get_by_role("option", name="High Street, Demo")
    option.wait_for()
    assert box.get_attribute("aria-expanded") == "true"
    shot(page, "location-suggestions")
    box.press("ArrowDown")
    assert page.locator("#place-option-0").get_attribute("aria-selected") == "true"
    assert box.get_attribute("aria-activedescendant") == "place-option-0"
    box.press("Enter")
    assert line(page) == "Location: 51.503300, -0.119600 (from the search: High Street, Demo)"
    assert box.get_attribute("aria-expanded") == "false"
    report = send(page)
    assert (report.location_source, report.address) == ("search", "High Street, Demo")
    assert (round(report.location.y, 6), round(report.location.x, 6)) == (51.5033, -0.1196)


def test_refused_location_then_photo_gps_then_the_pin_moved_by_keyboard(live_server, page, places, tmp_path, shot):
    photo = tmp_path / "gps.jpg"
    photo.write_bytes(images.jpeg(lat=51.5033, lon=-0.1196, color=(160, 90, 30)))
    page.goto(f"{live_server.url}/report/")
    page.locator("#location-status").filter(has_text="Location not shared").wait_for()
    assert "51.507400" not in line(page) and "from the pin" not in line(page)
    page.set_input_files("input[name=photo]", str(photo))
    page.locator("#location-status").filter(has_text="from your photo").wait_for()
    assert "51.503300, -0.119600 (from your photo)" in line(page)
    assert page.locator("#id_latitude").input_value() == ""  # the server reads the photo's GPS itself
    page.locator("#map").focus()
    page.keyboard.press("ArrowUp")
    page.keyboard.press("ArrowUp")
    assert line(page) == "Location: 51.503400, -0.119600 (from the pin)"
    assert page.locator("#location-status").get_attribute("aria-live") == "polite"
    page.keyboard.press("Shift+ArrowRight")
    moved = line(page)
    assert moved.startswith("Location: 51.503400, -0.11") and moved.endswith("(from the pin)")
    shot(page, "location-keyboard-pin")
    lat, lon = page.locator("#id_latitude").input_value(), page.locator("#id_longitude").input_value()
    assert moved == f"Location: {lat}, {lon} (from the pin)"  # the line is what is sent
    report = send(page)
    assert report.location_source == "map_pin"
    assert (f"{report.location.y:.6f}", f"{report.location.x:.6f}") == (lat, lon)
    assert report.address == "High Street, Demo"  # reverse lookup: the nearest street


def test_enter_in_the_email_field_sends_the_report_with_javascript(live_server, page, places, tmp_path):
    photo = tmp_path / "no-gps.jpg"
    photo.write_bytes(images.jpeg(color=(40, 90, 160)))
    page.goto(f"{live_server.url}/report/")
    page.locator("#location-status").filter(has_text="Location not shared").wait_for()
    page.set_input_files("input[name=photo]", str(photo))
    box = page.get_by_role("combobox", name="Search for a street, place or postcode")
    box.press_sequentially("hgh stret", delay=30)
    page.get_by_role("option", name="High Street, Demo").click()
    page.get_by_label("Your email").fill("jane@example.org")
    page.get_by_label("Your email").press("Enter")
    page.wait_for_url(re.compile(r"/report/[A-Z0-9]{10}/thanks/$"))
    assert Report.objects.get().address == "High Street, Demo"


def test_find_without_javascript_posts_so_no_token_or_email_reaches_the_url(live_server, browser, places, tmp_path):
    photo = tmp_path / "no-gps.jpg"
    photo.write_bytes(images.jpeg(color=(50, 90, 160)))
    context = browser.new_context(java_script_enabled=False, viewport={"width": 1400, "height": 1000}, locale="en-GB")
    try:
        page = context.new_page()
        page.goto(f"{live_server.url}/report/")
        page.set_input_files("input[name=photo]", str(photo))
        page.get_by_label("Your email").fill("jane@example.org")
        page.get_by_label("Search for a street, place or postcode").fill("hgh stret")
        page.locator("#find-place").click()
        page.locator("#place-matches").wait_for()
        assert "csrf" not in page.url and "jane" not in page.url and "?" not in page.url
        assert page.get_by_label("Your email").input_value() == "jane@example.org"
        assert page.locator("#photo-again-search").is_visible() and Report.objects.count() == 0
        page.get_by_label("High Street, Demo").check()
        page.set_input_files("input[name=photo]", str(photo))
        page.get_by_label("Your email").press("Enter")  # the default button sends the report, not "Find"
        page.wait_for_url(re.compile(r"/report/[A-Z0-9]{10}/thanks/$"))
        assert Report.objects.get().address == "High Street, Demo"
    finally:
        context.close()
