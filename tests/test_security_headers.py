"""Issue 13 item 15: a Content-Security-Policy and the usual security headers on every kind of page.
(tests/browser/test_csp.py checks in Chromium that the pages still work under it.)"""
import pytest

pytestmark = pytest.mark.django_db

PAGES = ["/report/", "/console/login/", "/admin/login/", "/api/docs/", "/api/v1/reports/geojson/",
         "/open311/v2/services.xml", "/healthz", "/report/NOSUCHREF/"]


def directives(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    return {d.split()[0]: d.split()[1:] for d in header.split(";") if d.strip()}


@pytest.mark.parametrize("path", PAGES)
def test_every_response_carries_the_policy_and_security_headers(client, path):
    response = client.get(path)
    policy = directives(response)
    assert policy["default-src"] == ["'self'"] and policy["object-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"] and policy["base-uri"] == ["'self'"]
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Frame-Options"] == "DENY"


def test_no_inline_script_style_or_eval_is_allowed():
    from django.conf import settings

    policy = settings.CONTENT_SECURITY_POLICY["DIRECTIVES"]
    for name in ("script-src", "style-src"):
        assert policy[name] == ["'self'"], name


def test_map_tiles_are_the_one_outside_image_source():
    from config.settings.base import tile_origins

    assert tile_origins("https://tile.openstreetmap.org/{z}/{x}/{y}.png") == ["https://tile.openstreetmap.org"]
    assert tile_origins("https://{s}.tiles.example.org:8443/{z}/{x}/{y}.png") == ["https://*.tiles.example.org:8443"]
    assert tile_origins("") == []


def test_swagger_ui_has_no_inline_script_or_style(client):
    page = client.get("/api/docs/").content.decode()
    assert "<style" not in page and "<script>" not in page
    script = client.get("/api/docs/?script=")
    assert script.status_code == 200 and "SwaggerUIBundle" in script.content.decode()


def test_api_answers_browsers_in_json_not_a_page_the_policy_would_break(client):
    response = client.get("/api/v1/reports/geojson/", HTTP_ACCEPT="text/html,application/xhtml+xml,*/*;q=0.8")
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
