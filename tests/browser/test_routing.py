"""Issue 15: a supervisor uploads wards, makes a team and a rule in the console; a verified
report in the ward goes to that team, and its member's queue opens on it; a supervisor
overrides the routed team from the report page."""
from __future__ import annotations

import json
import re

import pytest
from django.contrib.auth import get_user_model

from reports.models import Area, Report, RoutingRule, Team
from reports.services import report_create
from tests import images

pytestmark = pytest.mark.browser

RIVERSIDE = [[-0.14, 51.50], [-0.12, 51.50], [-0.12, 51.52], [-0.14, 51.52], [-0.14, 51.50]]


def _login(page, live_server, username: str, password: str) -> None:
    page.goto(f"{live_server.url}/console/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server.url}/console/")


def test_supervisor_sets_up_routing_and_a_verified_report_reaches_the_team(live_server, page, seeded, tmp_path):
    users = get_user_model().objects
    sam = users.create_user("sam", password="correct-horse-9")
    sam.groups.add(seeded["supervisor"])
    tina = users.create_user("tina", password="battery-staple-7")
    tina.groups.add(seeded["triager"])
    photo = images.jpeg(lat=51.51, lon=-0.13, size=(400, 300), color=(90, 80, 70))
    report = report_create(photo=photo, latitude=51.51, longitude=-0.13).report
    Report.objects.filter(pk=report.pk).update(status=Report.Status.NEEDS_REVIEW)
    wards = tmp_path / "wards.geojson"
    wards.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"WARD": "Riverside ward"},
         "geometry": {"type": "Polygon", "coordinates": [RIVERSIDE]}}]}))

    _login(page, live_server, "sam", "correct-horse-9")
    page.click("nav >> text=Routing")
    page.fill("#id_name_field", "WARD")
    page.set_input_files("#id_file", str(wards))
    page.click("#area-upload button[type=submit]")
    page.wait_for_selector("text=Imported 1 area(s)")
    assert Area.objects.get().name == "Riverside ward"

    page.click("#new-team")
    page.fill("#id_name", "Highways")
    page.fill("#id_slug", "highways")
    page.get_by_label("tina").check()
    page.click("#routing-form button[type=submit]")
    page.wait_for_selector("#team-highways")

    page.click("#new-rule")
    page.select_option("#id_category", label="Pothole")
    page.select_option("#id_area", label="Riverside ward")
    page.select_option("#id_team", label="Highways")
    page.fill("#id_priority", "10")
    page.click("#routing-form button[type=submit]")
    rule = RoutingRule.objects.get()
    page.wait_for_selector(f"#rule-{rule.pk}")

    page.goto(f"{live_server.url}/console/reports/{report.service_request_id}/")
    page.click("#verify-form button[value=pothole]")
    page.wait_for_url(re.compile(r"/console/"))
    report.refresh_from_db()
    assert report.team == Team.objects.get(slug="highways")
    page.goto(f"{live_server.url}/console/reports/{report.service_request_id}/")
    assert "Highways" in page.inner_text("#routed-to")
    assert f"rule #{rule.pk}" in page.inner_text("#routed-to")

    dialogs = []
    page.once("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))
    page.goto(f"{live_server.url}/console/routing/")
    page.click("#team-highways button.danger")  # asks first; the rule still uses the team
    assert "still used" in page.inner_text("#routing-error")
    assert dialogs == ["Delete team Highways?"] and Team.objects.filter(slug="highways").exists()

    page.click("form.logout button")
    _login(page, live_server, "tina", "battery-staple-7")
    assert page.eval_on_selector("#id_team", "s => s.value") == "mine"
    page.select_option("#id_status", value="")
    page.wait_for_selector(f"text={report.service_request_id}")


def test_a_supervisor_overrides_the_routed_team_from_the_report_page(live_server, page, seeded):
    sam = get_user_model().objects.create_user("sam", password="correct-horse-9")
    sam.groups.add(seeded["supervisor"])
    highways, parks = Team.objects.create(slug="highways", name="Highways"), Team.objects.create(slug="parks",
                                                                                                name="Parks")
    report = report_create(photo=images.jpeg(size=(400, 300), color=(70, 90, 80)), latitude=51.51,
                           longitude=-0.13).report
    Report.objects.filter(pk=report.pk).update(status=Report.Status.TRIAGED, team=highways,
                                                routing_rule=RoutingRule.objects.create(team=highways))

    _login(page, live_server, "sam", "correct-horse-9")
    page.goto(f"{live_server.url}/console/reports/{report.service_request_id}/")
    assert page.eval_on_selector("#id_team", "s => s.value") == "highways"
    page.select_option("#id_team", label="Parks")
    page.click("form.assign button[type=submit]")
    page.wait_for_selector("text=assignment saved.")
    assert "Parks" in page.inner_text("#routed-to") and "set by hand" in page.inner_text("#routed-to")
    assert "highways → parks" in page.inner_text("#events")
    report.refresh_from_db()
    assert (report.team, report.routing_rule) == (parks, None)
