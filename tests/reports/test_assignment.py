"""Routing to the responsible team: which rule wins (pure), and assign_team on auto-triage and
on staff verify/correct, with the `assigned` audit event; a team staff set by hand."""
from __future__ import annotations

import pytest
from django.contrib.gis.geos import MultiPolygon, Point, Polygon

from classifier.services import classify_reports, model_activate, model_register
from console import services as console_services
from reports.assignment import assign_team, match_rule
from reports.models import Area, Category, Report, ReportEvent, RoutingRule, Team
from reports.services import report_create

from ..console.conftest import category, make_report, roles, supervisor, triager  # noqa: F401 (fixtures)

POTHOLE, GRAFFITI = 1, 2


def box(lon0: float, lat0: float, lon1: float, lat1: float) -> MultiPolygon:
    """A rectangle in longitude/latitude (SRID 4326)."""
    ring = ((lon0, lat0), (lon1, lat0), (lon1, lat1), (lon0, lat1), (lon0, lat0))
    return MultiPolygon(Polygon(ring), srid=4326)


RIVERSIDE = Area(pk=10, name="Riverside ward", geometry=box(-0.2, 51.45, -0.1, 51.55))


def rule(pk: int, *, category_id: int | None = None, area: Area | None = None, priority: int = 100,
         active: bool = True) -> RoutingRule:
    return RoutingRule(pk=pk, category_id=category_id, area=area, priority=priority, active=active,
                       team=Team(pk=pk, slug=f"team-{pk}", name=f"Team {pk}"))


INSIDE = Point(-0.15, 51.5, srid=4326)  # longitude, latitude
OUTSIDE = Point(-0.05, 51.5, srid=4326)


def test_a_category_only_rule_matches_that_category_anywhere():
    rules = [rule(1, category_id=POTHOLE)]
    assert match_rule(rules, category_id=POTHOLE, point=OUTSIDE).pk == 1
    assert match_rule(rules, category_id=GRAFFITI, point=INSIDE) is None
    assert match_rule(rules, category_id=None, point=INSIDE) is None


def test_an_area_only_rule_matches_any_category_inside_the_area():
    rules = [rule(1, area=RIVERSIDE)]
    assert match_rule(rules, category_id=GRAFFITI, point=INSIDE).pk == 1
    assert match_rule(rules, category_id=None, point=INSIDE).pk == 1
    assert match_rule(rules, category_id=GRAFFITI, point=OUTSIDE) is None


def test_a_rule_with_category_and_area_needs_both():
    rules = [rule(1, category_id=POTHOLE, area=RIVERSIDE)]
    assert match_rule(rules, category_id=POTHOLE, point=INSIDE).pk == 1
    assert match_rule(rules, category_id=POTHOLE, point=OUTSIDE) is None
    assert match_rule(rules, category_id=GRAFFITI, point=INSIDE) is None


def test_the_point_on_the_area_boundary_is_inside():
    assert match_rule([rule(1, area=RIVERSIDE)], category_id=None, point=Point(-0.1, 51.5, srid=4326)).pk == 1


def test_latitude_and_longitude_are_not_swapped():
    swapped = Point(51.5, -0.15, srid=4326)
    assert match_rule([rule(1, area=RIVERSIDE)], category_id=None, point=swapped) is None


def test_the_lower_priority_number_wins_over_a_more_specific_rule():
    rules = [rule(1, category_id=POTHOLE, area=RIVERSIDE, priority=50), rule(2, category_id=POTHOLE, priority=10)]
    assert match_rule(rules, category_id=POTHOLE, point=INSIDE).pk == 2


def test_on_a_priority_tie_the_more_specific_rule_wins_in_any_order():
    rules = [rule(1), rule(2, area=RIVERSIDE), rule(3, category_id=POTHOLE),
             rule(4, category_id=POTHOLE, area=RIVERSIDE)]
    for order in (rules, rules[::-1]):
        assert match_rule(order, category_id=POTHOLE, point=INSIDE).pk == 4
    assert match_rule(rules[:3], category_id=POTHOLE, point=INSIDE).pk == 3
    assert match_rule(rules[:2], category_id=POTHOLE, point=INSIDE).pk == 2
    assert match_rule(rules[:2], category_id=POTHOLE, point=OUTSIDE).pk == 1


def test_on_a_full_tie_the_older_rule_wins():
    rules = [rule(7, category_id=POTHOLE), rule(3, category_id=POTHOLE)]
    assert match_rule(rules, category_id=POTHOLE, point=INSIDE).pk == 3


def test_an_inactive_rule_never_matches():
    assert match_rule([rule(1, active=False)], category_id=POTHOLE, point=INSIDE) is None


# --- assign_team on real reports -------------------------------------------------------------

@pytest.fixture
def routing(db):
    """Potholes in Riverside -> Highways; potholes elsewhere -> the roads contractor; graffiti
    anywhere -> National Highways (an outside body)."""
    riverside = Area.objects.create(name="Riverside ward", geometry=box(-0.2, 51.45, -0.1, 51.55))
    highways = Team.objects.create(slug="highways", name="Highways")
    contractor = Team.objects.create(slug="roadco", name="RoadCo", kind=Team.Kind.CONTRACTOR)
    national = Team.objects.create(slug="national-highways", name="National Highways",
                                   kind=Team.Kind.OUTSIDE_BODY, email="reports@nh.example")
    pothole = Category.objects.get(slug="pothole")
    return {
        "riverside": RoutingRule.objects.create(category=pothole, area=riverside, priority=10, team=highways),
        "pothole": RoutingRule.objects.create(category=pothole, priority=20, team=contractor),
        "graffiti": RoutingRule.objects.create(category=Category.objects.get(slug="graffiti"), team=national),
    }


def test_staff_verify_assigns_the_team_and_records_the_rule(routing, triager, make_report):
    report = make_report(lat=51.5, lon=-0.15, predicted="pothole")
    done = console_services.report_verify(report=report, staff=triager, category=category("pothole"),
                                          expected_version=1)
    done.refresh_from_db()
    assert (done.team.slug, done.routing_rule) == ("highways", routing["riverside"])
    event = done.events.get(action=ReportEvent.Action.ASSIGNED)
    assert (event.field, event.from_value, event.to_value, event.actor) == ("team", "", "highways", triager)
    assert event.note == f"rule #{routing['riverside'].pk}: Pothole in Riverside ward -> Highways"


def test_a_staff_correction_moves_the_report_to_the_new_categorys_team(routing, triager, make_report):
    report = make_report(lat=51.5, lon=-0.15, predicted="pothole")
    r = console_services.report_verify(report=report, staff=triager, category=category("pothole"), expected_version=1)
    console_services.report_verify(report=r, staff=triager, category=category("graffiti"), expected_version=r.version)
    report.refresh_from_db()
    assert report.team.slug == "national-highways"
    moves = [(e.from_value, e.to_value) for e in report.events.filter(action=ReportEvent.Action.ASSIGNED)]
    assert moves == [("", "highways"), ("highways", "national-highways")]


def test_outside_the_area_the_next_rule_applies(routing, triager, make_report):
    report = make_report(lat=51.5, lon=-0.05, predicted="pothole")
    console_services.report_verify(report=report, staff=triager, category=category("pothole"), expected_version=1)
    report.refresh_from_db()
    assert (report.team.slug, report.routing_rule) == ("roadco", routing["pothole"])


def test_the_same_team_again_records_nothing(routing, triager, make_report):
    report = make_report(lat=51.5, lon=-0.15, predicted="pothole")
    r = console_services.report_verify(report=report, staff=triager, category=category("pothole"), expected_version=1)
    console_services.report_verify(report=r, staff=triager, category=category("pothole"), expected_version=r.version)
    assert report.events.filter(action=ReportEvent.Action.ASSIGNED).count() == 1


def test_no_matching_rule_clears_the_team_with_an_event(routing, triager, make_report):
    report = make_report(lat=51.5, lon=-0.15, predicted="pothole")
    r = console_services.report_verify(report=report, staff=triager, category=category("pothole"), expected_version=1)
    console_services.report_verify(report=r, staff=triager, category=category("fly_tipping"),
                                   expected_version=r.version)
    report.refresh_from_db()
    assert report.team is None and report.routing_rule is None
    last = report.events.filter(action=ReportEvent.Action.ASSIGNED).last()
    assert (last.from_value, last.to_value, last.note) == ("highways", "", "no routing rule matches")


def test_a_team_set_by_hand_holds_until_the_category_changes(routing, triager, supervisor, make_report):
    report = make_report(lat=51.5, lon=-0.15, predicted="pothole")
    parks = Team.objects.create(slug="parks", name="Parks")
    r = console_services.report_assign(report=report, staff=supervisor, assignee=None, team=parks, expected_version=1)
    for _ in range(2):  # leaving review, then verified again, both with the category it had
        r = console_services.report_verify(report=r, staff=triager, category=category("pothole"),
                                           expected_version=r.version)
    report.refresh_from_db()
    assert (report.team, report.routing_rule) == (parks, None)
    console_services.report_verify(report=r, staff=triager, category=category("graffiti"), expected_version=r.version)
    report.refresh_from_db()
    assert (report.team.slug, report.routing_rule) == ("national-highways", routing["graffiti"])
    moves = [(e.from_value, e.to_value, e.note) for e in report.events.filter(action=ReportEvent.Action.ASSIGNED)]
    assert moves == [("", "parks", "set by hand"), ("parks", "national-highways", str(routing["graffiti"]))]


def test_a_rule_of_an_inactive_team_is_skipped(routing, make_report):
    Team.objects.filter(slug="highways").update(active=False)
    report = make_report(lat=51.5, lon=-0.15, predicted="pothole")
    assert assign_team(report=report).slug == "roadco"


def test_no_rule_and_no_team_records_nothing(db, make_report):
    report = make_report(predicted="pothole")
    assert assign_team(report=report) is None
    assert not report.events.filter(action=ReportEvent.Action.ASSIGNED).exists()


def test_auto_triage_assigns_the_team(db, model_dir, unique_jpeg, django_capture_on_commit_callbacks):
    """The classifier's auto-triage routes the report in the same transaction, as 'routing'."""
    Category.objects.update(auto_triage_threshold=0.0)  # any category prediction is confident
    model_activate(version=model_register(source_dir=model_dir("v1")).version)
    team = Team.objects.create(slug="riverside-team", name="Riverside team")
    RoutingRule.objects.create(area=Area.objects.create(name="Riverside", geometry=box(-0.2, 51.45, -0.1, 51.55)),
                               team=team)
    for n in range(12):  # the test model says no_issue for some photos; those go to review
        report = report_create(photo=unique_jpeg(lat=51.5, lon=-0.15), classify=False).report
        with django_capture_on_commit_callbacks(execute=True):
            classify_reports([report.pk])
        report.refresh_from_db()
        if report.status == Report.Status.TRIAGED:
            break
    else:
        pytest.fail("the test model triaged none of 12 photos")
    assert report.team == team
    event = report.events.get(action=ReportEvent.Action.ASSIGNED)
    assert (event.actor_label, event.to_value) == ("routing", "riverside-team")
    actions = list(report.events.values_list("action", flat=True))
    assert actions.index("classified") < actions.index("assigned")


def test_a_report_left_for_review_gets_no_team(db, model_dir, unique_jpeg):
    Category.objects.update(auto_triage_threshold=1.0)
    model_activate(version=model_register(source_dir=model_dir("v1")).version)
    RoutingRule.objects.create(team=Team.objects.create(slug="all", name="Everyone"))
    report = report_create(photo=unique_jpeg(lat=51.5, lon=-0.15), classify=False).report
    classify_reports([report.pk])
    report.refresh_from_db()
    assert report.status == Report.Status.NEEDS_REVIEW and report.team is None


def test_open311_names_the_responsible_team_as_agency_responsible(routing, triager, make_report, client):
    report = make_report(lat=51.5, lon=-0.15, predicted="pothole")
    console_services.report_verify(report=report, staff=triager, category=category("pothole"), expected_version=1)
    item = client.get(f"/open311/v2/requests/{report.service_request_id}.json").json()[0]
    assert item["agency_responsible"] == "Highways"
