import io

import pytest
from django.core.exceptions import ValidationError
from PIL import Image

from reports import photos, services
from reports.models import Report, ReportEvent
from tests import images
from tests.conftest import stored_files

pytestmark = pytest.mark.django_db

LONDON = (51.5007, -0.1246)


def test_explicit_coordinates_win_over_exif_and_distance_is_recorded(unique_jpeg):
    intake = services.report_create(photo=unique_jpeg(lat=51.5010, lon=-0.1246), latitude="51.5007",
                                    longitude="-0.1246", location_source="device_gps")
    r = intake.report
    assert intake.created
    assert (r.location.y, r.location.x) == pytest.approx((51.5007, -0.1246))
    assert r.location_source == "device_gps"
    assert (r.exif_location.y, r.exif_location.x) == pytest.approx((51.5010, -0.1246), abs=1e-6)
    assert r.exif_distance_m == pytest.approx(33.4, abs=1.0)  # 0.0003 deg of latitude


def test_exif_gps_is_used_when_no_coordinates_given_and_south_west_are_negative(unique_jpeg):
    r = services.report_create(photo=unique_jpeg(lat=-33.8568, lon=-70.6483)).report
    assert r.location_source == "exif"
    assert (r.location.y, r.location.x) == pytest.approx((-33.8568, -70.6483), abs=1e-6)
    assert r.exif_distance_m is None


def test_report_starts_pending_with_a_created_event(unique_jpeg):
    r = services.report_create(photo=unique_jpeg(lat=LONDON[0], lon=LONDON[1])).report
    r.refresh_from_db()
    assert r.status == Report.Status.PENDING
    assert r.predicted_label == "" and r.final_category is None  # nothing invented
    assert list(r.events.values_list("action", flat=True)) == ["created"]


def test_media_dirs_fixture_really_redirects_storage(unique_jpeg, media_dirs):
    r = services.report_create(photo=unique_jpeg(lat=51.5, lon=-0.1)).report
    assert len(stored_files(media_dirs)) == 3
    assert str(media_dirs[1]) in r.photo_original.path and str(media_dirs[0]) in r.photo_public.path


def test_upload_without_location_or_gps_is_rejected_and_nothing_stored(unique_jpeg, media_dirs):
    with pytest.raises(ValidationError) as err:
        services.report_create(photo=unique_jpeg())
    assert "Location required" in str(err.value)
    assert Report.objects.count() == 0 and ReportEvent.objects.count() == 0
    assert stored_files(media_dirs) == []


def test_zero_gps_counts_as_no_gps(unique_jpeg):
    with pytest.raises(ValidationError, match="Location required"):
        services.report_create(photo=unique_jpeg(lat=0.0, lon=0.0))


@pytest.mark.parametrize("lat,lon,message", [
    ("91", "0", "latitude must be between -90 and 90"),
    ("0", "-180.5", "longitude must be between -180 and 180"),
    ("abc", "1", "latitude must be a number"),
    ("nan", "1", "latitude must be between"),
    ("51.5", "", "Give both latitude and longitude"),
])
def test_bad_coordinates_are_rejected(unique_jpeg, media_dirs, lat, lon, message):
    with pytest.raises(ValidationError, match=message):
        services.report_create(photo=unique_jpeg(lat=51.5, lon=-0.1), latitude=lat, longitude=lon)
    assert Report.objects.count() == 0 and stored_files(media_dirs) == []


def test_point_outside_council_boundary_is_rejected(unique_jpeg, settings, media_dirs):
    settings.COUNCIL_BOUNDARY = "POLYGON((-0.2 51.4, 0.0 51.4, 0.0 51.6, -0.2 51.6, -0.2 51.4))"
    services.report_create(photo=unique_jpeg(), latitude=51.5, longitude=-0.1)
    with pytest.raises(ValidationError, match="outside the area"):
        services.report_create(photo=unique_jpeg(), latitude=52.5, longitude=-0.1)
    assert Report.objects.count() == 1


@pytest.mark.parametrize("data,message", [
    (b"", "empty"),
    (b"%PDF-1.4 not a photo", "not a photo we can read"),
    (images.gif(), r"Unsupported image type \(GIF\)"),
])
def test_non_photos_are_rejected_by_content(data, message, media_dirs):
    with pytest.raises(ValidationError, match=message):
        services.report_create(photo=data, latitude=51.5, longitude=-0.1)
    assert Report.objects.count() == 0 and stored_files(media_dirs) == []


def test_truncated_jpeg_is_rejected(unique_jpeg, media_dirs):
    data = unique_jpeg(size=(800, 600))
    with pytest.raises(ValidationError, match="could not be read"):
        services.report_create(photo=data[: len(data) // 2], latitude=51.5, longitude=-0.1)
    assert stored_files(media_dirs) == []


def test_oversized_upload_is_rejected(unique_jpeg, settings):
    settings.PHOTO_MAX_BYTES = 1000
    with pytest.raises(ValidationError, match="too large"):
        services.report_create(photo=unique_jpeg(), latitude=51.5, longitude=-0.1)


def test_decompression_bomb_is_an_error_not_a_warning(settings, media_dirs):
    settings.PHOTO_MAX_PIXELS = 100 * 100
    with pytest.raises(ValidationError, match="too many pixels"):
        services.report_create(photo=images.png(size=(200, 200)), latitude=51.5, longitude=-0.1)
    assert stored_files(media_dirs) == []


@pytest.mark.parametrize("factory,fmt", [(images.png, "PNG"), (images.webp, "WEBP")])
def test_png_and_webp_are_accepted(factory, fmt):
    r = services.report_create(photo=factory(), latitude=51.5, longitude=-0.1).report
    assert r.photo_format == fmt and r.photo_original.name.endswith(fmt.lower() if fmt == "PNG" else "webp")


def test_heic_with_gps_is_accepted():
    r = services.report_create(photo=images.heic(lat=53.4808, lon=-2.2426)).report
    assert r.photo_format == "HEIF" and r.location_source == "exif"
    assert (r.location.y, r.location.x) == pytest.approx((53.4808, -2.2426), abs=1e-6)


def test_public_derivative_and_thumbnail_carry_no_metadata(unique_jpeg):
    r = services.report_create(photo=unique_jpeg(lat=51.5, lon=-0.1, size=(3000, 2000))).report
    original = r.photo_original.read()
    assert b"Exif" in original and b"Jane Citizen" in original  # the original keeps everything (private)
    for field in (r.photo_public, r.photo_thumbnail):
        data = field.storage.open(field.name).read()
        assert b"Exif" not in data and b"http://ns.adobe.com/xap" not in data
        assert b"Jane Citizen" not in data and b"TestPhone" not in data
        img = Image.open(io.BytesIO(data))
        assert dict(img.getexif()) == {}
        assert "exif" not in img.info and "icc_profile" not in img.info and "comment" not in img.info
        assert not any(m[0] in ("APP1", "APP13", "COM") for m in getattr(img, "applist", []))
    assert max(Image.open(r.photo_public.path).size) == 1600
    assert max(Image.open(r.photo_thumbnail.path).size) == 320


def test_exif_orientation_is_applied_to_derivatives(unique_jpeg):
    # Stored landscape 640x480 with orientation 6 (rotate 90 CW) displays as portrait.
    r = services.report_create(photo=unique_jpeg(orientation=6, lat=51.5, lon=-0.1)).report
    assert (r.photo_width, r.photo_height) == (480, 640)
    assert Image.open(r.photo_public.path).size == (480, 640)


def test_identical_resubmission_returns_the_existing_report(unique_jpeg):
    data = unique_jpeg(lat=51.5, lon=-0.1)
    first = services.report_create(photo=data)
    second = services.report_create(photo=data)
    assert first.created and not second.created
    assert second.report.pk == first.report.pk and Report.objects.count() == 1


def test_failure_while_storing_removes_files_already_written(unique_jpeg, media_dirs, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(ReportEvent.objects, "create", boom)
    with pytest.raises(RuntimeError):
        services.report_create(photo=unique_jpeg(lat=51.5, lon=-0.1))
    assert Report.objects.count() == 0 and stored_files(media_dirs) == []


def test_gps_parser_handles_rationals_and_missing_refs():
    exif = Image.Exif()
    exif.load(images.exif_bytes(lat=40.4168, lon=-3.7038))
    assert photos.gps_from_exif(exif) == pytest.approx((40.4168, -3.7038), abs=1e-6)
    assert photos.gps_from_exif(Image.Exif()) is None


def test_unknown_category_is_rejected(unique_jpeg):
    with pytest.raises(ValidationError, match="Unknown category"):
        services.report_create(photo=unique_jpeg(lat=51.5, lon=-0.1), category="unicorns")


def test_report_events_are_append_only(unique_jpeg):
    from django.db import DatabaseError, transaction

    r = services.report_create(photo=unique_jpeg(lat=51.5, lon=-0.1)).report
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        ReportEvent.objects.filter(report=r).update(note="rewritten")


# The citizen's answer on the thank-you page (report_set_citizen_category) ---------------------

def _classified(unique_jpeg, *, predicted="fly_tipping", probability=0.95, status=Report.Status.TRIAGED,
                auto_triaged=True, citizen=None, **fields) -> Report:
    """A report as the classify task leaves it (its fields set directly, as the task would)."""
    from django.utils import timezone

    from reports.models import Category

    r = services.report_create(photo=unique_jpeg(lat=51.5, lon=-0.1), category=citizen, classify=False).report
    Report.objects.filter(pk=r.pk).update(
        status=status, predicted_label=predicted, predicted_category=Category.objects.filter(slug=predicted).first(),
        predicted_probability=probability, predicted_top_k=[[predicted, probability], ["graffiti", 0.02]],
        model_version="v1", classified_at=timezone.now(), auto_triaged=auto_triaged, **fields)
    return Report.objects.get(pk=r.pk)


def _category(slug):
    from reports.models import Category

    return Category.objects.get(slug=slug)


def test_citizen_confirming_the_guess_stores_their_label_with_an_event(unique_jpeg):
    r = _classified(unique_jpeg)
    done = services.report_set_citizen_category(report=r, category=_category("fly_tipping"))
    done.refresh_from_db()
    assert (done.citizen_category.slug, done.status, done.auto_triaged, done.citizen_model_disagree) == (
        "fly_tipping", Report.Status.TRIAGED, True, False)
    assert done.version == r.version + 1  # a triager holding the old page gets a conflict
    event = done.events.get(action="citizen_label")
    assert (event.actor_label, event.actor, event.field, event.from_value, event.to_value) == (
        "citizen", None, "citizen_category", "", "fly_tipping")


def test_citizen_contradicting_a_confident_prediction_sends_it_back_to_review(unique_jpeg):
    r = _classified(unique_jpeg, predicted="fly_tipping", probability=0.95)
    done = services.report_set_citizen_category(report=r, category=_category("streetlight"))
    assert (done.status, done.auto_triaged, done.citizen_model_disagree) == (Report.Status.NEEDS_REVIEW, False, True)
    routed = done.events.get(action="routed")
    assert (routed.actor_label, routed.from_value, routed.to_value) == ("system", "triaged", "needs_review")


def test_citizen_correcting_an_unsure_prediction_is_no_disagreement(unique_jpeg):
    r = _classified(unique_jpeg, probability=0.5, status=Report.Status.NEEDS_REVIEW, auto_triaged=False)
    done = services.report_set_citizen_category(report=r, category=_category("pothole"))
    assert (done.status, done.citizen_model_disagree, done.citizen_category.slug) == (
        Report.Status.NEEDS_REVIEW, False, "pothole")
    assert not done.events.filter(action="routed").exists()


def test_citizen_agreeing_clears_the_disagreement_but_never_auto_triages(unique_jpeg):
    r = _classified(unique_jpeg, citizen="pothole", status=Report.Status.NEEDS_REVIEW, auto_triaged=False,
                    citizen_model_disagree=True)
    done = services.report_set_citizen_category(report=r, category=_category("fly_tipping"))
    assert (done.status, done.auto_triaged, done.citizen_model_disagree) == (Report.Status.NEEDS_REVIEW, False, False)
    assert done.events.get(action="citizen_label").from_value == "pothole"


def test_citizen_label_before_classification_is_used_by_routing_later(unique_jpeg):
    r = services.report_create(photo=unique_jpeg(lat=51.5, lon=-0.1), classify=False).report
    done = services.report_set_citizen_category(report=r, category=_category("graffiti"))
    assert (done.status, done.citizen_category.slug) == (Report.Status.PENDING, "graffiti")


def test_citizen_cannot_relabel_once_staff_decided_or_it_is_closed(unique_jpeg, django_user_model):
    staff = django_user_model.objects.create_user("tina")
    verified = _classified(unique_jpeg, final_category=_category("fly_tipping"), verified_by=staff)
    rejected = _classified(unique_jpeg, status=Report.Status.REJECTED, auto_triaged=False)
    for r in (verified, rejected):
        with pytest.raises(ValidationError, match="already looked at this report"):
            services.report_set_citizen_category(report=r, category=_category("graffiti"))
        r.refresh_from_db()
        assert r.citizen_category is None and not r.events.filter(action="citizen_label").exists()


def test_citizen_cannot_pick_an_inactive_category(unique_jpeg):
    r = _classified(unique_jpeg)
    retired = _category("damaged_sign")
    retired.active = False
    retired.save()
    with pytest.raises(ValidationError, match="not active"):
        services.report_set_citizen_category(report=r, category=retired)
    r.refresh_from_db()
    assert r.citizen_category is None


@pytest.mark.django_db(transaction=True)
def test_every_event_is_announced_after_its_transaction_commits(unique_jpeg):
    from reports.signals import report_event_recorded

    seen = []

    def receiver(sender, event, **kwargs):
        seen.append((event.action, event.report.service_request_id))
        raise RuntimeError("a broken receiver must not break intake")

    report_event_recorded.connect(receiver)
    try:
        intake = services.report_create(photo=unique_jpeg(lat=51.5, lon=-0.1), classify=False)
    finally:
        report_event_recorded.disconnect(receiver)
    assert seen == [("created", intake.report.service_request_id)]


def test_reporter_link_token_is_for_one_reference_only():
    from reports import tokens

    token = tokens.reporter_link_token(reference="ABCDEFGHJK")
    assert tokens.reporter_link_valid(reference="ABCDEFGHJK", token=token)
    assert not tokens.reporter_link_valid(reference="ABCDEFGHJL", token=token)
    assert not tokens.reporter_link_valid(reference="ABCDEFGHJK", token=token[:-1] + "x")
