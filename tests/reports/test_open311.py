import json
import re
import xml.etree.ElementTree as ET
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from reports import apikeys, services
from reports.models import ApiKey, Category, Report, ReportEvent
from tests.conftest import stored_files

pytestmark = pytest.mark.django_db

BASE = "/open311/v2/"
LONDON = (51.5007, -0.1246)  # lat, long
REQUEST_FIELDS = ["service_request_id", "status", "status_notes", "service_name", "service_code", "description",
                  "agency_responsible", "service_notice", "requested_datetime", "updated_datetime",
                  "expected_datetime", "address", "address_id", "zipcode", "lat", "long", "media_url"]
SERVICE_FIELDS = ["service_code", "service_name", "description", "metadata", "type", "keywords", "group"]
ISO_WITH_OFFSET = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$")


@pytest.fixture
def api_key():
    return apikeys.api_key_create(name="fixmystreet")[1]


@pytest.fixture
def make_report(unique_jpeg):
    def make(*, lat=LONDON[0], lon=LONDON[1], status=None, age=None, **kwargs):
        report = services.report_create(photo=unique_jpeg(), latitude=lat, longitude=lon, **kwargs).report
        changes = {}
        if status:
            changes["status"] = status
        if age is not None:
            changes["created_at"] = timezone.now() - age
        if changes:
            Report.objects.filter(pk=report.pk).update(**changes)
            report.refresh_from_db()
        return report
    return make


def as_json(response, status=200):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json; charset=utf-8"
    return json.loads(response.content)


def as_xml(response, status=200) -> ET.Element:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "text/xml; charset=utf-8"
    assert response.content.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    return ET.fromstring(response.content)


def children(el: ET.Element) -> list[str]:
    return [c.tag for c in el]


def assert_json_error(response, status, fragment):
    body = as_json(response, status)
    assert [set(e) for e in body] == [{"code", "description"}]
    assert body[0]["code"] == status and fragment in body[0]["description"]


def assert_xml_error(response, status, fragment):
    root = as_xml(response, status)
    assert root.tag == "errors" and children(root) == ["error"]
    assert children(root[0]) == ["code", "description"]
    assert root.find("error/code").text == str(status)
    assert fragment in root.find("error/description").text


def post(client, fmt="json", *, media=None, **fields):
    if media is not None:
        fields["media"] = SimpleUploadedFile("photo.jpg", media, content_type="image/jpeg")
    return client.post(f"{BASE}requests.{fmt}", fields)


def ids(body) -> list[str]:
    return [r["service_request_id"] for r in body]


# Discovery and services -------------------------------------------------------

def test_discovery_json_lists_one_endpoint_with_both_formats(client):
    body = as_json(client.get(f"{BASE}discovery.json"))
    assert set(body) == {"changeset", "contact", "key_service", "endpoints"}
    [endpoint] = body["endpoints"]
    assert endpoint["specification"] == "http://wiki.open311.org/GeoReport_v2"
    assert endpoint["url"] == "http://testserver/open311/v2/"
    assert endpoint["formats"] == ["text/xml", "application/json"]
    assert as_json(client.get(f"{BASE}discovery")) == body


def test_discovery_xml_nests_endpoints_and_formats(client):
    root = as_xml(client.get(f"{BASE}discovery.xml"))
    assert root.tag == "discovery"
    assert children(root) == ["changeset", "contact", "key_service", "endpoints"]
    endpoint = root.find("endpoints/endpoint")
    assert children(endpoint) == ["specification", "url", "changeset", "type", "formats"]
    assert [f.text for f in endpoint.findall("formats/format")] == ["text/xml", "application/json"]


def test_services_json_lists_active_categories_only(client):
    Category.objects.filter(slug="graffiti").update(active=False)
    body = as_json(client.get(f"{BASE}services.json"))
    codes = [s["service_code"] for s in body]
    assert "pothole" in codes and "graffiti" not in codes
    assert len(codes) == Category.objects.filter(active=True).count()
    pothole = next(s for s in body if s["service_code"] == "pothole")
    assert list(pothole) == SERVICE_FIELDS
    assert pothole == {"service_code": "pothole", "service_name": "Pothole",
                       "description": "A hole or broken surface in a road, pavement or cycle lane.",
                       "metadata": False, "type": "realtime", "keywords": "road,hole,surface,crater",
                       "group": "Roads"}


def test_services_xml_has_a_service_element_per_category(client):
    root = as_xml(client.get(f"{BASE}services.xml"))
    assert root.tag == "services"
    assert set(children(root)) == {"service"}
    pothole = next(s for s in root if s.findtext("service_code") == "pothole")
    assert children(pothole) == SERVICE_FIELDS
    assert pothole.findtext("metadata") == "false" and pothole.findtext("type") == "realtime"
    assert pothole.findtext("keywords") == "road,hole,surface,crater"


def test_service_definition_in_both_formats(client):
    assert as_json(client.get(f"{BASE}services/pothole.json")) == {"service_code": "pothole", "attributes": []}
    root = as_xml(client.get(f"{BASE}services/fly_tipping.xml"))
    assert root.tag == "service_definition" and children(root) == ["service_code", "attributes"]
    assert root.findtext("service_code") == "fly_tipping" and len(root.find("attributes")) == 0


def test_unknown_or_inactive_service_definition_is_a_404_error_list(client):
    Category.objects.filter(slug="graffiti").update(active=False)
    assert_json_error(client.get(f"{BASE}services/nope.json"), 404, "No service with service_code 'nope'")
    assert_xml_error(client.get(f"{BASE}services/graffiti.xml"), 404, "No service with service_code 'graffiti'")


@pytest.mark.parametrize("path", ["services.html", "requests.csv", "discovery.yaml", "requests/ABC.txt"])
def test_unknown_format_suffix_is_a_404_error_list(client, path):
    assert_json_error(client.get(BASE + path), 404, "Unknown format")


def test_unknown_resource_is_a_404_error_list(client):
    assert_json_error(client.get(f"{BASE}tokens/1.json"), 404, "No Open311 resource")


def test_wrong_method_is_refused_in_the_requested_format(client):
    response = client.post(f"{BASE}services.xml")
    assert_xml_error(response, 405, "POST")
    assert response["Allow"] == "GET"


# POST requests ------------------------------------------------------------------

def test_post_multipart_with_media_creates_a_report(client, api_key, unique_jpeg, media_dirs):
    response = post(client, media=unique_jpeg(lat=51.5010, lon=-0.1240), api_key=api_key, service_code="pothole",
                    lat="51.5007", long="-0.1246", description=" Deep hole ", address_string="1 Parliament St",
                    first_name="Jane", last_name="Citizen", email="jane@example.org", phone="07700900123",
                    media_url="https://client.example/p/1.jpg")
    [item] = as_json(response, 201)
    assert list(item) == ["service_request_id", "service_notice", "account_id"]
    assert item["account_id"] is None and item["service_notice"]
    r = Report.objects.get(service_request_id=item["service_request_id"])
    assert (r.location.y, r.location.x) == pytest.approx(LONDON)  # lat stays lat
    assert r.location_source == Report.LocationSource.CLIENT
    assert r.channel == Report.Channel.OPEN311 and r.citizen_category.slug == "pothole"
    assert (r.description, r.address) == ("Deep hole", "1 Parliament St")
    assert (r.reporter_name, r.reporter_email) == ("Jane Citizen", "jane@example.org")
    assert r.media_url == "https://client.example/p/1.jpg"
    assert r.events.get().actor_label == "api:fixmystreet"
    public, private = media_dirs  # files really land where the "nothing stored" checks look
    assert (private / r.photo_original.name).is_file() and (public / r.photo_public.name).is_file()


def test_post_xml_response_is_a_service_requests_list(client, api_key, unique_jpeg):
    root = as_xml(post(client, "xml", media=unique_jpeg(lat=51.5, lon=-0.12), api_key=api_key,
                       service_code="graffiti", lat="51.5", long="-0.12"), 201)
    assert root.tag == "service_requests" and children(root) == ["request"]
    assert children(root[0]) == ["service_request_id", "service_notice", "account_id"]
    assert root.find("request/account_id").text is None
    assert Report.objects.filter(service_request_id=root.findtext("request/service_request_id")).exists()


def test_post_with_only_address_string_uses_the_photo_gps(client, api_key, unique_jpeg):
    [item] = as_json(post(client, media=unique_jpeg(lat=-33.8568, lon=151.2153), api_key=api_key,
                          service_code="streetlight", address_string="Bennelong Point"), 201)
    r = Report.objects.get(service_request_id=item["service_request_id"])
    assert r.location_source == Report.LocationSource.EXIF and r.address == "Bennelong Point"
    assert (r.location.y, r.location.x) == pytest.approx((-33.8568, 151.2153), abs=1e-6)


def test_post_form_urlencoded_is_parsed_and_reaches_the_photo_check(client, api_key, media_dirs):
    data = urlencode({"api_key": api_key, "service_code": "pothole", "lat": "51.5", "long": "-0.1",
                      "media_url": "https://client.example/p/1.jpg"})
    response = client.post(f"{BASE}requests.json", data, content_type="application/x-www-form-urlencoded")
    assert_json_error(response, 400, "A photo is required")
    assert Report.objects.count() == 0 and stored_files(media_dirs) == []


@pytest.mark.parametrize("key", [None, "", "not-a-key"])
def test_post_without_a_valid_api_key_is_403_and_nothing_stored(client, unique_jpeg, media_dirs, key):
    fields = {"service_code": "pothole", "lat": "51.5", "long": "-0.1"}
    if key is not None:
        fields["api_key"] = key
    assert_json_error(post(client, media=unique_jpeg(), **fields), 403, "api_key")
    assert_xml_error(post(client, "xml", media=unique_jpeg(), **fields), 403, "api_key")
    assert Report.objects.count() == 0 and stored_files(media_dirs) == []


def test_inactive_api_key_is_refused(client, unique_jpeg):
    key_obj, key = apikeys.api_key_create(name="old")
    key_obj.active = False
    key_obj.save()
    assert_json_error(post(client, media=unique_jpeg(), api_key=key, service_code="pothole",
                           lat="51.5", long="-0.1"), 403, "api_key")


@pytest.mark.parametrize("lat,long,message", [
    ("91", "-0.1", "latitude must be between -90 and 90"),
    ("abc", "-0.1", "latitude must be a number"),
    ("51.5", "-181", "longitude must be between -180 and 180"),
    ("51.5", "", "Give both latitude and longitude"),
])
def test_post_with_bad_coordinates_is_400_and_nothing_stored(client, api_key, unique_jpeg, media_dirs,
                                                             lat, long, message):
    response = post(client, media=unique_jpeg(lat=51.5, lon=-0.1), api_key=api_key, service_code="pothole",
                    lat=lat, long=long)
    assert_json_error(response, 400, message)
    assert Report.objects.count() == 0 and ReportEvent.objects.count() == 0 and stored_files(media_dirs) == []


def test_post_without_service_code_is_400(client, api_key, unique_jpeg, media_dirs):
    assert_xml_error(post(client, "xml", media=unique_jpeg(), api_key=api_key, lat="51.5", long="-0.1"),
                     400, "service_code was not provided")
    assert Report.objects.count() == 0 and stored_files(media_dirs) == []


def test_post_with_unknown_or_inactive_service_code_is_400(client, api_key, unique_jpeg, media_dirs):
    Category.objects.filter(slug="graffiti").update(active=False)
    for code in ["graffiti", "potholes"]:
        assert_json_error(post(client, media=unique_jpeg(), api_key=api_key, service_code=code,
                               lat="51.5", long="-0.1"), 400, f"service_code '{code}' is not an active service")
    assert Report.objects.count() == 0 and stored_files(media_dirs) == []


def test_post_without_any_location_gives_the_service_message(client, api_key, unique_jpeg, media_dirs):
    response = post(client, media=unique_jpeg(), api_key=api_key, service_code="pothole",
                    address_string="Somewhere")
    assert_json_error(response, 400, "Location required")
    assert Report.objects.count() == 0 and stored_files(media_dirs) == []


def test_post_with_a_file_that_is_not_a_photo_is_400(client, api_key, media_dirs):
    response = post(client, media=b"%PDF-1.4 not a photo", api_key=api_key, service_code="pothole",
                    lat="51.5", long="-0.1")
    assert_json_error(response, 400, "not a photo we can read")
    assert stored_files(media_dirs) == []


def test_posting_the_same_photo_again_returns_the_existing_request(client, api_key, unique_jpeg):
    photo = unique_jpeg()
    fields = {"api_key": api_key, "service_code": "pothole", "lat": "51.5", "long": "-0.1"}
    [first] = as_json(post(client, media=photo, **fields), 201)
    [again] = as_json(post(client, media=photo, **fields), 200)
    assert again["service_request_id"] == first["service_request_id"]
    assert "already reported" in again["service_notice"]
    assert Report.objects.count() == 1


def test_post_is_rate_limited_with_a_spec_error(client, api_key, unique_jpeg):
    ApiKey.objects.update(reports_per_hour=1)  # a key is limited by its own limit, not its IP's
    fields = {"api_key": api_key, "service_code": "pothole", "lat": "51.5", "long": "-0.1"}
    as_json(post(client, media=unique_jpeg(), **fields), 201)
    refused = post(client, "xml", media=unique_jpeg(), **fields)
    assert_xml_error(refused, 429, "Too many reports")
    assert int(refused["Retry-After"]) > 0
    assert Report.objects.count() == 1


def test_oversized_upload_is_a_413_error_list(client, api_key, settings, unique_jpeg, media_dirs):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000  # bytes
    response = post(client, media=unique_jpeg(), api_key=api_key, service_code="pothole", lat="51.5", long="-0.1")
    assert response.status_code == 413  # the middleware answers before the view, in JSON
    [error] = json.loads(response.content)
    assert error["code"] == 413 and "too large" in error["description"]
    assert stored_files(media_dirs) == []


# GET a request ----------------------------------------------------------------

def test_get_request_json_has_every_spec_field(client, make_report):
    r = make_report(category="pothole", description="Deep hole", address="1 Parliament St")
    [item] = as_json(client.get(f"{BASE}requests/{r.service_request_id}.json"))
    assert list(item) == REQUEST_FIELDS
    assert item["service_request_id"] == r.service_request_id
    assert (item["status"], item["status_notes"]) == ("open", None)
    assert (item["service_code"], item["service_name"]) == ("pothole", "Pothole")
    assert (item["description"], item["address"]) == ("Deep hole", "1 Parliament St")
    assert (item["lat"], item["long"]) == pytest.approx(LONDON)  # Point(lon, lat) comes out as lat, long
    assert isinstance(item["lat"], float) and isinstance(item["long"], float)
    assert ISO_WITH_OFFSET.match(item["requested_datetime"]) and ISO_WITH_OFFSET.match(item["updated_datetime"])
    assert item["media_url"] == f"http://testserver/media/photos/{r.service_request_id}.jpg"


def test_media_url_is_the_public_derivative_not_the_original(client, make_report, media_dirs):
    r = make_report()
    [item] = as_json(client.get(f"{BASE}requests/{r.service_request_id}.json"))
    public, _private = media_dirs
    path = item["media_url"].removeprefix("http://testserver/media/")
    assert (public / path).is_file() and path == r.photo_public.name
    assert r.photo_original.name not in item["media_url"]


def test_get_request_xml_has_every_spec_field(client, make_report):
    r = make_report(lat=-33.8568, lon=151.2153, category="graffiti")
    root = as_xml(client.get(f"{BASE}requests/{r.service_request_id.lower()}.xml"))
    assert root.tag == "service_requests" and children(root) == ["request"]
    request = root[0]
    assert children(request) == REQUEST_FIELDS
    assert request.findtext("status") == "open" and request.findtext("service_code") == "graffiti"
    assert float(request.findtext("lat")) == pytest.approx(-33.8568)
    assert float(request.findtext("long")) == pytest.approx(151.2153)
    assert request.find("status_notes").text is None and request.find("zipcode").text is None


def test_unknown_request_is_a_404_error_list(client):
    assert_json_error(client.get(f"{BASE}requests/NOPE234567.json"), 404, "No service request")
    assert_xml_error(client.get(f"{BASE}requests/NOPE234567.xml"), 404, "No service request")


def test_status_notes_is_the_latest_public_note(client, make_report):
    r = make_report()
    services.record_event(report=r, actor_label="staff", action="note", note="Inspector booked.", public=True)
    services.record_event(report=r, actor_label="staff", action="note", note="Repaired.", public=True)
    services.record_event(report=r, actor_label="staff", action="note", note="Caller was rude.", public=False)
    response = client.get(f"{BASE}requests/{r.service_request_id}.json")
    [item] = as_json(response)
    assert item["status_notes"] == "Repaired."
    assert b"rude" not in response.content
    [listed] = as_json(client.get(f"{BASE}requests.json"))
    assert listed["status_notes"] == "Repaired."


@pytest.mark.parametrize("status,expected", [
    (Report.Status.PENDING, "open"), (Report.Status.NEEDS_REVIEW, "open"), (Report.Status.IN_PROGRESS, "open"),
    (Report.Status.FIXED, "closed"), (Report.Status.CLOSED, "closed"), (Report.Status.REJECTED, "closed"),
])
def test_internal_statuses_map_to_open_or_closed(client, make_report, status, expected):
    r = make_report(status=status)
    [item] = as_json(client.get(f"{BASE}requests/{r.service_request_id}.json"))
    assert item["status"] == expected


def test_duplicate_is_closed_and_names_the_original(client, make_report):
    original, dup = make_report(), make_report()
    Report.objects.filter(pk=dup.pk).update(status=Report.Status.DUPLICATE, duplicate_of=original)
    [item] = as_json(client.get(f"{BASE}requests/{dup.service_request_id}.json"))
    assert item["status"] == "closed"
    assert item["status_notes"] == f"Duplicate of service request {original.service_request_id}."


def test_category_shown_is_staff_decision_over_citizen_choice(client, make_report):
    r = make_report(category="graffiti")
    Report.objects.filter(pk=r.pk).update(final_category=Category.objects.get(slug="fly_tipping"))
    [item] = as_json(client.get(f"{BASE}requests/{r.service_request_id}.json"))
    assert (item["service_code"], item["service_name"]) == ("fly_tipping", "Fly-tipping")


# GET requests -------------------------------------------------------------------

def test_requests_list_is_newest_first_in_both_formats(client, make_report):
    older, newer = make_report(age=timedelta(days=2)), make_report(age=timedelta(hours=1))
    assert ids(as_json(client.get(f"{BASE}requests.json"))) == [newer.service_request_id, older.service_request_id]
    root = as_xml(client.get(f"{BASE}requests.xml"))
    assert root.tag == "service_requests" and children(root) == ["request", "request"]
    assert children(root[0]) == REQUEST_FIELDS
    assert [r.findtext("service_request_id") for r in root] == [newer.service_request_id, older.service_request_id]


def test_default_window_is_the_last_90_days(client, make_report):
    recent, old = make_report(age=timedelta(days=89)), make_report(age=timedelta(days=91))
    assert ids(as_json(client.get(f"{BASE}requests.json"))) == [recent.service_request_id]
    window = {"start_date": (timezone.now() - timedelta(days=95)).isoformat(),
              "end_date": (timezone.now() - timedelta(days=90)).isoformat()}
    body = as_json(client.get(f"{BASE}requests.json", window))
    assert ids(body) == [old.service_request_id]


def test_start_date_alone_covers_the_90_days_after_it(client, make_report):
    first, _later = make_report(age=timedelta(days=120)), make_report(age=timedelta(days=10))
    start = (timezone.now() - timedelta(days=121)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert ids(as_json(client.get(f"{BASE}requests.json", {"start_date": start}))) == [first.service_request_id]


def test_date_with_an_unencoded_plus_offset_is_understood(client, make_report):
    r = make_report(age=timedelta(days=1))
    start = timezone.localtime(timezone.now() - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    response = client.get(f"{BASE}requests.json?start_date={start}")  # '+' arrives as a space
    assert ids(as_json(response)) == [r.service_request_id]


@pytest.mark.parametrize("params,message", [
    ({"start_date": "yesterday"}, "start_date must be a W3C datetime"),
    ({"end_date": "2026-13-01T00:00:00Z"}, "end_date must be a W3C datetime"),
    ({"start_date": "2026-01-01T00:00:00Z", "end_date": "2026-06-01T00:00:00Z"}, "more than 90 days"),
    ({"start_date": "2026-02-01T00:00:00Z", "end_date": "2026-01-01T00:00:00Z"}, "must not be before"),
    ({"status": "pending"}, "status must be open, closed"),
    ({"page_size": "201"}, "page_size must be a whole number between 1 and 200"),
    ({"page_size": "0"}, "page_size must be"),
    ({"page": "-1"}, "page must be a whole number between 1 and 100000"),
    ({"page": "99999999999999999999"}, "page must be a whole number"),
])
def test_bad_query_parameters_are_400_error_lists(client, params, message):
    assert_json_error(client.get(f"{BASE}requests.json", params), 400, message)
    assert_xml_error(client.get(f"{BASE}requests.xml", params), 400, message)


def test_status_filter(client, make_report):
    open_ = make_report(status=Report.Status.TRIAGED)
    closed = make_report(status=Report.Status.FIXED)
    dup = make_report(status=Report.Status.DUPLICATE)
    assert ids(as_json(client.get(f"{BASE}requests.json", {"status": "open"}))) == [open_.service_request_id]
    assert set(ids(as_json(client.get(f"{BASE}requests.json", {"status": "closed"})))) == {
        closed.service_request_id, dup.service_request_id}
    assert len(as_json(client.get(f"{BASE}requests.json", {"status": "open,closed"}))) == 3


def test_service_code_filter_accepts_a_comma_list(client, make_report):
    pothole, graffiti, _other = (make_report(category="pothole"), make_report(category="graffiti"),
                                 make_report(category="streetlight"))
    body = as_json(client.get(f"{BASE}requests.json", {"service_code": "pothole,graffiti"}))
    assert set(ids(body)) == {pothole.service_request_id, graffiti.service_request_id}


def test_service_request_id_list_overrides_other_filters(client, make_report):
    old = make_report(age=timedelta(days=400), status=Report.Status.FIXED, category="pothole")
    new = make_report(category="graffiti")
    make_report()
    body = as_json(client.get(f"{BASE}requests.json", {
        "service_request_id": f"{old.service_request_id}, {new.service_request_id.lower()}",
        "status": "open", "service_code": "streetlight"}))
    assert ids(body) == [new.service_request_id, old.service_request_id]


def test_page_and_page_size(client, make_report):
    reports = [make_report(age=timedelta(hours=h)) for h in range(5)]  # reports[0] is newest
    newest_first = [r.service_request_id for r in reports]
    pages = [ids(as_json(client.get(f"{BASE}requests.json", {"page_size": 2, "page": p}))) for p in (1, 2, 3, 4)]
    assert pages == [newest_first[0:2], newest_first[2:4], newest_first[4:], []]


def test_reporter_contact_never_appears_in_get_output(client, api_key, unique_jpeg, make_report):
    [item] = as_json(post(client, media=unique_jpeg(), api_key=api_key, service_code="pothole", lat="51.5",
                          long="-0.1", first_name="Zebedee", last_name="Quartermain",
                          email="zq@private.example", phone="07700900999"), 201)
    ref = item["service_request_id"]
    for path in ["requests.json", "requests.xml", f"requests/{ref}.json", f"requests/{ref}.xml"]:
        body = client.get(BASE + path).content
        assert ref.encode() in body
        for secret in [b"Zebedee", b"Quartermain", b"zq@private.example", b"private.example", b"07700900999",
                       b"originals/"]:
            assert secret not in body, (path, secret)


def test_an_unknown_photo_is_not_given_the_models_nearest_class_as_its_service_code(client, make_report):
    r = make_report()
    Report.objects.filter(pk=r.pk).update(predicted_category=Category.objects.get(slug="pothole"),
                                          predicted_label="pothole", predicted_probability=0.9,
                                          predicted_unknown=True, unknown_score=3.0)
    [item] = as_json(client.get(f"{BASE}requests/{r.service_request_id}.json"))
    assert item["service_code"] is None
    assert as_json(client.get(f"{BASE}requests.json", {"service_code": "pothole"})) == []
