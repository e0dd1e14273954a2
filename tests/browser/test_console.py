"""Issue 5: a supervisor triages with the keyboard alone, merges a duplicate and sees the map."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from reports.models import Category, Report
from reports.services import report_create
from tests import images

pytestmark = pytest.mark.browser
S = Report.Status
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def _report(n: int, *, lat: float, lon: float, predicted: str, probability: float, status=S.NEEDS_REVIEW,
            citizen: str | None = None, phash: str | None = None, description: str = "") -> Report:
    photo = images.jpeg(lat=lat + 0.0003, lon=lon, size=(800, 600), color=((n * 53) % 256, (n * 97) % 256, 90))
    report = report_create(photo=photo, latitude=lat, longitude=lon, category=citizen,
                           description=description or f"Report number {n}").report
    second = "graffiti" if predicted != "graffiti" else "fly_tipping"
    fields = dict(status=status, predicted_label=predicted, predicted_probability=probability,
                  predicted_category=Category.objects.filter(slug=predicted).first(),
                  predicted_top_k=[[predicted, probability], [second, round((1 - probability) * 0.7, 3)],
                                   ["other", round((1 - probability) * 0.3, 3)]],
                  model_version="demo-1", citizen_model_disagree=bool(citizen and citizen != predicted))
    if phash:
        fields["photo_phash"] = phash
    Report.objects.filter(pk=report.pk).update(**fields)
    return Report.objects.get(pk=report.pk)


def _model_versions(user) -> None:
    """Registry rows as the classifier would leave them (no ONNX files needed to show the panel)."""
    import datetime as dt

    from django.utils import timezone

    from classifier.models import ModelVersion

    now = timezone.now()
    ModelVersion.objects.create(version="demo-0", path="demo-0", sha256="0" * 64, classes=["pothole"],
                                status="retired", metrics={"macro_f1": 0.74, "accuracy": 0.8},
                                activated_at=now - dt.timedelta(days=9))
    ModelVersion.objects.create(version="demo-1", path="demo-1", sha256="1" * 64, classes=["pothole"],
                                status="active", metrics={"macro_f1": 0.83, "accuracy": 0.88},
                                promotion_report={"decision": "promoted", "macro_f1_delta": 0.09},
                                activated_by=user, activated_at=now - dt.timedelta(hours=2))


def _at(report: Report):
    return re.compile(rf"/console/reports/{report.service_request_id}/(\?.*)?$")


def test_keyboard_triage_duplicate_merge_and_map(live_server, page, seeded, shot, settings):
    settings.MAP_TILE_URL = ""
    user = get_user_model().objects.create_user("sam", password="correct-horse-9")
    user.groups.add(seeded["supervisor"])
    _model_versions(user)
    # Around the default map centre (51.5074, -0.1278), a few hundred metres apart.
    first = _report(1, lat=51.5080, lon=-0.1290, predicted="pothole", probability=0.41,
                    description="Pothole outside number 12")
    second = _report(2, lat=51.5060, lon=-0.1250, predicted="streetlight", probability=0.48, citizen="streetlight")
    third = _report(3, lat=51.5095, lon=-0.1230, predicted="pothole", probability=0.55, citizen="graffiti",
                    description="Tag sprayed on the bus shelter")
    original = _report(5, lat=51.5040, lon=-0.1310, predicted="fly_tipping", probability=0.93, status=S.TRIAGED,
                       phash="f0f0f0f0f0f0f0f0")
    dup = _report(4, lat=51.50402, lon=-0.13101, predicted="fly_tipping", probability=0.62,
                  phash="f0f0f0f0f0f0f0f1", description="Mattress dumped again")

    page.goto(f"{live_server.url}/console/")
    page.wait_for_url(re.compile(r"/console/login/"))
    page.keyboard.type("sam")
    page.keyboard.press("Tab")
    page.keyboard.type("correct-horse-9")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server.url}/console/")
    assert page.locator("table.queue tbody tr").count() == 4
    page.wait_for_selector("#queue-total:has-text('4 reports')")  # counts arrive by htmx
    assert page.locator("#count-disagree").inner_text() == "1"
    shot(page, "console-queue", full_page=True)

    page.keyboard.press("j")  # open the first (least confident) report
    page.wait_for_url(_at(first))
    shot(page, "console-report", full_page=True)
    page.keyboard.press("Enter")  # accept the model: pothole
    page.wait_for_url(_at(second))
    page.keyboard.press("Enter")  # accept the model: street light
    page.wait_for_url(_at(third))
    page.keyboard.press("2")  # correct the model: graffiti is category 2
    page.wait_for_url(_at(dup))

    page.keyboard.press("d")  # duplicate candidates
    page.wait_for_url(re.compile(f"/console/reports/{dup.service_request_id}/duplicates/"))
    assert page.locator("figure.dup").nth(1).inner_text().count(original.service_request_id)
    shot(page, "console-duplicates", full_page=True)
    page.keyboard.press("m")  # merge into the best candidate
    page.wait_for_url(_at(dup))
    assert "duplicate of " + original.service_request_id in page.content()

    page.goto(f"{live_server.url}/console/map/?status=")
    # A function, not an expression: Playwright polls an expression with eval, which the CSP refuses.
    page.wait_for_function("() => Number(document.body.dataset.markers || 0) >= 5")
    assert page.locator(".marker-cluster, path.leaflet-interactive").count() >= 1
    shot(page, "console-map")

    page.goto(f"{live_server.url}/console/model/")
    shot(page, "console-model", full_page=True)

    labels = {r.service_request_id: (r.status, r.final_category.slug if r.final_category else None,
                                     r.verified_by.username if r.verified_by else None)
              for r in Report.objects.select_related("final_category", "verified_by")}
    assert labels[first.service_request_id] == (S.TRIAGED, "pothole", "sam")
    assert labels[second.service_request_id] == (S.TRIAGED, "streetlight", "sam")
    assert labels[third.service_request_id] == (S.TRIAGED, "graffiti", "sam")
    assert labels[original.service_request_id] == (S.TRIAGED, None, None)
    dup.refresh_from_db()
    assert (dup.status, dup.duplicate_of_id) == (S.DUPLICATE, original.pk)
    third.refresh_from_db()
    assert third.events.filter(action="correct", from_value="", to_value="graffiti").exists()
