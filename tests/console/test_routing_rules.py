"""Console pages for teams, routing rules and areas; the queue's team filter ("my team" by
default for a member); the report page naming the team and the rule, and setting it by hand."""
from __future__ import annotations

import json

import pytest
from django.contrib.gis.geos import MultiPolygon, Polygon
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from console import services
from reports.models import Area, Report, RoutingRule, Team

from .conftest import category

pytestmark = pytest.mark.django_db

RING = [[-0.2, 51.45], [-0.1, 51.45], [-0.1, 51.55], [-0.2, 51.55], [-0.2, 51.45]]


def geojson(*features) -> bytes:
    return json.dumps({"type": "FeatureCollection", "features": list(features)}).encode()


def ward(name, ring=RING, kind="Polygon"):
    coords = [ring] if kind == "Polygon" else [[ring]]
    return {"type": "Feature", "properties": {"WARD_NAME": name}, "geometry": {"type": kind, "coordinates": coords}}


def upload(client, data: bytes, name_field="WARD_NAME"):
    return client.post(reverse("console:area-upload"),
                       {"file": SimpleUploadedFile("wards.geojson", data, "application/geo+json"),
                        "name_field": name_field})


def test_a_triager_cannot_open_the_routing_pages(client, triager):
    client.force_login(triager)
    assert client.get(reverse("console:routing")).status_code == 403
    assert client.post(reverse("console:team-new"), {"name": "X", "slug": "x", "kind": "department",
                                                     "send_method": "email"}).status_code == 403
    assert not Team.objects.exists()


def test_a_supervisor_sees_the_routing_page_in_the_nav(client, supervisor):
    client.force_login(supervisor)
    response = client.get(reverse("console:queue"))
    assert reverse("console:routing") in response.content.decode()
    assert client.get(reverse("console:routing")).status_code == 200
    assert 'name="members"' in client.get(reverse("console:team-new")).content.decode()
    assert "Any category" in client.get(reverse("console:rule-new")).content.decode()


def test_a_supervisor_creates_a_team_with_members(client, supervisor, triager):
    client.force_login(supervisor)
    response = client.post(reverse("console:team-new"), {
        "name": "Highways", "slug": "highways", "kind": "department", "email": "highways@council.example",
        "send_method": "email", "members": [triager.pk], "active": "on"})
    assert response.status_code == 302
    team = Team.objects.get(slug="highways")
    assert list(team.members.all()) == [triager]


def test_an_outside_body_without_an_email_is_refused(client, supervisor):
    client.force_login(supervisor)
    response = client.post(reverse("console:team-new"), {
        "name": "National Highways", "slug": "nh", "kind": "outside_body", "send_method": "email", "active": "on"})
    assert response.status_code == 400
    assert "needs a contact email" in response.content.decode()
    assert not Team.objects.exists()


def test_a_supervisor_creates_edits_and_deletes_a_rule(client, supervisor):
    client.force_login(supervisor)
    team = Team.objects.create(slug="highways", name="Highways")
    area = Area.objects.create(name="Riverside", geometry=MultiPolygon(Polygon(RING), srid=4326))
    response = client.post(reverse("console:rule-new"), {"category": category("pothole").pk, "area": area.pk,
                                                        "team": team.pk, "priority": 10, "active": "on"})
    assert response.status_code == 302
    rule = RoutingRule.objects.get()
    assert (rule.category.slug, rule.area, rule.team, rule.priority) == ("pothole", area, team, 10)
    client.post(reverse("console:rule", args=[rule.pk]), {"category": "", "area": "", "team": team.pk,
                                                         "priority": 5, "active": "on"})
    rule.refresh_from_db()
    assert (rule.category, rule.area, rule.priority) == (None, None, 5)
    page = client.get(reverse("console:routing")).content.decode()
    assert f'id="rule-{rule.pk}"' in page and "Any category" in page
    assert client.post(reverse("console:rule-delete", args=[rule.pk])).status_code == 302
    assert not RoutingRule.objects.exists()


def test_a_rule_without_a_team_is_refused(client, supervisor):
    client.force_login(supervisor)
    response = client.post(reverse("console:rule-new"), {"category": "", "area": "", "team": "", "priority": 1})
    assert response.status_code == 400 and not RoutingRule.objects.exists()


def test_a_team_that_rules_use_cannot_be_deleted(client, supervisor):
    client.force_login(supervisor)
    team = Team.objects.create(slug="highways", name="Highways")
    RoutingRule.objects.create(team=team)
    response = client.post(reverse("console:team-delete", args=["highways"]))
    assert response.status_code == 409
    assert "still used" in response.content.decode()
    assert Team.objects.filter(slug="highways").exists()


def test_uploading_geojson_creates_named_areas(client, supervisor):
    client.force_login(supervisor)
    other = [[-0.1, 51.45], [0.0, 51.45], [0.0, 51.55], [-0.1, 51.55], [-0.1, 51.45]]
    response = upload(client, geojson(ward("Riverside"), ward("Parkside", other, kind="MultiPolygon")))
    assert response.status_code == 302
    assert sorted(Area.objects.values_list("name", flat=True)) == ["Parkside", "Riverside"]
    assert Area.objects.get(name="Riverside").geometry.extent == pytest.approx((-0.2, 51.45, -0.1, 51.55))


@pytest.mark.parametrize("data, name_field, message", [
    (b"not json", "WARD_NAME", "not JSON"),
    (geojson({"type": "Feature", "properties": {"WARD_NAME": "X"},
              "geometry": {"type": "Point", "coordinates": [-0.1, 51.5]}}), "WARD_NAME", "must be a Polygon"),
    (geojson(ward("Riverside")), "NAME", "no &#x27;NAME&#x27; property"),
    (geojson(ward("Riverside", [[51.45, -0.2], [51.55, -0.2], [51.55, 200], [51.45, -0.2]])), "WARD_NAME",
     "longitude first"),
])
def test_a_bad_geojson_upload_is_a_400_and_imports_nothing(client, supervisor, data, name_field, message):
    client.force_login(supervisor)
    response = upload(client, data, name_field=name_field)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Area.objects.exists()


def test_an_oversized_geojson_upload_is_refused(client, supervisor, settings):
    settings.PHOTO_MAX_BYTES = 500  # bytes: the upload limit every file shares
    client.force_login(supervisor)
    response = upload(client, geojson(*(ward(f"Ward {n}") for n in range(5))))
    assert response.status_code == 400 and "larger than" in response.content.decode()
    assert not Area.objects.exists()


def test_one_bad_feature_rejects_the_whole_file(client, supervisor):
    client.force_login(supervisor)
    bow_tie = [[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]
    response = upload(client, geojson(ward("Good"), ward("Twisted", bow_tie)))
    assert response.status_code == 400
    assert "Feature 2 (Twisted)" in response.content.decode() and "not valid" in response.content.decode()
    assert not Area.objects.exists()


def test_an_area_a_rule_uses_cannot_be_deleted(client, supervisor):
    client.force_login(supervisor)
    area = Area.objects.create(name="Riverside", geometry=MultiPolygon(Polygon(RING), srid=4326))
    RoutingRule.objects.create(area=area, team=Team.objects.create(slug="t", name="T"))
    assert client.post(reverse("console:area-delete", args=[area.pk])).status_code == 409
    assert Area.objects.filter(pk=area.pk).exists()


# --- the queue and the report page -----------------------------------------------------------

@pytest.fixture
def two_teams(triager, make_report):
    """The triager is in Highways. One report routed to Highways, one to Parks, one not routed."""
    highways = Team.objects.create(slug="highways", name="Highways")
    highways.members.add(triager)
    parks = Team.objects.create(slug="parks", name="Parks")
    reports = {name: make_report(status=Report.Status.NEEDS_REVIEW) for name in ("highways", "parks", "none")}
    Report.objects.filter(pk=reports["highways"].pk).update(team=highways)
    Report.objects.filter(pk=reports["parks"].pk).update(team=parks)
    return {k: r.service_request_id for k, r in reports.items()}


def shown(client, query="") -> set[str]:
    html = client.get(reverse("console:queue") + query).content.decode()
    return {ref for ref in html.split('class="ref">')[1:] for ref in [ref.split("<", 1)[0]]}


def test_the_queue_opens_on_my_team_and_reports_not_yet_routed(client, triager, two_teams):
    client.force_login(triager)
    assert shown(client) == {two_teams["highways"], two_teams["none"]}
    assert 'value="mine" selected' in client.get(reverse("console:queue")).content.decode()


def test_the_queue_filters_by_any_team(client, triager, two_teams):
    client.force_login(triager)
    assert shown(client, "?team=parks") == {two_teams["parks"]}
    assert shown(client, "?team=none") == {two_teams["none"]}
    assert shown(client, "?team=") == set(two_teams.values())


def test_someone_in_no_team_sees_every_team(client, supervisor, two_teams):
    client.force_login(supervisor)
    assert shown(client) == set(two_teams.values())


def test_the_report_page_names_the_team_and_the_rule(client, triager, make_report):
    team = Team.objects.create(slug="highways", name="Highways")
    rule = RoutingRule.objects.create(category=category("pothole"), team=team)
    report = make_report(predicted="pothole")
    services.report_verify(report=report, staff=triager, category=category("pothole"), expected_version=1)
    client.force_login(triager)
    html = client.get(reverse("console:report", args=[report.service_request_id])).content.decode()
    assert "Responsible team: <strong>Highways</strong>" in html
    assert f"rule #{rule.pk}: Pothole -&gt; Highways" in html


def _assign(client, report, **data):
    return client.post(reverse("console:assign", args=[report.service_request_id]),
                       {"version": Report.objects.get(pk=report.pk).version, "assignee": "", **data})


def test_the_assign_form_offers_the_active_teams_and_no_team(client, supervisor, make_report):
    Team.objects.create(slug="highways", name="Highways")
    Team.objects.create(slug="gone", name="Gone", active=False)
    report = make_report()
    Report.objects.filter(pk=report.pk).update(team=Team.objects.create(slug="parks", name="Parks"))
    client.force_login(supervisor)
    html = client.get(reverse("console:report", args=[report.service_request_id])).content.decode()
    select = html.split('<select name="team" id="id_team"', 1)[1].split("</select>", 1)[0]
    assert '<option value="">no team</option>' in select
    assert '<option value="highways">Highways</option>' in select
    assert '<option value="parks" selected>Parks</option>' in select
    assert "gone" not in select
    assert 'list="team-list"' not in html  # no free text any more


def test_staff_override_the_routed_team_by_hand(client, supervisor, make_report):
    highways = Team.objects.create(slug="highways", name="Highways")
    RoutingRule.objects.create(category=category("pothole"), team=highways)
    report = make_report(predicted="pothole")
    services.report_verify(report=report, staff=supervisor, category=category("pothole"), expected_version=1)
    Team.objects.create(slug="parks", name="Parks")
    client.force_login(supervisor)
    assert _assign(client, report, team="parks").status_code == 302
    report.refresh_from_db()
    assert (report.team.slug, report.routing_rule) == ("parks", None)
    html = client.get(reverse("console:report", args=[report.service_request_id])).content.decode()
    assert "Responsible team: <strong>Parks</strong> <small class=\"muted\">set by hand</small>" in html
    assert report.events.filter(action="assigned", from_value="highways", to_value="parks", actor=supervisor,
                                note="set by hand").exists()
    assert shown(client, "?status=&team=parks") == {report.service_request_id}  # the queue's team filter agrees


def test_an_unknown_team_is_a_400_and_changes_nothing(client, supervisor, make_report):
    report = make_report()
    client.force_login(supervisor)
    response = _assign(client, report, team="Roads")
    assert response.status_code == 400 and "Unknown team; choose one from the list." in response.content.decode()
    report.refresh_from_db()
    assert report.team is None and report.version == 1 and not report.events.exclude(action="created").exists()
