"""Issue 13 item 2: submission limits keyed on the real client (through trusted proxies),
accepted reports apart from attempts, API keys by key, staff unlimited, Retry-After on
every 429; login throttling with django-axes."""
import json

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile

from console.roles import setup_roles
from reports import apikeys
from reports.models import ApiKey, Report

pytestmark = pytest.mark.django_db

PROXY = "10.0.0.2"  # the reverse proxy every request arrives from
GOOD = {"latitude": "51.5", "longitude": "-0.1"}


@pytest.fixture(autouse=True)
def behind_a_proxy(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    settings.REPORT_RATE_LIMIT = "1/h"
    settings.REPORT_ATTEMPT_RATE_LIMIT = "5/h"


def api_post(client, photo: bytes, citizen: str, **extra):
    return client.post("/api/v1/reports/", {"photo": SimpleUploadedFile("p.jpg", photo), **GOOD},
                       REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=citizen, **extra)


def open311_post(client, photo: bytes, key: str, fmt="json", remote=PROXY):
    return client.post(f"/open311/v2/requests.{fmt}", {
        "api_key": key, "service_code": "pothole", "lat": "51.5", "long": "-0.1",
        "media": SimpleUploadedFile("p.jpg", photo, content_type="image/jpeg")}, REMOTE_ADDR=remote)


def retry_after(response) -> int:
    assert response.status_code == 429, response.content
    assert 1 <= int(response["Retry-After"]) <= 3600
    return int(response["Retry-After"])


def test_citizens_behind_one_proxy_each_have_their_own_quota(client, unique_jpeg):
    assert api_post(client, unique_jpeg(), "198.51.100.1").status_code == 201
    assert api_post(client, unique_jpeg(), "198.51.100.2").status_code == 201
    refused = api_post(client, unique_jpeg(), "198.51.100.1")
    retry_after(refused)
    assert "Too many reports" in refused.json()["detail"]
    assert Report.objects.count() == 2


def test_a_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored(client, unique_jpeg):
    def direct(fake):
        return client.post("/api/v1/reports/", {"photo": SimpleUploadedFile("p.jpg", unique_jpeg()), **GOOD},
                           REMOTE_ADDR="203.0.113.50", HTTP_X_FORWARDED_FOR=fake)
    assert direct("198.51.100.7").status_code == 201
    retry_after(direct("198.51.100.8"))  # a new fake address does not buy a new quota


def test_bad_requests_do_not_use_up_the_quota_of_accepted_reports(client, unique_jpeg):
    for _ in range(3):
        assert api_post(client, b"not a photo", "198.51.100.1").status_code == 400
    assert api_post(client, unique_jpeg(), "198.51.100.1").status_code == 201


def test_every_attempt_counts_toward_the_higher_abuse_limit(client, unique_jpeg):
    codes = [api_post(client, b"not a photo", "198.51.100.1").status_code for _ in range(5)]
    assert codes == [400] * 5
    refused = api_post(client, unique_jpeg(), "198.51.100.1")
    retry_after(refused)
    assert "Too many attempts" in refused.json()["detail"] and Report.objects.count() == 0
    assert api_post(client, unique_jpeg(), "198.51.100.2").status_code == 201  # someone else is not blocked


def test_open311_key_has_its_own_limit_not_its_ips(client, unique_jpeg):
    obj, key = apikeys.api_key_create(name="fixmystreet")
    ApiKey.objects.filter(pk=obj.pk).update(reports_per_hour=3)
    other = apikeys.api_key_create(name="other-app")[1]
    codes = [open311_post(client, unique_jpeg(), key).status_code for _ in range(3)]
    assert codes == [201, 201, 201]  # more than the IP quota of 1
    refused = open311_post(client, unique_jpeg(), key, fmt="xml")
    retry_after(refused)
    assert b"Too many reports with this api_key" in refused.content
    assert open311_post(client, unique_jpeg(), other).status_code == 201  # same IP, another key


def test_new_keys_get_a_generous_default_limit():
    assert apikeys.api_key_create(name="x")[0].reports_per_hour >= 100


def test_wrong_open311_keys_count_as_attempts_from_their_ip(client, unique_jpeg):
    codes = [open311_post(client, unique_jpeg(), "wrong", remote="203.0.113.60").status_code for _ in range(6)]
    assert codes == [403] * 5 + [429]
    body = json.loads(open311_post(client, unique_jpeg(), "wrong", remote="203.0.113.60").content)
    assert body[0]["code"] == 429


def test_rest_client_with_a_key_is_limited_by_the_key(client, unique_jpeg):
    obj, key = apikeys.api_key_create(name="council-app")
    ApiKey.objects.filter(pk=obj.pk).update(reports_per_hour=2)
    codes = [api_post(client, unique_jpeg(), "198.51.100.1", HTTP_X_API_KEY=key).status_code for _ in range(3)]
    assert codes[:2] == [201, 201]
    retry_after(api_post(client, unique_jpeg(), "198.51.100.1", HTTP_X_API_KEY=key))
    assert api_post(client, unique_jpeg(), "198.51.100.1").status_code == 201  # the IP's own quota is untouched


def test_rest_client_with_a_wrong_key_is_403(client, unique_jpeg):
    response = api_post(client, unique_jpeg(), "198.51.100.1", HTTP_X_API_KEY="wrong")
    assert response.status_code == 403 and "X-Api-Key" in response.json()["detail"]
    assert Report.objects.count() == 0


def test_form_over_the_limit_says_when_to_try_again_and_keeps_the_text(client, unique_jpeg):
    def form_post(text):
        return client.post("/report/", {"photo": SimpleUploadedFile("p.jpg", unique_jpeg()), "description": text,
                                        **GOOD}, REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR="198.51.100.1")
    assert form_post("first").status_code == 302
    refused = form_post("Pothole outside number 12")
    retry_after(refused)
    page = refused.content.decode()
    assert "Please send this one again in about" in page and "Pothole outside number 12" in page


def test_staff_entering_reports_for_residents_are_not_limited(client, unique_jpeg):
    user = get_user_model().objects.create_user(username="tina", password="pw-tina")
    user.groups.add(setup_roles()["triager"])
    client.force_login(user)
    for _ in range(3):
        response = client.post("/report/", {"photo": SimpleUploadedFile("p.jpg", unique_jpeg()), **GOOD},
                               REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR="198.51.100.1")
        assert response.status_code == 302
    assert Report.objects.count() == 3


# Login throttling (django-axes) -------------------------------------------------

@pytest.fixture
def staff_user(db):
    return get_user_model().objects.create_user(username="sam", password="right-password", is_staff=True)


@pytest.mark.parametrize("login_url", ["/console/login/", "/admin/login/"])
def test_repeated_wrong_passwords_lock_the_login_with_a_page_and_retry_after(client, staff_user, settings,
                                                                              login_url):
    settings.AXES_FAILURE_LIMIT = 3

    def attempt(password, citizen="198.51.100.1"):
        return client.post(login_url, {"username": "sam", "password": password},
                           REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=citizen)
    assert [attempt("wrong").status_code for _ in range(2)] == [200, 200]  # the form again, with an error
    locked = attempt("wrong")
    assert retry_after(locked) == int(settings.AXES_COOLOFF_TIME.total_seconds())
    assert "Too many failed log-in attempts" in locked.content.decode()
    assert attempt("right-password").status_code == 429  # even the right password waits
    assert attempt("right-password", citizen="198.51.100.2").status_code == 302  # another client is not locked
