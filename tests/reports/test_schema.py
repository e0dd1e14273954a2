"""The OpenAPI schema says what the API does, checked two ways: by reading it, and by a
bounded schemathesis run against the WSGI app (a fixed seed, a few dozen requests per
operation) whose every response must match the schema and none may be a 500.
Chunked uploads, which the schema cannot describe, get a 411 at every upload endpoint."""
from __future__ import annotations

import http.client
import json
import socket
from urllib.parse import urlsplit

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

pytestmark = pytest.mark.django_db


@pytest.fixture
def openapi(client) -> dict:
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return json.loads(response.content)


def test_photo_is_a_binary_file_part(openapi):
    create = openapi["paths"]["/api/v1/reports/"]["post"]
    ref = create["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert openapi["components"]["schemas"][ref]["properties"]["photo"]["format"] == "binary"


def test_duplicate_of_is_nullable(openapi):
    assert openapi["components"]["schemas"]["ReportPublic"]["properties"]["duplicate_of"]["nullable"] is True


def test_error_responses_are_documented(openapi):
    paths = openapi["paths"]
    assert {"400", "403", "411", "413", "429"} <= set(paths["/api/v1/reports/"]["post"]["responses"])
    assert "404" in paths["/api/v1/reports/{reference}/"]["get"]["responses"]
    assert "400" in paths["/api/v1/reports/geojson/"]["get"]["responses"]
    error = openapi["components"]["schemas"]["Error"]
    assert error["required"] == ["detail"] and set(error["properties"]) == {"detail", "errors"}


def test_in_bbox_is_one_comma_separated_string(openapi):
    [in_bbox] = [p for p in openapi["paths"]["/api/v1/reports/geojson/"]["get"]["parameters"]
                 if p["name"] == "in_bbox"]
    assert in_bbox["schema"] == {"type": "string"} and "min_lon,min_lat,max_lon,max_lat" in in_bbox["description"]


# Chunked uploads ----------------------------------------------------------------------------------

@pytest.mark.parametrize("path,kind", [("/api/v1/reports/", "api"), ("/open311/v2/requests.json", "open311"),
                                       ("/report/", "form")])
def test_chunked_upload_is_411_with_a_clear_message(client, path, kind):
    response = client.generic("POST", path, b"", content_type="multipart/form-data; boundary=x",
                              HTTP_TRANSFER_ENCODING="chunked")
    assert response.status_code == 411
    if kind == "api":
        assert "Content-Length" in response.json()["detail"]
    elif kind == "open311":
        assert json.loads(response.content)[0] == {"code": 411, "description": response.json()[0]["description"]}
        assert "chunked" in response.json()[0]["description"]
    else:
        assert "chunked" in response.content.decode()


@pytest.mark.django_db(transaction=True)
def test_a_real_chunked_request_gets_411_not_no_file_submitted(live_server, media_dirs):
    """Over a socket, as curl -H 'Transfer-Encoding: chunked' starts one: no Content-Length at all.
    The answer comes before any chunk is sent (sending the body first would race the server's close)."""
    url = urlsplit(live_server.url)
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(b"POST /api/v1/reports/ HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n"
                     b"Content-Type: multipart/form-data; boundary=x\r\n\r\n")
        response = http.client.HTTPResponse(sock)
        response.begin()
        detail = json.loads(response.read())["detail"]
    assert response.status == 411 and "Content-Length" in detail
    from reports.models import Report

    assert Report.objects.count() == 0 and not any(p.is_file() for d in media_dirs for p in d.rglob("*"))


# Schemathesis -------------------------------------------------------------------------------------

def _schema():
    """The schema /api/schema/ serves (same generator), its v1 operations called through the WSGI app."""
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.renderers import OpenApiJsonRenderer

    from config.wsgi import application

    raw = json.loads(OpenApiJsonRenderer().render(SchemaGenerator().get_schema(request=None, public=True)))
    loaded = schemathesis.openapi.from_dict(raw).include(path_regex="^/api/v1/")
    loaded.app = application
    return loaded


schema = _schema()


@pytest.fixture
def wsgi_in_test_transaction(db):
    """Requests through the WSGI handler would close the test's connection at each request's end
    (and lose its transaction); Django's own test client disconnects the same signal handler."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@schema.parametrize()
@settings(max_examples=25, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_api_matches_its_schema(case, wsgi_in_test_transaction):
    """Every response is documented (status, content type, body) and none is a 500. The schema
    cannot say that random bytes are not a photo, so a refused schema-valid upload is expected."""
    from schemathesis.checks import load_all_checks
    from schemathesis.specs.openapi.checks import positive_data_acceptance

    load_all_checks()
    case.call_and_validate(excluded_checks=[positive_data_acceptance])


def test_real_reports_match_the_schema(unique_jpeg, wsgi_in_test_transaction):
    """The run above mostly meets 400s and 404s; these are the answers for reports that exist:
    created (201), already reported (200), read back with and without duplicate_of, and mapped."""
    from reports import services
    from reports.models import Report

    create = schema["/api/v1/reports/"]["POST"]
    photo = unique_jpeg(lat=51.5, lon=-0.12)
    body = {"photo": photo, "description": "Deep hole", "category": "pothole"}
    created = create.Case(body=body, media_type="multipart/form-data").call_and_validate()
    again = create.Case(body=body, media_type="multipart/form-data").call_and_validate()
    assert (created.status_code, again.status_code) == (201, 200)

    original = Report.objects.get()
    copy = services.report_create(photo=unique_jpeg(), latitude=51.5, longitude=-0.12).report
    Report.objects.filter(pk=copy.pk).update(status=Report.Status.DUPLICATE, duplicate_of=original)
    read = schema["/api/v1/reports/{reference}/"]["GET"]
    for report, duplicate_of in ((original, None), (copy, original.service_request_id)):
        response = read.Case(path_parameters={"reference": report.service_request_id}).call_and_validate()
        assert response.json()["duplicate_of"] == duplicate_of
    mapped = schema["/api/v1/reports/geojson/"]["GET"].Case(query={"in_bbox": "-180,-90,180,90"}).call_and_validate()
    assert len(mapped.json()["features"]) == 2
