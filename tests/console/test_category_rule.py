"""The console's category: one staff rule for filters and display, display names where staff
read it, and the model panel's POST actions answering alike."""
from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from console import selectors
from console.selectors import QueueFilters
from reports.models import Report

from .conftest import category

pytestmark = pytest.mark.django_db


def test_map_and_queue_filter_by_the_category_they_show(make_report):
    model = make_report(predicted="graffiti", citizen="pothole")
    staff = make_report(predicted="graffiti", citizen="pothole", final_category=category("fly_tipping"))
    citizen_only = make_report(predicted=None, citizen="pothole")
    shown = {f["properties"]["reference"]: f["properties"]["category"]
             for f in selectors.map_features(QueueFilters(status=""))["features"]}
    assert [shown[r.service_request_id] for r in (model, staff, citizen_only)] == ["graffiti", "fly_tipping", "pothole"]
    for slug in ("graffiti", "pothole", "fly_tipping"):
        filters = QueueFilters(status="", category=slug)
        listed = {r.service_request_id for r in selectors.filtered_reports(filters)}
        mapped = {f["properties"]["reference"] for f in selectors.map_features(filters)["features"]}
        assert listed == mapped == {ref for ref, c in shown.items() if c == slug}
    citizen = {r.pk for r in selectors.filtered_reports(QueueFilters(status="", category="pothole",
                                                                     category_field="citizen"))}
    assert citizen == {model.pk, staff.pk, citizen_only.pk}


def test_map_popup_gets_the_category_name(make_report):
    make_report(predicted="fly_tipping")
    (feature,) = selectors.map_features(QueueFilters(status=""))["features"]
    assert (feature["properties"]["category"], feature["properties"]["category_name"]) == ("fly_tipping", "Fly-tipping")


def test_queue_and_report_page_name_the_models_no_issue_label(client, triager, make_report):
    report = make_report(predicted="no_issue", probability=0.97)
    client.force_login(triager)
    for url in (reverse("console:queue"), reverse("console:report", args=[report.service_request_id])):
        html = client.get(url).content.decode()
        assert "Not a council issue" in html and ">no_issue" not in html


@pytest.fixture
def active_model(supervisor):
    from classifier.models import ModelVersion

    return ModelVersion.objects.create(version="v1", path="v1", sha256="1" * 64, status="active",
                                       classes=["pothole", "fly_tipping", "no_issue"], activated_by=supervisor)


def test_model_panel_shows_category_names_not_slugs(client, supervisor, triager, make_report, active_model):
    from console import services

    for predicted, label in (("fly_tipping", "fly_tipping"), ("pothole", "fly_tipping")):
        services.report_verify(report=make_report(predicted=predicted), staff=triager, category=category(label),
                               expected_version=1)
    client.force_login(supervisor)
    html = client.get(reverse("console:model")).content.decode()
    quality = html.split("Quality since activation")[1].split("</section>")[0]
    assert "Fly-tipping" in quality and "fly_tipping" not in quality


def test_model_panel_reads_no_table_catalogue(client, supervisor, active_model):
    client.force_login(supervisor)
    with CaptureQueriesContext(connection) as queries:
        assert client.get(reverse("console:model")).status_code == 200
    assert not [q["sql"] for q in queries if "pg_catalog" in q["sql"] or "information_schema" in q["sql"]]


def test_a_refused_rollback_is_a_400_with_the_reason(client, supervisor, active_model):
    from classifier.models import ModelVersion

    client.force_login(supervisor)
    response = client.post(reverse("console:rollback"))
    assert response.status_code == 400 and "no earlier model to roll back to" in response.content.decode()
    assert ModelVersion.objects.get().status == "active"


def test_a_refused_threshold_is_a_400_and_a_good_one_redirects(client, supervisor):
    client.force_login(supervisor)
    refused = client.post(reverse("console:threshold"), {"category": "pothole", "threshold": "0.6"})
    assert refused.status_code == 400 and "Say why you override the threshold" in refused.content.decode()
    ok = client.post(reverse("console:threshold"), {"category": "pothole", "threshold": "0.6", "reason": "backlog"})
    assert ok.status_code == 302 and category("pothole").auto_triage_threshold == 0.6
    assert Report.objects.count() == 0
