"""Queue order, filters, keyset pagination, counts, duplicate ranking and map features."""
from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest
from django.urls import reverse
from django.utils import timezone

from console import selectors
from console.selectors import QueueFilters
from reports.models import Report

from .conftest import category

S = Report.Status


def refs(reports):
    return [r.service_request_id for r in reports]


@pytest.mark.django_db
def test_default_queue_is_needs_review_least_confident_then_oldest(make_report):
    confident = make_report(probability=0.9)
    unsure_old = make_report(probability=0.2)
    unsure_new = make_report(probability=0.2)
    unclassified = make_report(predicted=None, probability=None)
    make_report(status=S.TRIAGED, probability=0.1)
    Report.objects.filter(pk=unsure_old.pk).update(created_at=timezone.now() - dt.timedelta(days=1))
    page = selectors.report_queue(filters=QueueFilters())
    assert refs(page.reports) == refs([unclassified, unsure_old, unsure_new, confident])


@pytest.mark.django_db
@pytest.mark.parametrize("sort", ["confidence", "oldest", "newest"])
def test_keyset_pages_cover_every_report_once(make_report, sort):
    made = {make_report(probability=p).service_request_id for p in (0.1, 0.1, 0.1, 0.5, 0.7, None, 0.3)}
    seen, cursor = [], ""
    while True:
        page = selectors.report_queue(filters=QueueFilters(sort=sort), cursor=cursor, page_size=2)
        seen += refs(page.reports)
        if not page.next_cursor:
            break
        cursor = page.next_cursor
    assert len(seen) == len(made) and set(seen) == made


@pytest.mark.django_db
def test_filters_by_label_confidence_flags_and_area(make_report):
    a = make_report(predicted="pothole", probability=0.3, citizen="graffiti", citizen_model_disagree=True)
    b = make_report(predicted="graffiti", probability=0.6, lat=51.6, lon=-0.2, possibly_not_issue=True)
    c = make_report(predicted="pothole", probability=0.95, status=S.TRIAGED, auto_triaged=True)
    q = lambda **kw: set(refs(selectors.filtered_reports(QueueFilters(**kw))))  # noqa: E731
    assert q(category="pothole", category_field="predicted") == {a.service_request_id}
    assert q(category="graffiti", category_field="citizen") == {a.service_request_id}
    assert q(category="graffiti") == {b.service_request_id}  # current label: model's when staff has none
    assert q(min_confidence=0.5, max_confidence=0.7) == {b.service_request_id}
    assert q(disagree=True) == {a.service_request_id}
    assert q(possibly_not_issue=True) == {b.service_request_id}
    assert q(status="", auto_triaged=True) == {c.service_request_id}
    assert q(status="open") == refs_set(a, b, c)
    assert q(bbox=(-0.25, 51.55, -0.15, 51.65)) == {b.service_request_id}  # lon, lat order
    today = timezone.localdate()
    assert q(date_from=today, date_to=today) == refs_set(a, b)
    assert q(date_to=today - dt.timedelta(days=1)) == set()


def refs_set(*reports):
    return {r.service_request_id for r in reports}


@pytest.mark.django_db
def test_staff_label_wins_for_the_current_category(triager, make_report):
    from console.services import report_verify

    r = make_report(predicted="pothole")
    report_verify(report=r, staff=triager, category=category("graffiti"), expected_version=1)
    f = QueueFilters(status="")
    assert refs(selectors.filtered_reports(replace(f, category="graffiti"))) == [r.service_request_id]
    assert not selectors.filtered_reports(replace(f, category="pothole")).exists()
    assert selectors.filtered_reports(replace(f, category="pothole", category_field="predicted")).exists()


@pytest.mark.django_db
def test_counts_per_status_and_flag(make_report):
    make_report(citizen_model_disagree=True)
    make_report(possibly_not_issue=True)
    make_report(status=S.TRIAGED, auto_triaged=True)
    counts = selectors.queue_counts(QueueFilters())
    assert counts.by_status == {S.NEEDS_REVIEW: 2, S.TRIAGED: 1}
    assert (counts.total, counts.disagree, counts.possibly_not_issue, counts.auto_triaged) == (2, 1, 1, 0)
    assert selectors.queue_counts(QueueFilters(disagree=True)).total == 1


@pytest.mark.django_db
def test_queue_page_filters_from_the_query_string(client, triager, make_report):
    a = make_report(probability=0.3)
    b = make_report(probability=0.8)
    client.force_login(triager)
    html = client.get(reverse("console:queue"), {"min_confidence": "0.5"}).content.decode()
    assert b.service_request_id in html and a.service_request_id not in html
    response = client.get(reverse("console:queue"), {"bbox": "nonsense"})
    assert response.status_code == 200 and "Map area must be four numbers" in response.content.decode()


@pytest.mark.django_db
def test_j_and_k_follow_the_queue_order(client, triager, make_report):
    a, b, c = make_report(probability=0.1), make_report(probability=0.2), make_report(probability=0.3)
    f = QueueFilters()
    assert selectors.queue_neighbour(report=b, filters=f).pk == c.pk
    assert selectors.queue_neighbour(report=b, filters=f, previous=True).pk == a.pk
    assert selectors.queue_neighbour(report=c, filters=f) is None


@pytest.mark.django_db
def test_verify_opens_the_next_report_in_the_queue(client, triager, make_report):
    a, b = make_report(probability=0.1), make_report(probability=0.2)
    client.force_login(triager)
    response = client.post(reverse("console:verify", args=[a.service_request_id]) + "?status=needs_review",
                           {"version": 1, "category": "pothole"})
    assert response["Location"] == reverse("console:report", args=[b.service_request_id]) + "?status=needs_review"


# Duplicates: 0.0001 degrees of latitude is about 11 m.
SAME = "ffffffffffffffff"


@pytest.mark.django_db
def test_duplicate_candidates_are_near_open_and_related(settings, make_report):
    settings.DUPLICATE_RADIUS_M = 50
    report = make_report(predicted="pothole", phash=SAME)
    near = make_report(predicted="damaged_sign", lat=51.5002, phash=SAME)  # same group (Roads), ~22 m
    make_report(predicted="pothole", lat=51.5010, phash=SAME)  # ~111 m: too far
    make_report(predicted="pothole", lat=51.5001, status=S.FIXED, phash=SAME)  # closed
    make_report(predicted="graffiti", lat=51.5001, phash=SAME)  # unrelated group
    assert refs(c.report for c in selectors.duplicate_candidates(report)) == [near.service_request_id]
    settings.DUPLICATE_RADIUS_M = 150
    assert len(selectors.duplicate_candidates(report)) == 2


@pytest.mark.django_db
def test_duplicates_rank_by_distance_and_photo_similarity(make_report):
    report = make_report(phash=SAME)
    near_other_photo = make_report(lat=51.50005, phash="0000000000000000")  # ~6 m, 64 bits apart
    farther_same_photo = make_report(lat=51.5002, phash="fffffffffffffff0")  # ~22 m, 4 bits
    far_same_photo = make_report(lat=51.5004, phash=SAME)  # ~44 m, identical
    ranked = selectors.duplicate_candidates(report)
    assert refs(c.report for c in ranked) == refs([farther_same_photo, far_same_photo, near_other_photo])
    assert ranked[0].photo_distance == 4 and 20 < ranked[0].distance_m < 25


@pytest.mark.django_db
def test_map_geojson_is_lon_lat_and_limited_to_the_bbox(client, triager, make_report):
    inside = make_report(lat=51.51, lon=-0.13, predicted="graffiti")
    make_report(lat=52.5, lon=-1.9)
    client.force_login(triager)
    data = client.get(reverse("console:map-geojson"), {"bbox": "-0.2,51.4,0,51.6", "status": ""}).json()
    assert [f["properties"]["reference"] for f in data["features"]] == [inside.service_request_id]
    feature = data["features"][0]
    assert feature["geometry"]["coordinates"] == pytest.approx([-0.13, 51.51])
    assert feature["properties"]["category"] == "graffiti" and feature["properties"]["colour"].startswith("#")
    assert client.get(reverse("console:map-geojson"), {"bbox": "1,2,3"}).status_code == 400


@pytest.mark.django_db
def test_counts_fragment_fills_tabs_and_flags(client, triager, make_report):
    make_report(citizen_model_disagree=True)
    make_report(citizen_model_disagree=True, possibly_not_issue=True)
    make_report(status=S.TRIAGED)
    client.force_login(triager)
    html = client.get(reverse("console:counts"), {"disagree": "on"}).content.decode()
    assert 'id="queue-total" hx-swap-oob="true">· 2 reports' in html
    assert 'id="count-possibly_not_issue" hx-swap-oob="true">1<' in html
    assert 'Needs review <span class="count">2</span>' in html


def _fully_labelled(make_report, n: int, assignee) -> Report:
    """A queue row showing everything: three labels, a team, a person, a spot check."""
    from classifier.models import SpotCheck
    from console.models import ReportAssignment
    from reports.models import Team

    team = Team.objects.create(slug=f"team-{n}", name=f"Team {n}")
    report = make_report(lat=51.5 + n / 1000, citizen="graffiti", predicted="pothole",
                         final_category=category("fly_tipping"), team=team)
    ReportAssignment.objects.create(report=report, assignee=assignee, assigned_at=timezone.now())
    SpotCheck.objects.create(report=report, model_version="v1", category=category("streetlight"), probability=0.97,
                             share=0.05)
    return report


@pytest.mark.django_db
def test_the_queue_page_reads_no_more_queries_for_more_rows(client, triager, make_report):
    """Categories and teams come from one look-up each, not a query (or a join) per row."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.force_login(triager)

    def page() -> tuple[str, int]:
        with CaptureQueriesContext(connection) as ctx:
            html = client.get(reverse("console:queue")).content.decode()
        return html, len(ctx.captured_queries)

    _fully_labelled(make_report, 0, triager)
    _, few = page()
    for n in range(1, 6):
        _fully_labelled(make_report, n, triager)
    html, many = page()
    assert many == few
    row = html.split('class="ref">', 6)[6].split("</tr>", 1)[0]
    for shown in ("Graffiti", "Pothole", "Fly-tipping", "Team ", "tina", "as Street light"):
        assert shown in row, shown


@pytest.mark.django_db
def test_the_report_page_reads_its_labels_team_and_rule_without_further_queries(triager, make_report,
                                                                               django_assert_num_queries):
    from reports.models import RoutingRule

    report = _fully_labelled(make_report, 0, triager)
    Report.objects.filter(pk=report.pk).update(
        routing_rule=RoutingRule.objects.create(category=category("fly_tipping"), team=report.team))
    found = selectors.console_report(report.service_request_id.lower())
    with django_assert_num_queries(0):
        shown = (found.citizen_category.name, found.predicted_category.name, found.final_category.name,
                 found.team.name, str(found.routing_rule), found.spot_check.category.name, found.assignment.assignee)
    assert shown[:4] == ("Graffiti", "Pothole", "Fly-tipping", "Team 0") and "Fly-tipping -> Team 0" in shown[4]
    assert (shown[5], shown[6]) == ("Street light", triager)
