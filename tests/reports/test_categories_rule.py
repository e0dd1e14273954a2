"""One rule per question "which category is this report?": the public one (REST GeoJSON, Open311),
the staff one (console), and which staff decisions are training labels."""
import itertools

import pytest
from django.utils import timezone

from reports.categories import NO_ISSUE
from reports.models import Category, Report
from reports.services import report_create
from tests import images

pytestmark = pytest.mark.django_db
_colours = itertools.count(1)


def make(*, citizen=None, predicted=None, final=None, unknown=False, **fields) -> Report:
    """A report through the real intake, then the classifier's and staff's fields set directly."""
    n = next(_colours)
    photo = images.jpeg(color=((n * 41) % 256, (n * 83) % 256, (n * 17 + 30) % 256), size=(64, 48))
    report = report_create(photo=photo, latitude=51.5, longitude=-0.12, category=citizen, classify=False).report
    Report.objects.filter(pk=report.pk).update(
        predicted_label=predicted or "", predicted_unknown=unknown,
        predicted_category=Category.objects.filter(slug=predicted).first(),
        final_category=Category.objects.filter(slug=final).first(), **fields)
    return Report.objects.get(pk=report.pk)


def geojson_categories(client, **params) -> dict[str, str | None]:
    features = client.get("/api/v1/reports/geojson/", params).json()["features"]
    return {f["properties"]["reference"]: f["properties"]["category"] for f in features}


def test_geojson_category_filter_uses_the_category_it_shows(client):
    model_only = make(predicted="graffiti")
    unknown = make(predicted="graffiti", unknown=True)
    citizen = make(citizen="pothole", predicted="graffiti")
    staff = make(citizen="pothole", predicted="graffiti", final="fly_tipping")
    shown = geojson_categories(client)
    assert [shown[r.service_request_id] for r in (model_only, unknown, citizen, staff)] == [
        "graffiti", None, "pothole", "fly_tipping"]
    for slug in ("graffiti", "pothole", "fly_tipping"):
        assert geojson_categories(client, category=slug) == {ref: c for ref, c in shown.items() if c == slug}


def test_open311_service_code_filter_uses_the_code_it_shows(client):
    make(predicted="graffiti")
    make(predicted="graffiti", unknown=True)
    make(citizen="pothole", predicted="graffiti")
    make(citizen="pothole", final="fly_tipping")
    everything = client.get("/open311/v2/requests.json").json()
    shown = {r["service_request_id"]: r["service_code"] for r in everything}
    assert sorted(shown.values(), key=str) == sorted(["graffiti", None, "pothole", "fly_tipping"], key=str)
    for code in ("graffiti", "pothole", "fly_tipping"):
        found = client.get("/open311/v2/requests.json", {"service_code": code}).json()
        assert {r["service_request_id"] for r in found} == {ref for ref, c in shown.items() if c == code}


@pytest.mark.parametrize("final, citizen, predicted, unknown",
                         list(itertools.product([None, "fly_tipping"], [None, "pothole"], [None, "graffiti"],
                                                [False, True])))
def test_sql_and_python_give_the_same_current_and_public_category(final, citizen, predicted, unknown):
    report = make(final=final, citizen=citizen, predicted=predicted, unknown=unknown)
    row = Report.objects.with_current_category().with_public_category().get(pk=report.pk)
    assert row.current_category_id == (report.category.pk if report.category else None)
    assert row.public_category_id == (report.public_category.pk if report.public_category else None)
    assert report.category == (Category.objects.filter(slug=final or predicted or citizen).first())
    assert report.public_category == (
        Category.objects.filter(slug=final or citizen or (None if unknown else predicted)).first())


def test_staff_labelled_needs_a_staff_decision_and_leaves_duplicates_out():
    now, S = timezone.now(), Report.Status
    verified = make(predicted="pothole", final="pothole", status=S.TRIAGED, verified_at=now)
    rejected = make(predicted="pothole", status=S.REJECTED, verified_at=now)
    make(predicted="pothole", status=S.REJECTED)  # no staff decision recorded: not a label
    make(predicted="pothole", final="pothole", status=S.TRIAGED)  # likewise
    original = make(predicted="graffiti")
    make(predicted="graffiti", final="graffiti", verified_at=now, status=S.DUPLICATE, duplicate_of=original)
    make(predicted="pothole", status=S.NEEDS_REVIEW, verified_at=now)  # a rejection reopened
    labels = dict(Report.objects.staff_labelled().values_list("pk", "training_label"))
    assert labels == {verified.pk: "pothole", rejected.pk: NO_ISSUE}


def test_training_export_and_model_panel_count_the_same_staff_labels():
    from classifier.training_data import verified_reports
    from console.panel import model_quality

    now, S = timezone.now(), Report.Status
    make(predicted="pothole", final="pothole", status=S.TRIAGED, verified_at=now, model_version="v1")
    make(predicted="pothole", status=S.REJECTED, verified_at=now, model_version="v1")
    make(predicted="pothole", status=S.REJECTED, model_version="v1")
    original = make(predicted="graffiti", model_version="v1")
    make(predicted="graffiti", final="graffiti", verified_at=now, status=S.DUPLICATE, duplicate_of=original,
         model_version="v1")
    exported = {(r.pk, r.training_label) for r in verified_reports()}
    assert exported == set(Report.objects.staff_labelled().values_list("pk", "training_label")) and len(exported) == 2
    assert model_quality(version="v1")["total"] == 2
