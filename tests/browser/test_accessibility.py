"""Issue 16: axe-core finds no serious or critical WCAG 2.2 AA violation on any citizen or console page,
and after a failed submit the form says so in its title and moves focus to the error summary."""
from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from reports import tokens
from reports.models import Area, Category, Report, RoutingRule, Team
from reports.services import report_transition
from tests import images
from tests.browser.conftest import axe_problems
from tests.browser.test_console import _model_versions, _report

pytestmark = pytest.mark.browser


@pytest.fixture
def tiles(settings, live_server):
    """A tile layer on loopback, so the maps carry the attribution they have in production (the tiles
    themselves are 404s: the map's controls and attribution are what is checked)."""
    settings.MAP_TILE_URL = f"{live_server.url}/static/no-tiles/{{z}}/{{x}}/{{y}}.png"
    settings.MAP_TILE_ATTRIBUTION = "&copy; OpenStreetMap contributors"


def test_citizen_pages_have_no_serious_axe_violations(live_server, page, seeded, tmp_path, tiles):
    problems = []
    page.goto(f"{live_server.url}/report/")
    page.locator("#map .leaflet-marker-icon").wait_for()  # location refused: the pin at the default centre
    problems += axe_problems(page, "form")

    page.get_by_role("button", name="Send report").click()  # no photo
    page.locator("#error-summary").wait_for()
    problems += axe_problems(page, "form with errors")

    photo = tmp_path / "pothole.jpg"
    photo.write_bytes(images.jpeg(lat=51.5033, lon=-0.1196))
    page.set_input_files("input[name=photo]", str(photo))
    page.get_by_role("button", name="Send report").click()
    page.wait_for_url(re.compile(r"/report/[A-Z0-9]{10}/thanks/$"))
    problems += axe_problems(page, "thanks")

    page.get_by_role("link", name="Follow this report").click()
    page.wait_for_url(re.compile(r"/report/[A-Z0-9]{10}/$"))
    problems += axe_problems(page, "status")

    report = Report.objects.get()
    report.final_category = Category.objects.get(slug="pothole")
    report_transition(report=report, to=Report.Status.TRIAGED, fields=["final_category"], actor_label="tina")
    report_transition(report=report, to=Report.Status.FIXED, actor_label="tina")
    manage = reverse("report-manage", args=[report.service_request_id,
                                            tokens.reporter_link_token(reference=report.service_request_id)])
    page.goto(live_server.url + manage)
    problems += axe_problems(page, "manage")
    page.get_by_role("button", name="Add update").click()  # nothing written: an error
    page.locator(".error, .errors").first.wait_for()
    problems += axe_problems(page, "manage with errors")
    page.goto(live_server.url + reverse("report-manage", args=[report.service_request_id, "forged"]))
    problems += axe_problems(page, "manage link not valid")

    page.goto(f"{live_server.url}/accessibility/")
    problems += axe_problems(page, "accessibility statement")
    for name, url in [("find a report, not found", "/report/find/?reference=ZZZZ99ZZZZ"),
                      ("address search without JavaScript", "/report/?place_query=nowhere+at+all&find_place=1"),
                      ("area alerts", "/alerts/"), ("unsubscribe link not valid", "/mail/unsubscribe/forged/")]:
        page.goto(live_server.url + url)
        problems += axe_problems(page, name)
    page.goto(f"{live_server.url}/alerts/")
    page.get_by_role("button", name="Send me a confirmation e-mail").click()  # nothing filled in
    page.wait_for_load_state()
    problems += axe_problems(page, "area alerts with errors")
    assert not problems, "\n".join(problems)


def test_console_pages_have_no_serious_axe_violations(live_server, page, seeded, tiles):
    user = get_user_model().objects.create_user("sam", password="correct-horse-9")
    user.groups.add(seeded["supervisor"])
    _model_versions(user)
    first = _report(1, lat=51.5080, lon=-0.1290, predicted="pothole", probability=0.41, citizen="graffiti")
    _report(2, lat=51.5060, lon=-0.1250, predicted="streetlight", probability=0.93, status=Report.Status.TRIAGED)
    team = Team.objects.create(name="Highways", slug="highways")
    area = Area.objects.create(name="Riverside ward", geometry="SRID=4326;MULTIPOLYGON(((-0.14 51.50, -0.12 51.50, "
                                                               "-0.12 51.52, -0.14 51.52, -0.14 51.50)))")
    rule = RoutingRule.objects.create(team=team, area=area, category=Category.objects.get(slug="pothole"))
    problems = []

    page.goto(f"{live_server.url}/console/login/")
    problems += axe_problems(page, "login")
    page.fill("#id_username", "sam")
    page.fill("#id_password", "wrong")
    page.keyboard.press("Enter")
    page.locator("p.error").wait_for()
    problems += axe_problems(page, "login with errors")
    page.fill("#id_username", "sam")
    page.fill("#id_password", "correct-horse-9")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server.url}/console/")
    page.wait_for_selector("#queue-total:has-text('report')")  # counts arrive by htmx
    problems += axe_problems(page, "queue")

    page.goto(f"{live_server.url}/console/reports/{first.service_request_id}/")
    page.locator("#report-map .leaflet-interactive").first.wait_for()
    problems += axe_problems(page, "report view")
    page.goto(f"{live_server.url}/console/reports/{first.service_request_id}/duplicates/")
    problems += axe_problems(page, "duplicates")

    page.goto(f"{live_server.url}/console/map/?status=")
    page.wait_for_function("() => Number(document.body.dataset.markers || 0) >= 2")
    problems += axe_problems(page, "map")

    for name, url in [("model panel", "/console/model/"), ("performance", "/console/performance/"),
                      ("routing", "/console/routing/"), ("new team", "/console/routing/teams/new"),
                      ("team", f"/console/routing/teams/{team.slug}/"), ("new rule", "/console/routing/rules/new"),
                      ("rule", f"/console/routing/rules/{rule.pk}/")]:
        page.goto(live_server.url + url)
        problems += axe_problems(page, name)
    page.goto(f"{live_server.url}/console/routing/teams/new")
    page.click("#routing-form button[type=submit]")  # no name: the form comes back with errors
    page.locator(".error, .errorlist").first.wait_for()
    problems += axe_problems(page, "new team with errors")
    assert not problems, "\n".join(problems)


def test_a_failed_submit_says_error_in_the_title_and_focuses_the_summary(live_server, page, seeded, shot):
    page.goto(f"{live_server.url}/report/")
    title = page.title()
    assert not title.startswith("Error")
    page.get_by_role("button", name="Send report").click()
    page.locator("#error-summary").wait_for()
    assert page.title() == "Error: " + title
    page.wait_for_function("() => document.activeElement && document.activeElement.id === 'error-summary'")
    shot(page, "citizen-form-errors")
    summary = page.locator("#error-summary")
    assert summary.get_attribute("role") == "alert"
    link = summary.get_by_role("link", name=re.compile("photo", re.I))
    page.keyboard.press("Tab")  # the summary's first link is the next stop
    assert page.evaluate("() => document.activeElement.getAttribute('href')") == link.get_attribute("href")
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.activeElement && document.activeElement.name === 'photo'")
    assert page.get_attribute("input[name=photo]", "aria-invalid") == "true"
