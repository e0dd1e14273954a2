"""The citizen form on every bad input: a 400 page with the message beside the field it is
about (or at the top for the location), everything typed kept, and nothing stored."""
import html
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from reports.models import Report
from tests import images
from tests.conftest import stored_files

pytestmark = pytest.mark.django_db

TYPED = {"description": "Sofa dumped by the bins", "email": "jane@example.org", "category": "fly_tipping"}


def post(client, photo: bytes, follow=False, **fields):
    data = {**TYPED, "photo": SimpleUploadedFile("p.jpg", photo, content_type="image/jpeg"), **fields}
    return client.post("/report/", data, follow=follow)


def field_errors(page: str, field: str) -> str:
    """The text of the form field's block (label, input, its error lines)."""
    match = re.search(rf'<div class="field( invalid)?">\s*<label for="id_{field}">.*?</div>', page, re.S)
    assert match, f"no block for {field}"
    return html.unescape(match.group())


def top_errors(page: str) -> str:
    match = re.search(r'<div class="error-summary" id="error-summary"[^>]*>(.*?)</div>', page, re.S)
    return html.unescape(match.group(1)) if match else ""


def assert_kept(page: str, **typed):
    """What the citizen typed is still in the form."""
    typed = {**TYPED, **typed}
    assert f">\n{html.escape(typed['description'])}</textarea>" in page
    assert f'value="{typed["email"]}"' in page
    assert f'<option value="{typed["category"]}" selected>' in page


def assert_nothing_stored(media_dirs):
    assert Report.objects.count() == 0 and stored_files(media_dirs) == []


def test_a_file_that_is_not_an_image_is_shown_beside_the_photo_field(client, media_dirs):
    resp = post(client, b"%PDF-1.4 not a photo at all")
    assert resp.status_code == 400
    page = resp.content.decode()
    photo = field_errors(page, "photo")
    assert 'class="field invalid"' in photo and "This file is not a photo we can read" in photo
    assert_kept(page)
    assert_nothing_stored(media_dirs)


def test_a_damaged_photo_is_shown_beside_the_photo_field(client, unique_jpeg, media_dirs):
    data = unique_jpeg(lat=51.5, lon=-0.1)
    page = post(client, data[: len(data) // 2]).content.decode()
    assert "The photo could not be read" in field_errors(page, "photo")
    assert_kept(page)
    assert_nothing_stored(media_dirs)


def test_a_photo_over_the_size_limit_is_shown_beside_the_photo_field(client, settings, media_dirs):
    settings.PHOTO_MAX_BYTES = 20_000
    resp = post(client, images.jpeg(lat=51.5, lon=-0.1, size=(1200, 900)))
    assert resp.status_code == 400
    page = resp.content.decode()
    assert "The photo is too large" in field_errors(page, "photo")
    assert_kept(page)
    assert_nothing_stored(media_dirs)


def test_no_location_is_shown_at_the_top_and_asks_for_the_photo_again(client, unique_jpeg, media_dirs):
    resp = post(client, unique_jpeg())
    assert resp.status_code == 400
    page = resp.content.decode()
    assert "Location required" in top_errors(page)
    assert 'id="photo-again"' in page  # a browser never keeps a chosen file
    assert_kept(page)
    assert_nothing_stored(media_dirs)


def test_a_location_outside_the_council_boundary_is_refused(client, settings, unique_jpeg, media_dirs):
    settings.COUNCIL_BOUNDARY = "POLYGON((-0.5 51.3, 0.3 51.3, 0.3 51.7, -0.5 51.7, -0.5 51.3))"
    resp = post(client, unique_jpeg(), latitude="53.48", longitude="-2.24", location_source="map_pin")
    assert resp.status_code == 400
    page = resp.content.decode()
    assert "outside the area" in top_errors(page)
    assert 'name="latitude" value="53.48"' in page and 'name="longitude" value="-2.24"' in page  # the pin stays
    assert_kept(page)
    assert_nothing_stored(media_dirs)


def test_an_unknown_category_is_shown_beside_the_category(client, unique_jpeg, media_dirs):
    resp = post(client, unique_jpeg(lat=51.5, lon=-0.1), category="unicorns")
    assert resp.status_code == 400
    page = resp.content.decode()
    assert "Select a valid choice" in field_errors(page, "category")
    assert f">\n{TYPED['description']}</textarea>" in page
    assert_nothing_stored(media_dirs)


def test_a_description_over_the_limit_is_shown_beside_it_and_kept(client, unique_jpeg, media_dirs):
    long = "Deep hole. " * 200  # 2,200 characters
    resp = post(client, unique_jpeg(lat=51.5, lon=-0.1), description=long)
    assert resp.status_code == 400
    page = resp.content.decode()
    assert "at most 2000 characters" in field_errors(page, "description")
    assert 'maxlength="2000"' in page
    assert_kept(page, description=long)
    assert_nothing_stored(media_dirs)


@pytest.mark.parametrize("char", ["\x0b", "\x01", "\x7f", "\ufffe"])
def test_a_control_character_in_the_description_is_shown_beside_it(client, unique_jpeg, media_dirs, char):
    resp = post(client, unique_jpeg(lat=51.5, lon=-0.1), description=f"Sofa{char}dumped")
    assert resp.status_code == 400
    page = resp.content.decode()
    assert f"Description contains a control character (U+{ord(char):04X})" in field_errors(page, "description")
    assert 'id="photo-again"' in page
    assert_nothing_stored(media_dirs)


def test_a_control_character_in_the_email_is_shown_beside_it(client, unique_jpeg, media_dirs):
    resp = post(client, unique_jpeg(lat=51.5, lon=-0.1), email="jane\x7f@example.org")
    assert resp.status_code == 400
    email = field_errors(resp.content.decode(), "email")
    assert "Email contains a control character (U+007F)" in email or "Enter a valid email address" in email
    assert_nothing_stored(media_dirs)


def test_a_bad_email_is_shown_beside_it_and_the_rest_kept(client, unique_jpeg, media_dirs):
    resp = post(client, unique_jpeg(lat=51.5, lon=-0.1), email="jane@")
    assert resp.status_code == 400
    page = resp.content.decode()
    assert "Enter a valid email address" in field_errors(page, "email")
    assert_kept(page, email="jane@")
    assert_nothing_stored(media_dirs)


def test_no_photo_at_all_is_shown_beside_the_photo_field(client, media_dirs):
    resp = client.post("/report/", TYPED)
    assert resp.status_code == 400
    page = resp.content.decode()
    assert "Choose a photo of the problem." in field_errors(page, "photo")
    assert_kept(page)
    assert_nothing_stored(media_dirs)


def test_after_an_error_the_corrected_form_goes_through(client, unique_jpeg):
    post(client, b"not a photo")
    resp = post(client, unique_jpeg(lat=51.5, lon=-0.1), follow=True)
    report = Report.objects.get()
    assert resp.redirect_chain[-1][0] == f"/report/{report.service_request_id}/thanks/"
    assert report.description == TYPED["description"] and report.citizen_category.slug == "fly_tipping"
