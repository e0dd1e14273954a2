"""Issue 13 item 13: the console map draws the server's clusters (a circle with the count) when
the view holds more reports than MAP_CLUSTER_THRESHOLD, and a click on one zooms in to its reports."""
from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from reports.services import report_create
from tests import images

pytestmark = pytest.mark.browser

# Two groups of three around the default centre (51.5074, -0.1278): one on it, one 1.4 km east.
GROUPS = [[(51.5074, -0.1278), (51.5076, -0.1275), (51.5072, -0.1274)],
          [(51.5074, -0.1078), (51.5077, -0.1075), (51.5071, -0.1080)]]


def test_console_map_draws_clusters_and_a_click_zooms_to_their_reports(live_server, page, seeded, settings):
    settings.MAP_TILE_URL = ""
    settings.MAP_CLUSTER_THRESHOLD = 3
    for n, (lat, lon) in enumerate(p for group in GROUPS for p in group):
        report_create(photo=images.jpeg(size=(96, 72), color=(n * 40 % 256, 60, 120)), latitude=lat, longitude=lon)
    user = get_user_model().objects.create_user("mia")
    user.groups.add(seeded["supervisor"])
    client = Client()
    client.force_login(user)
    page.context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value,
                               "url": live_server.url}])

    page.goto(f"{live_server.url}/console/map/?status=")
    # A function, not an expression: Playwright polls an expression with eval, which the CSP refuses.
    page.wait_for_function("() => Number(document.body.dataset.clusters || 0) >= 2")
    assert sum(int(n) for n in page.locator(".server-cluster").all_inner_texts()) == 6  # a cell may split a group
    assert "6 reports in view" in page.locator("#map-status").inner_text()

    # The biggest cluster: a group split across two cells draws its two circles overlapping, and
    # the browser would hand a pointer click to whichever lies on top, so the click is sent to
    # the cluster itself (as Enter on the focused cluster would).
    counts = [int(n) for n in page.locator(".server-cluster").all_inner_texts()]
    page.locator(".server-cluster").nth(counts.index(max(counts))).dispatch_event("click")
    page.wait_for_function("() => Number(document.body.dataset.markers || 0) == 3")
    assert page.locator(".server-cluster").count() == 0
