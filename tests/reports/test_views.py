import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from reports.models import Report
from tests.conftest import stored_files

pytestmark = pytest.mark.django_db


def test_form_page_is_accessible_and_csrf_protected(client):
    page = client.get("/report/").content.decode()
    assert 'name="csrfmiddlewaretoken"' in page
    assert '<label for="id_photo">' in page and 'accept="image/jpeg' in page
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    assert strict.post("/report/", {}).status_code == 403


def test_form_post_without_javascript_uses_exif_gps_and_shows_thanks(client, unique_jpeg):
    resp = client.post("/report/", {"photo": SimpleUploadedFile("p.jpg", unique_jpeg(lat=51.5, lon=-0.1)),
                                    "description": "Sofa dumped", "email": "a@b.org"}, follow=True)
    report = Report.objects.get()
    assert resp.redirect_chain[-1][0] == f"/report/{report.service_request_id}/thanks/"
    page = resp.content.decode()
    assert report.service_request_id in page and "a@b.org" not in page
    assert report.location_source == "exif" and report.reporter_email == "a@b.org"


def test_form_error_is_shown_next_to_the_field_and_nothing_stored(client, unique_jpeg, media_dirs):
    resp = client.post("/report/", {"photo": SimpleUploadedFile("p.jpg", unique_jpeg()), "email": "nope"})
    assert resp.status_code == 400
    page = resp.content.decode()
    assert "Enter a valid email address" in page
    resp = client.post("/report/", {"photo": SimpleUploadedFile("p.jpg", unique_jpeg())})
    assert resp.status_code == 400 and "Location required" in resp.content.decode()
    assert Report.objects.count() == 0 and stored_files(media_dirs) == []


def test_status_page_shows_public_photo_not_original_or_contact(client, unique_jpeg):
    client.post("/report/", {"photo": SimpleUploadedFile("p.jpg", unique_jpeg(lat=51.5, lon=-0.1)),
                             "email": "secret@example.org"})
    report = Report.objects.get()
    page = client.get(f"/report/{report.service_request_id}/").content.decode()
    assert report.photo_public.url in page
    assert report.photo_original.name not in page and "secret@example.org" not in page
    assert "Pending classification" in page


def test_bad_coordinates_from_the_hidden_fields_are_shown_on_the_page(client, unique_jpeg, media_dirs):
    resp = client.post("/report/", {"photo": SimpleUploadedFile("p.jpg", unique_jpeg()),
                                    "latitude": "95", "longitude": "0"})
    assert resp.status_code == 400
    assert "latitude must be between -90 and 90" in resp.content.decode()
    assert Report.objects.count() == 0 and stored_files(media_dirs) == []
