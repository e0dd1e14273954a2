"""The reporter's private page (signed link) and the public timeline: real photos, real PostGIS."""
import io
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core import signing
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone
from PIL import Image

from reports import tokens
from reports.models import Category, Report, ReportEvent, ReportUpdate
from reports.services import record_event, report_create, report_transition
from reports.workflow import By
from tests import images
from tests.conftest import stored_files

pytestmark = pytest.mark.django_db
S = Report.Status


@pytest.fixture
def triager(db):
    from console.roles import setup_roles

    user = get_user_model().objects.create_user(username="tina", password="pw-tina")
    user.groups.add(setup_roles()["triager"])
    return get_user_model().objects.get(pk=user.pk)


@pytest.fixture
def report(unique_jpeg):
    return report_create(photo=unique_jpeg(lat=51.5, lon=-0.12), reporter_email="jo@example.org",
                         description="Deep pothole", classify=False).report


def _url(report, token=None) -> str:
    token = token if token is not None else tokens.reporter_link_token(reference=report.service_request_id)
    return reverse("report-manage", args=[report.service_request_id, token])


def _move(report, *statuses) -> Report:
    """Staff triage (with a category) and then each status, through the one status writer."""
    report.final_category = Category.objects.get(slug="pothole")
    report_transition(report=report, to=S.TRIAGED, fields=["final_category"], actor_label="tina")
    for to in statuses:
        report_transition(report=report, to=to, actor_label="tina")
    return report


def _old_token(reference: str, *, seconds_ago: int) -> str:
    class Then(signing.TimestampSigner):
        def timestamp(self):
            return signing.b62_encode(int(timezone.now().timestamp()) - seconds_ago)
    return Then(salt=tokens.REPORTER_LINK_SALT).sign(reference).split(":", 1)[1]


def test_the_signed_link_opens_the_page_with_the_public_photo_only(client, report):
    response = client.get(_url(report))
    page = response.content.decode()
    assert response.status_code == 200 and response["Cache-Control"] == "private, no-store"
    assert report.photo_public.url in page and report.photo_original.name not in page
    assert "jo@example.org" not in page and "Add an update" in page
    assert "still not fixed" not in page.lower()  # only on a fixed or closed report


@pytest.mark.parametrize("kind", ["forged", "expired", "another report's", "empty-ish"])
def test_a_bad_token_gets_a_clear_403_page_pointing_to_the_public_page(client, report, unique_jpeg, settings,
                                                                      kind):
    other = report_create(photo=unique_jpeg(lat=51.5, lon=-0.12), classify=False).report
    token = {"forged": tokens.reporter_link_token(reference=report.service_request_id)[:-2] + "xx",
             "expired": _old_token(report.service_request_id, seconds_ago=settings.REPORTER_LINK_MAX_AGE + 60),
             "another report's": tokens.reporter_link_token(reference=other.service_request_id),
             "empty-ish": "-"}[kind]
    for response in (client.get(_url(report, token)),
                     client.post(_url(report, token), {"action": "update", "text": "sneaky"})):
        page = response.content.decode()
        assert response.status_code == 403
        assert "not valid or has expired" in page
        assert reverse("report-status", args=[report.service_request_id]) in page
    assert not ReportUpdate.objects.exists()


def test_a_token_younger_than_the_limit_still_works(client, report, settings):
    token = _old_token(report.service_request_id, seconds_ago=settings.REPORTER_LINK_MAX_AGE - 3600)
    assert client.get(_url(report, token)).status_code == 200


def test_an_unknown_reference_is_a_404_not_a_500(client):
    assert client.get(reverse("report-manage", args=["NOSUCHREF2", "abc"])).status_code == 404


def test_a_text_update_is_stored_with_an_event_and_shown_on_the_public_page(client, report):
    response = client.post(_url(report), {"action": "update", "text": "  It is getting bigger.  "})
    assert response.status_code == 302 and response["Location"] == _url(report)
    update = ReportUpdate.objects.get()
    assert (update.report, update.text, update.from_reporter, update.photo_public.name) == (
        report, "It is getting bigger.", True, "")
    event = report.events.get(action=ReportEvent.Action.CITIZEN_UPDATE)
    assert (event.actor_label, event.note, event.to_value) == ("reporter", "It is getting bigger.", str(update.pk))
    assert "your update is on the report" in client.get(_url(report)).content.decode()
    public = client.get(reverse("report-status", args=[report.service_request_id])).content.decode()
    assert "The reporter added an update" in public and "It is getting bigger." in public


def test_an_update_with_a_photo_goes_through_the_photo_pipeline(client, report, media_dirs):
    before = set(stored_files(media_dirs))
    photo = images.jpeg(lat=51.5, lon=-0.12, color=(10, 20, 30))
    response = client.post(_url(report), {"action": "update", "text": "",
                                          "photo": SimpleUploadedFile("new.jpg", photo)})
    assert response.status_code == 302
    update = ReportUpdate.objects.get()
    assert len(set(stored_files(media_dirs)) - before) == 3 and update.photo_format == "JPEG"
    with update.photo_original.open("rb") as f:
        assert f.read() == photo  # kept as sent, private
    public = Image.open(io.BytesIO(update.photo_public.read()))
    assert not public.getexif() and "comment" not in public.info  # GPS, camera and comment stripped
    page = client.get(reverse("report-status", args=[report.service_request_id])).content.decode()
    assert update.photo_thumbnail.url in page and update.photo_public.url in page
    assert update.photo_original.name not in page


@pytest.mark.parametrize("fields, field_error", [
    ({"text": "look", "photo": ("bad.jpg", b"not a photo at all")}, "not a photo we can read"),
    ({"text": "look", "photo": ("anim.gif", images.gif())}, "Unsupported image type (GIF)"),
    ({"text": "   "}, "Write what has changed, or add a photo."),
    ({"text": "bad \x00 byte"}, "control character (U+0000)"),
    ({"text": "x" * 2001}, "the limit is 2,000"),
    ({"text": "ok", "photo": ("cut.jpg", images.jpeg()[:400])}, "damaged or incomplete file"),
])
def test_a_rejected_update_is_a_400_that_leaves_no_row_no_event_and_no_file(client, report, media_dirs, fields,
                                                                            field_error):
    before = set(stored_files(media_dirs))
    data = {"action": "update", "text": fields["text"]}
    if "photo" in fields:
        data["photo"] = SimpleUploadedFile(*fields["photo"])
    response = client.post(_url(report), data)
    assert response.status_code == 400 and field_error in response.content.decode()
    assert not ReportUpdate.objects.exists()
    assert not report.events.filter(action=ReportEvent.Action.CITIZEN_UPDATE).exists()
    assert set(stored_files(media_dirs)) == before


def test_an_unknown_action_is_a_400(client, report):
    response = client.post(_url(report), {"action": "delete"})
    assert response.status_code == 400 and "Choose what to do" in response.content.decode()


@pytest.mark.parametrize("finished", [S.FIXED, S.CLOSED])
def test_still_not_fixed_reopens_a_finished_report_to_review_with_the_reporters_words(client, report, finished):
    _move(report, finished)
    assert "It is still not fixed" in client.get(_url(report)).content.decode()
    response = client.post(_url(report), {"action": "still_not_fixed", "note": "The hole is back."})
    assert response.status_code == 302
    report.refresh_from_db()
    assert report.status == S.NEEDS_REVIEW
    event = report.events.latest("id")
    assert (event.action, event.actor_label, event.from_value, event.to_value, event.note) == (
        ReportEvent.Action.REOPEN, "reporter", finished, S.NEEDS_REVIEW, "The hole is back.")
    public = client.get(reverse("report-status", args=[report.service_request_id])).content.decode()
    assert "The reporter says it is still not fixed" in public and "The hole is back." in public


@pytest.mark.parametrize("moves", [(), (S.IN_PROGRESS,), (S.REJECTED,)])
def test_still_not_fixed_is_refused_unless_fixed_or_closed(client, report, moves):
    if moves:
        _move(report, *moves)
    report.refresh_from_db()
    status, events = report.status, report.events.count()
    page = client.get(_url(report)).content.decode()
    assert "It is still not fixed" not in page
    response = client.post(_url(report), {"action": "still_not_fixed", "note": ""})
    assert response.status_code == 400 and "Only a report marked fixed or closed" in response.content.decode()
    report.refresh_from_db()
    assert (report.status, report.events.count()) == (status, events)


def test_the_public_timeline_is_in_plain_words_and_never_shows_private_notes(client, report):
    _move(report, S.IN_PROGRESS)
    record_event(report=report, actor_label="tina", action=ReportEvent.Action.NOTE, note="Crew booked for Monday.",
                 public=True)
    record_event(report=report, actor_label="tina", action=ReportEvent.Action.NOTE,
                 note="Resident is a known complainer", public=False)
    report_transition(report=report, to=S.FIXED, actor_label="tina", note="contractor invoice 4411")
    page = client.get(reverse("report-status", args=[report.service_request_id])).content.decode()
    for words in ("Reported", "We are looking at it", "Work has started", "Fixed", "Crew booked for Monday."):
        assert words in page
    assert page.index("We are looking at it") < page.index("Work has started") < page.index("Crew booked")
    for private in ("known complainer", "contractor invoice", "tina", "Triaged", "In progress", "jo@example.org"):
        assert private not in page
    manage = client.get(_url(report)).content.decode()
    assert "Crew booked for Monday." in manage and "known complainer" not in manage


def test_the_public_page_shows_the_fix_target_while_open(client, report):
    if not hasattr(Report, "fix_due_at"):
        pytest.skip("response targets are not in this tree")
    due = timezone.now() + timedelta(days=10)
    Report.objects.filter(pk=report.pk).update(fix_due_at=due)
    page = client.get(reverse("report-status", args=[report.service_request_id])).content.decode()
    assert "We aim to fix this by" in page and f"{due:%-d %B %Y}" in page
    _move(Report.objects.get(pk=report.pk), S.FIXED)
    assert "We aim to fix this by" not in client.get(
        reverse("report-status", args=[report.service_request_id])).content.decode()


def test_updates_count_toward_the_submission_limit(client, report, settings):
    settings.REPORT_ATTEMPT_RATE_LIMIT = "2/h"
    for text in ("one", "two"):
        assert client.post(_url(report), {"action": "update", "text": text}).status_code == 302
    response = client.post(_url(report), {"action": "update", "text": "three"})
    assert response.status_code == 429 and int(response["Retry-After"]) > 0
    assert "three" in response.content.decode()  # what was typed is kept
    assert ReportUpdate.objects.count() == 2


def test_staff_see_the_update_and_its_original_photo_only_through_the_console(client, report, triager):
    photo = images.jpeg(lat=51.5, lon=-0.12, color=(99, 20, 30))
    client.post(_url(report), {"action": "update", "text": "Now with a photo",
                               "photo": SimpleUploadedFile("new.jpg", photo)})
    update = ReportUpdate.objects.get()
    original = reverse("console:update-original", args=[report.service_request_id, update.pk])
    assert client.get(original).status_code == 302  # anonymous: to the login page
    client.force_login(triager)
    page = client.get(reverse("console:report", args=[report.service_request_id])).content.decode()
    assert "Reporter's updates" in page and "Now with a photo" in page and original in page
    response = client.get(original)
    assert response.status_code == 200 and b"".join(response.streaming_content) == photo
    assert response["Cache-Control"] == "private, no-store"


def test_a_merged_duplicate_shows_the_originals_timeline_and_takes_no_updates(client, report, unique_jpeg):
    original = report_create(photo=unique_jpeg(lat=51.5, lon=-0.12), classify=False).report
    record_event(report=original, actor_label="tina", action=ReportEvent.Action.NOTE, note="Crew booked.",
                 public=True)
    report.duplicate_of = original
    report_transition(report=report, to=S.DUPLICATE, by=By.MERGE, actor_label="tina", fields=["duplicate_of"])
    assert "Crew booked." in client.get(reverse("report-status", args=[report.service_request_id])).content.decode()
    page = client.get(_url(report)).content.decode()
    assert original.service_request_id in page and 'id="add-update"' not in page
    response = client.post(_url(report), {"action": "update", "text": "still here"})
    assert response.status_code == 400 and "please add your update there" in response.content.decode()
    assert not ReportUpdate.objects.exists()
