"""Issue 13 item 10: a database outage or an unwritable photo storage at upload is a 503 with
Retry-After (JSON for the API and Open311, a page for the form), never a 500, and leaves
nothing half-written. Real faults: the connection pointed at a closed port, a read-only folder."""
import contextlib
import json
import os
import socket
import subprocess
import xml.etree.ElementTree as ET

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection

from reports import apikeys
from reports.health import storage_health
from reports.models import Report
from tests.conftest import stored_files

GOOD = {"latitude": "51.5", "longitude": "-0.1"}


@pytest.fixture
def database_down(transactional_db):
    """The next connection goes to a port where nothing listens (bound, never listening: refused)."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        original = connection.settings_dict["PORT"], connection.settings_dict["HOST"]
        connection.close()
        connection.settings_dict.update(PORT=str(port), HOST="127.0.0.1")
        try:
            yield
        finally:
            connection.close()
            connection.settings_dict["PORT"], connection.settings_dict["HOST"] = original


@contextlib.contextmanager
def read_only(path):
    """A folder nobody may write to: chattr +i as root (who ignores permissions), else chmod."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", str(path)], check=True)
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(path)], check=True)
    else:
        path.chmod(0o555)
        try:
            yield
        finally:
            path.chmod(0o755)


def photo(data: bytes):
    return SimpleUploadedFile("p.jpg", data, content_type="image/jpeg")


def assert_503(response):
    assert response.status_code == 503, response.content
    assert int(response["Retry-After"]) > 0


def test_api_upload_with_the_database_down_is_a_503_json(client, unique_jpeg, database_down, media_dirs):
    response = client.post("/api/v1/reports/", {"photo": photo(unique_jpeg()), **GOOD})
    assert_503(response)
    assert response["Content-Type"] == "application/json"
    assert "temporarily unavailable" in response.json()["detail"] and response.json()["cause"] == "database"
    assert stored_files(media_dirs) == []


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_open311_upload_with_the_database_down_is_a_503_error_list(client, unique_jpeg, fmt, transactional_db,
                                                                     request):
    key = apikeys.api_key_create(name="fixmystreet")[1]
    request.getfixturevalue("database_down")
    response = client.post(f"/open311/v2/requests.{fmt}", {
        "api_key": key, "service_code": "pothole", "lat": "51.5", "long": "-0.1", "media": photo(unique_jpeg())})
    assert_503(response)
    if fmt == "json":
        [error] = json.loads(response.content)
        assert error["code"] == 503 and "temporarily unavailable" in error["description"]
    else:
        root = ET.fromstring(response.content)
        assert root.tag == "errors" and root.findtext("error/code") == "503"


def test_form_with_the_database_down_shows_a_friendly_page(client, unique_jpeg, database_down, media_dirs):
    response = client.post("/report/", {"photo": photo(unique_jpeg()), "description": "Hole", **GOOD})
    assert_503(response)
    page = response.content.decode()
    assert "nothing you sent has been saved" in page and "Traceback" not in page
    assert stored_files(media_dirs) == []


@pytest.mark.parametrize("storage", ["public", "private"])
def test_unwritable_photo_storage_is_a_503_and_leaves_no_row_and_no_file(client, unique_jpeg, media_dirs,
                                                                           storage, db):
    folder = media_dirs[0 if storage == "public" else 1]
    with read_only(folder):
        api = client.post("/api/v1/reports/", {"photo": photo(unique_jpeg()), **GOOD})
        form = client.post("/report/", {"photo": photo(unique_jpeg()), **GOOD})
    assert_503(api)
    assert api.json()["cause"] == "storage"
    assert_503(form)
    assert Report.objects.count() == 0 and stored_files(media_dirs) == []


def test_storage_health_says_which_storage_is_not_writable(media_dirs, db):
    assert storage_health() == {"storage": "ok"}
    with read_only(media_dirs[1]):
        health = storage_health()
    assert health["storage"].startswith("error") and "private" in health["storage"]
    assert stored_files(media_dirs) == []


def test_healthz_says_the_photo_storage_is_not_writable(client, media_dirs, db):
    with read_only(media_dirs[0]):
        body = client.get("/healthz").json()
    assert body["storage"].startswith("error: not writable: public") and body["status"] != "ok"
