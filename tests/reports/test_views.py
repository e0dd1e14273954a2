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
    assert "Waiting for our team to look at it" in page and "Pending classification" not in page  # plain words


def test_bad_coordinates_from_the_hidden_fields_are_shown_on_the_page(client, unique_jpeg, media_dirs):
    resp = client.post("/report/", {"photo": SimpleUploadedFile("p.jpg", unique_jpeg()),
                                    "latitude": "95", "longitude": "0"})
    assert resp.status_code == 400
    assert "latitude must be between -90 and 90" in resp.content.decode()
    assert Report.objects.count() == 0 and stored_files(media_dirs) == []


# The thank-you page: honest words for the model's guess, and the citizen's one-tap answer ----

def _submit(client, unique_jpeg) -> Report:
    """Through the real form, so the submitter's session holds their token."""
    client.post("/report/", {"photo": SimpleUploadedFile("p.jpg", unique_jpeg(lat=51.5, lon=-0.1))})
    return Report.objects.latest("created_at")


def _classify(report, predicted="fly_tipping", probability=0.95, **fields) -> Report:
    """Set the classifier's fields as the classify task would (no model is needed for the page)."""
    from django.utils import timezone

    from reports.models import Category

    category = Category.objects.filter(slug=predicted).first()
    threshold = category.auto_triage_threshold if category else 0.85
    defaults = dict(status=Report.Status.TRIAGED if category and probability >= threshold else Report.Status.NEEDS_REVIEW,
                    auto_triaged=bool(category and probability >= threshold))
    Report.objects.filter(pk=report.pk).update(**{
        **defaults, "predicted_label": predicted, "predicted_category": category, "predicted_probability": probability,
        "predicted_top_k": [[predicted, probability], ["graffiti", 0.01]], "model_version": "v1",
        "classified_at": timezone.now(), **fields})
    return Report.objects.get(pk=report.pk)


def _thanks(client, report) -> str:
    return client.get(f"/report/{report.service_request_id}/thanks/").content.decode()


def _token(client, report) -> str:
    from reports.tokens import SESSION_KEY

    return client.session[SESSION_KEY][report.service_request_id]


def test_thanks_page_says_what_a_confident_guess_might_be_and_offers_one_tap_answers(client, unique_jpeg):
    report = _classify(_submit(client, unique_jpeg), "fly_tipping", 0.95)
    page = _thanks(client, report)
    assert "It looks like it might be: <strong>Fly-tipping</strong>. Is that right?" in page
    assert 'name="category" value="fly_tipping"' in page and ">Yes</button>" in page
    assert 'value="pothole"' in page and 'value="streetlight"' in page  # every other active category
    assert "Looks like:" not in page


@pytest.mark.parametrize("predicted, probability, fields", [
    ("fly_tipping", 0.84, {}),  # below the category's 0.85 auto-triage threshold: unsure
    ("fly_tipping", 0.99, {"predicted_unknown": True, "unknown_score": 3.2}),  # unlike the training photos
    ("no_issue", 0.99, {}),  # never "it might be nothing"
])
def test_thanks_page_says_nothing_about_a_category_when_unsure_unknown_or_no_issue(
        client, unique_jpeg, predicted, probability, fields):
    report = _classify(_submit(client, unique_jpeg), predicted, probability, **fields)
    page = _thanks(client, report)
    assert "might be" not in page and "Fly-tipping" not in page and 'name="category"' not in page
    assert "Our team will take a look." in page


def test_thanks_page_while_still_classifying_says_nothing_and_polls(client, unique_jpeg):
    report = _submit(client, unique_jpeg)
    Report.objects.filter(pk=report.pk).update(status=Report.Status.PENDING)
    page = _thanks(client, report)
    assert "Working out what this is" in page and "might be" not in page
    assert f'data-poll="/report/{report.service_request_id}/suggestion/"' in page
    _classify(report, "graffiti", 0.97)
    fragment = client.get(f"/report/{report.service_request_id}/suggestion/").content.decode()
    assert "It looks like it might be: <strong>Graffiti</strong>" in fragment and 'name="token"' in fragment


def test_someone_else_opening_the_thanks_page_is_not_asked(client, unique_jpeg):
    from django.test import Client

    report = _classify(_submit(client, unique_jpeg), "fly_tipping", 0.95)
    page = _thanks(Client(), report)
    assert "might be" not in page and 'name="token"' not in page


def test_citizen_confirms_without_javascript_and_the_page_thanks_them(client, unique_jpeg):
    report = _classify(_submit(client, unique_jpeg), "fly_tipping", 0.95)
    url = f"/report/{report.service_request_id}/label/"
    response = client.post(url, {"token": _token(client, report), "category": "fly_tipping"})
    assert response.status_code == 302 and response["Location"] == f"/report/{report.service_request_id}/thanks/"
    report.refresh_from_db()
    assert (report.citizen_category.slug, report.status) == ("fly_tipping", Report.Status.TRIAGED)
    event = report.events.get(action="citizen_label")
    assert (event.actor_label, event.to_value) == ("citizen", "fly_tipping")
    page = _thanks(client, report)
    assert "we have noted it as <strong>Fly-tipping</strong>" in page and "Is that right?" not in page


def test_citizen_picking_another_category_re_routes_a_confident_guess_to_review(client, unique_jpeg):
    report = _classify(_submit(client, unique_jpeg), "fly_tipping", 0.95)
    assert report.auto_triaged
    response = client.post(f"/report/{report.service_request_id}/label/",
                           {"token": _token(client, report), "category": "streetlight"})
    assert response.status_code == 302
    report.refresh_from_db()
    assert (report.citizen_category.slug, report.status, report.auto_triaged, report.citizen_model_disagree) == (
        "streetlight", Report.Status.NEEDS_REVIEW, False, True)


def test_citizen_answer_in_place_returns_the_fragment(client, unique_jpeg):
    report = _classify(_submit(client, unique_jpeg), "fly_tipping", 0.95)
    response = client.post(f"/report/{report.service_request_id}/label/",
                           {"token": _token(client, report), "category": "pothole"},
                           headers={"X-Requested-With": "XMLHttpRequest"})
    body = response.content.decode()
    assert response.status_code == 200 and "<html" not in body
    assert "we have noted it as <strong>Pothole</strong>" in body


def test_citizen_label_with_a_wrong_missing_or_expired_token_is_403(client, unique_jpeg, settings):
    from django.test import Client

    from reports.tokens import citizen_token_create

    report = _classify(_submit(client, unique_jpeg), "fly_tipping", 0.95)
    other = _classify(_submit(client, unique_jpeg), "graffiti", 0.95)
    url = f"/report/{report.service_request_id}/label/"
    for token in ("", "forged:token", _token(client, other)):  # the last is valid, for another report
        response = client.post(url, {"token": token, "category": "pothole"})
        assert response.status_code == 403
        assert "Only the person who sent this report can answer" in response.content.decode()
    assert Client().post(url, {"category": "pothole"}).status_code == 403
    settings.CITIZEN_LABEL_MAX_AGE = -1  # every token is now too old
    assert client.post(url, {"token": citizen_token_create(reference=report.service_request_id),
                             "category": "pothole"}).status_code == 403
    report.refresh_from_db()
    assert report.citizen_category is None and not report.events.filter(action="citizen_label").exists()


def test_citizen_label_with_an_inactive_or_unknown_category_is_400(client, unique_jpeg):
    from reports.models import Category

    report = _classify(_submit(client, unique_jpeg), "fly_tipping", 0.95)
    Category.objects.filter(slug="damaged_sign").update(active=False)
    url = f"/report/{report.service_request_id}/label/"
    response = client.post(url, {"token": _token(client, report), "category": "damaged_sign"})
    assert response.status_code == 400 and "not active" in response.content.decode()
    assert 'value="damaged_sign"' not in _thanks(client, report)  # never offered either
    response = client.post(url, {"token": _token(client, report), "category": "unicorns"})
    assert response.status_code == 400 and "Unknown category" in response.content.decode()


def test_citizen_cannot_answer_once_staff_have_decided(client, unique_jpeg, django_user_model):
    from reports.models import Category

    report = _classify(_submit(client, unique_jpeg), "fly_tipping", 0.95,
                       final_category=Category.objects.get(slug="fly_tipping"),
                       verified_by=django_user_model.objects.create_user("tina"))
    assert "Is that right?" not in _thanks(client, report)
    response = client.post(f"/report/{report.service_request_id}/label/",
                           {"token": _token(client, report), "category": "pothole"})
    assert response.status_code == 400 and "already looked at this report" in response.content.decode()


def test_resubmitting_someone_elses_photo_gives_no_right_to_label_it(unique_jpeg):
    from django.test import Client

    from reports.tokens import SESSION_KEY

    photo = unique_jpeg(lat=51.5, lon=-0.1)
    first, second = Client(), Client()
    first.post("/report/", {"photo": SimpleUploadedFile("p.jpg", photo)})
    second.post("/report/", {"photo": SimpleUploadedFile("p.jpg", photo)})
    report = Report.objects.get()
    assert report.service_request_id in first.session[SESSION_KEY]
    assert SESSION_KEY not in second.session
