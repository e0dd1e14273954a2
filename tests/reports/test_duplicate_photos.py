"""One report per photo: a unique index decides between concurrent uploads, and whoever
comes second is recorded as also reporting it (ReportSupporter) and told the reference."""
import gc
import importlib
import threading

import pytest
import requests
from django.apps import apps
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import IntegrityError, connection, transaction

from reports import apikeys, services
from reports.models import Report, ReportEvent, ReportSupporter
from tests.conftest import stored_files

pytestmark = pytest.mark.django_db

CLIENTS = 8


def _post_all_at_once(urls_and_fields: list[tuple[str, dict]], photo: bytes) -> list[requests.Response]:
    """One thread per request, all released together by a barrier."""
    barrier = threading.Barrier(len(urls_and_fields))
    responses: list = [None] * len(urls_and_fields)

    def send(i: int, url: str, fields: dict, file_field: str) -> None:
        barrier.wait()
        responses[i] = requests.post(url, data=fields, files={file_field: ("p.jpg", photo, "image/jpeg")}, timeout=60)

    threads = [threading.Thread(target=send, args=(i, url, fields, fields.pop("_file")))
               for i, (url, fields) in enumerate(urls_and_fields)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return responses


@pytest.mark.django_db(transaction=True)
def test_eight_clients_posting_the_same_photo_at_once_make_exactly_one_report(live_server, unique_jpeg, media_dirs,
                                                                              settings):
    settings.RATELIMIT_ENABLE = False  # eight posts from one loopback address are the point here
    key = apikeys.api_key_create(name="fixmystreet")[1]
    photo = unique_jpeg(lat=51.5, lon=-0.12)
    rest = [(f"{live_server.url}/api/v1/reports/", {"_file": "photo", "email": f"r{i}@example.org"})
            for i in range(CLIENTS // 2)]
    open311 = [(f"{live_server.url}/open311/v2/requests.json",
                {"_file": "media", "api_key": key, "service_code": "pothole", "email": f"o{i}@example.org"})
               for i in range(CLIENTS // 2)]
    responses = _post_all_at_once(rest + open311, photo)

    assert Report.objects.count() == 1
    report = Report.objects.get()
    assert sorted(r.status_code for r in responses) == [200] * (CLIENTS - 1) + [201]
    rest_bodies = [r.json() for r in responses[:CLIENTS // 2]]
    open311_bodies = [r.json()[0] for r in responses[CLIENTS // 2:]]
    assert {b["reference"] for b in rest_bodies} | {b["service_request_id"] for b in open311_bodies} == {
        report.service_request_id}
    for r, body in zip(responses, rest_bodies + open311_bodies):
        notice = body.get("notice") or body["service_notice"]
        if r.status_code == 200:
            assert f"already reported as {report.service_request_id}" in notice
    # Everyone but the first is recorded, with their contact details, privately.
    supporters = ReportSupporter.objects.filter(report=report)
    emails = {*(f"r{i}@example.org" for i in range(CLIENTS // 2)), *(f"o{i}@example.org" for i in range(CLIENTS // 2))}
    assert supporters.count() == CLIENTS - 1
    assert {s.reporter_email for s in supporters} | {report.reporter_email} == emails
    assert ReportEvent.objects.filter(report=report, action="also_reported").count() == CLIENTS - 1
    assert len(stored_files(media_dirs)) == 3  # the losers' files are gone


def test_the_database_refuses_a_second_original_of_the_same_photo(unique_jpeg):
    first = services.report_create(photo=unique_jpeg(lat=51.5, lon=-0.1), classify=False).report
    second = services.report_create(photo=unique_jpeg(lat=51.5, lon=-0.1), classify=False).report
    with pytest.raises(IntegrityError), transaction.atomic():
        Report.objects.filter(pk=second.pk).update(photo_sha256=first.photo_sha256)
    # A report staff have merged into another is no original: it may share the photo.
    Report.objects.filter(pk=second.pk).update(photo_sha256=first.photo_sha256, duplicate_of=first,
                                               status=Report.Status.DUPLICATE)


def test_a_second_sender_is_recorded_as_also_reporting_it(unique_jpeg):
    data = unique_jpeg(lat=51.5, lon=-0.1)
    first = services.report_create(photo=data, reporter_email="jane@example.org", classify=False)
    second = services.report_create(photo=data, reporter_name="Sam", reporter_email="sam@example.org",
                                    channel=Report.Channel.API, actor_label="api")
    assert first.created and not second.created and second.report == first.report
    supporter = second.supporter
    assert (supporter.report, supporter.channel, supporter.reporter_name, supporter.reporter_email) == (
        first.report, "api", "Sam", "sam@example.org")
    event = ReportEvent.objects.get(report=first.report, action="also_reported")
    assert event.actor_label == "api" and not event.public and "sam@example.org" not in event.note
    assert Report.objects.count() == 1


def test_the_same_sender_twice_is_recorded_once(unique_jpeg):
    data = unique_jpeg(lat=51.5, lon=-0.1)
    services.report_create(photo=data, reporter_email="jane@example.org", classify=False)
    assert services.report_create(photo=data, reporter_email="JANE@example.org").supporter is None  # the reporter
    services.report_create(photo=data, reporter_email="sam@example.org")
    assert services.report_create(photo=data, reporter_email="sam@example.org").supporter is None
    assert ReportSupporter.objects.count() == 1


def test_a_photo_of_a_merged_duplicate_is_counted_on_its_original(unique_jpeg):
    original = services.report_create(photo=unique_jpeg(lat=51.5, lon=-0.1), classify=False).report
    data = unique_jpeg(lat=51.5, lon=-0.1)
    copy = services.report_create(photo=data, classify=False).report
    Report.objects.filter(pk=copy.pk).update(duplicate_of=original, status=Report.Status.DUPLICATE)
    intake = services.report_create(photo=data, reporter_email="sam@example.org")
    assert not intake.created and intake.report == original and intake.supporter.report == original


def test_rest_tells_the_second_sender_it_was_already_reported(client, unique_jpeg):
    data = unique_jpeg(lat=51.5, lon=-0.1)
    first = client.post("/api/v1/reports/", {"photo": SimpleUploadedFile("p.jpg", data)})
    again = client.post("/api/v1/reports/", {"photo": SimpleUploadedFile("p.jpg", data), "email": "sam@example.org"})
    assert (first.status_code, again.status_code) == (201, 200)
    ref = first.json()["reference"]
    assert first.json()["already_reported"] is False
    body = again.json()
    assert body["already_reported"] is True and body["reference"] == ref
    assert body["notice"] == f"This photo was already reported as {ref}; we have noted that you reported it too."
    assert "sam@example.org" not in again.content.decode()


def test_open311_tells_the_second_sender_it_was_already_reported(client, unique_jpeg):
    key = apikeys.api_key_create(name="fixmystreet")[1]
    data = unique_jpeg(lat=51.5, lon=-0.1)

    def post():
        return client.post("/open311/v2/requests.json", {"api_key": key, "service_code": "pothole",
                                                          "media": SimpleUploadedFile("p.jpg", data)})
    first, again = post(), post()
    assert (first.status_code, again.status_code) == (201, 200)
    ref = first.json()[0]["service_request_id"]
    assert again.json()[0]["service_notice"] == (f"This photo was already reported as {ref}; "
                                                 "we have noted that you reported it too.")


def test_the_form_thanks_the_second_citizen_with_the_existing_reference(client, unique_jpeg):
    from django.test import Client

    data = unique_jpeg(lat=51.5, lon=-0.1)
    client.post("/report/", {"photo": SimpleUploadedFile("p.jpg", data)})
    report = Report.objects.get()
    other = Client()
    resp = other.post("/report/", {"photo": SimpleUploadedFile("p.jpg", data), "email": "sam@example.org"},
                      follow=True)
    page = resp.content.decode()
    assert resp.redirect_chain[-1][0] == f"/report/{report.service_request_id}/thanks/"
    assert "This photo was already reported as" in page and report.service_request_id in page
    assert ReportSupporter.objects.get().reporter_email == "sam@example.org"
    # The first citizen's own page says nothing of the kind.
    assert "already reported" not in client.get(f"/report/{report.service_request_id}/thanks/").content.decode()


# Migration 0005: copies the race made before the index existed are merged -----------------------

def test_migration_merges_existing_copies_into_the_earliest_non_import_report(unique_jpeg):
    migration = importlib.import_module("reports.migrations.0005_one_report_per_photo_and_supporters")
    with connection.cursor() as cursor:  # the state before the migration (rolled back with the test)
        cursor.execute("DROP INDEX report_one_original_per_photo")
    reports = [services.report_create(photo=unique_jpeg(lat=51.5, lon=-0.1), classify=False,
                                      channel=channel).report for channel in ("import", "web", "api")]
    imported, earliest, later = reports
    Report.objects.filter(pk__in=[r.pk for r in reports]).update(photo_sha256=earliest.photo_sha256)
    Report.objects.filter(pk=later.pk).update(status=Report.Status.TRIAGED)

    assert migration.merge_existing_copies(apps, None) == 2
    for copy in (imported, later):
        copy.refresh_from_db()
        assert (copy.status, copy.duplicate_of) == (Report.Status.DUPLICATE, earliest)
    assert list(ReportEvent.objects.filter(report=later).values_list("action", "from_value", "to_value"))[-2:] == [
        ("duplicate", "", earliest.service_request_id), ("status", "triaged", "duplicate")]
    with connection.cursor() as cursor:  # the index can be built now, as the migration's next steps do
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("CREATE UNIQUE INDEX report_one_original_per_photo ON reports_report (photo_sha256) "
                       "WHERE duplicate_of_id IS NULL")


# Files follow the caller's transaction (issue 14.7) --------------------------------------------

def test_files_are_removed_when_the_callers_transaction_rolls_back_later(unique_jpeg, media_dirs):
    with pytest.raises(RuntimeError), transaction.atomic():
        services.report_create(photo=unique_jpeg(lat=51.5, lon=-0.1), classify=False)
        assert len(stored_files(media_dirs)) == 3
        raise RuntimeError("the caller's next step failed")
    assert Report.objects.count() == 0 and stored_files(media_dirs) == []


@pytest.mark.django_db(transaction=True)
def test_files_are_removed_when_the_outermost_transaction_rolls_back(unique_jpeg, media_dirs):
    with pytest.raises(RuntimeError), transaction.atomic():
        with transaction.atomic():
            services.report_create(photo=unique_jpeg(lat=51.5, lon=-0.1), classify=False)
        raise RuntimeError("the caller's next step failed")
    assert Report.objects.count() == 0 and stored_files(media_dirs) == []


@pytest.mark.django_db(transaction=True)
def test_files_of_a_committed_report_stay(unique_jpeg, media_dirs):
    with transaction.atomic():
        report = services.report_create(photo=unique_jpeg(lat=51.5, lon=-0.1), classify=False).report
    gc.collect()
    assert len(stored_files(media_dirs)) == 3
    assert Report.objects.get().photo_public.name == report.photo_public.name
