import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from reports.models import Report
from tests import images
from tests.conftest import stored_files

pytestmark = pytest.mark.django_db


def upload(data: bytes, name="photo.jpg", content_type="image/jpeg"):
    return SimpleUploadedFile(name, data, content_type=content_type)


def test_create_report_returns_public_fields_only(client, unique_jpeg):
    resp = client.post("/api/v1/reports/", {
        "photo": upload(unique_jpeg(lat=51.5, lon=-0.12)), "category": "pothole",
        "description": "Deep hole", "email": "jane@example.org", "name": "Jane Citizen",
    })
    assert resp.status_code == 201, resp.content
    body = resp.json()
    assert body["status"] == "pending_classification" and body["category"] == "pothole"
    assert (body["latitude"], body["longitude"]) == pytest.approx((51.5, -0.12), abs=1e-6)
    assert body["photo_url"].startswith("http://testserver/media/photos/")
    text = resp.content.decode()
    assert "jane@example.org" not in text and "Jane Citizen" not in text and "originals" not in text
    report = Report.objects.get(service_request_id=body["reference"])
    assert report.reporter_email == "jane@example.org" and report.channel == "api"


def test_read_report_by_reference(client, unique_jpeg):
    ref = client.post("/api/v1/reports/", {"photo": upload(unique_jpeg()), "latitude": "52.2",
                                           "longitude": "0.12"}).json()["reference"]
    body = client.get(f"/api/v1/reports/{ref}/").json()
    assert body["reference"] == ref and body["latitude"] == pytest.approx(52.2)
    assert client.get("/api/v1/reports/NOSUCHREF1/").status_code == 404


@pytest.mark.parametrize("fields,field,message", [
    ({"latitude": "north", "longitude": "0"}, "latitude", "latitude must be a number"),
    ({"latitude": "95", "longitude": "0"}, "latitude", "between -90 and 90"),
    ({}, "location", "Location required"),
    ({"latitude": "51", "longitude": "0", "category": "nope"}, "category", "Unknown category"),
    ({"latitude": "51", "longitude": "0", "email": "not-an-email"}, "email", "valid email"),
])
def test_bad_fields_get_a_400_naming_the_field_and_store_nothing(client, unique_jpeg, media_dirs, fields, field, message):
    resp = client.post("/api/v1/reports/", {"photo": upload(unique_jpeg()), **fields})
    assert resp.status_code == 400
    body = resp.json()
    assert message in " ".join(body["errors"][field]) and message in body["detail"]
    assert Report.objects.count() == 0 and stored_files(media_dirs) == []


def test_missing_photo_is_a_400(client):
    resp = client.post("/api/v1/reports/", {"latitude": "51", "longitude": "0"})
    assert resp.status_code == 400 and "photo" in resp.json()["errors"]


def test_text_file_named_jpg_is_rejected_by_content(client, media_dirs):
    resp = client.post("/api/v1/reports/", {"photo": upload(b"hello, not an image"), "latitude": "51", "longitude": "0"})
    assert resp.status_code == 400 and "JPEG, PNG, WebP or HEIC" in resp.json()["detail"]
    assert stored_files(media_dirs) == []


def test_oversized_body_is_refused_from_content_length(client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    resp = client.post("/api/v1/reports/", {"photo": upload(images.jpeg(size=(1200, 900))), "latitude": "51", "longitude": "0"})
    assert resp.status_code == 413 and "too large" in resp.json()["detail"]
    assert Report.objects.count() == 0


def test_geojson_bbox_and_status_filters(client, unique_jpeg):
    inside = client.post("/api/v1/reports/", {"photo": upload(unique_jpeg()), "latitude": "51.50", "longitude": "-0.12"}).json()
    client.post("/api/v1/reports/", {"photo": upload(unique_jpeg()), "latitude": "53.48", "longitude": "-2.24"})
    resp = client.get("/api/v1/reports/geojson/", {"in_bbox": "-0.2,51.4,0.0,51.6"})
    fc = resp.json()
    assert fc["type"] == "FeatureCollection" and len(fc["features"]) == 1
    feature = fc["features"][0]
    assert feature["properties"]["reference"] == inside["reference"]
    assert feature["geometry"]["coordinates"] == pytest.approx([-0.12, 51.50])  # GeoJSON is lon, lat
    assert client.get("/api/v1/reports/geojson/", {"status": "fixed"}).json()["features"] == []
    assert "reporter" not in resp.content.decode()


def test_rate_limit_per_ip(client, unique_jpeg, settings):
    settings.REPORT_RATE_LIMIT = "2/m"
    codes = [client.post("/api/v1/reports/", {"photo": upload(unique_jpeg()), "latitude": "51", "longitude": "0"},
                         REMOTE_ADDR="10.9.9.9").status_code for _ in range(3)]
    assert codes == [201, 201, 429]


def test_openapi_schema_and_swagger_ui_are_served_without_cdn(client):
    schema = client.get("/api/schema/")
    assert schema.status_code == 200 and b"/api/v1/reports/" in schema.content
    ui = client.get("/api/docs/").content.decode()
    assert "cdn" not in ui.lower() and "/static/drf_spectacular_sidecar/" in ui


def test_healthz_reports_database_and_pending_count(client, unique_jpeg):
    client.post("/api/v1/reports/", {"photo": upload(unique_jpeg()), "latitude": "51", "longitude": "0"})
    body = client.get("/healthz").json()
    assert body["database"] == "ok" and body["pending_classification"] == 1
    assert "active_model" in body


@pytest.mark.parametrize("probability, unknown, shown", [
    (0.95, False, "fly_tipping"),  # confident, a known category: shown as a suggestion
    (0.60, False, None),  # unsure: no suggestion
    (0.95, True, None),  # unlike the training photos: no suggestion, and no unknown flag in public
])
def test_public_suggested_category_is_only_a_confident_known_guess(client, unique_jpeg, probability, unknown, shown):
    from reports.models import Category
    from reports.services import report_create

    report = report_create(photo=unique_jpeg(lat=51.5, lon=-0.12), classify=False).report
    Report.objects.filter(pk=report.pk).update(
        predicted_label="fly_tipping", predicted_category=Category.objects.get(slug="fly_tipping"),
        predicted_probability=probability, predicted_unknown=unknown, unknown_score=4.0 if unknown else None)
    resp = client.get(f"/api/v1/reports/{report.service_request_id}/")
    body = resp.json()
    assert body["suggested_category"] == shown and body["category"] is None
    assert b"unknown" not in resp.content
