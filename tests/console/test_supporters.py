"""Other people who sent the same photo (ReportSupporter): "N people reported this" in the queue
row (one query for the page, however many rows have supporters) and the count and times on the
report page, never their contact details."""
from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from reports.models import Report
from reports.services import report_create
from tests import images

pytestmark = pytest.mark.django_db


def reported_by(people: int, *, lat: float) -> Report:
    """A report sent by `people` people: the same photo through the real intake, each with their own address."""
    photo = images.jpeg(size=(96, 72), color=(int(lat * 1000) % 256, 40, 200))
    for n in range(people):
        intake = report_create(photo=photo, latitude=lat, longitude=-0.12, reporter_name=f"Person {n}",
                               reporter_email=f"person{n}@example.org")
    Report.objects.filter(pk=intake.report.pk).update(status=Report.Status.NEEDS_REVIEW)
    return intake.report


def queue_queries(client) -> tuple[str, int]:
    with CaptureQueriesContext(connection) as ctx:
        html = client.get(reverse("console:queue")).content.decode()
    return html, len(ctx.captured_queries)


def test_the_queue_row_says_how_many_people_reported_it_in_one_query(client, supervisor):
    three = reported_by(3, lat=51.501)
    alone = reported_by(1, lat=51.502)
    client.force_login(supervisor)
    html, queries = queue_queries(client)
    row = html.split(f'class="ref">{three.service_request_id}<', 1)[1].split("</tr>", 1)[0]
    assert "3 people reported this" in row
    assert "people reported this" not in html.split(f'class="ref">{alone.service_request_id}<', 1)[1].split("</tr>")[0]
    for n in range(4):  # more rows with supporters: not one query more
        reported_by(2, lat=51.51 + n / 100)
    html, more = queue_queries(client)
    assert html.count("2 people reported this") == 4 and more == queries


def test_the_report_page_lists_when_others_reported_it_but_not_who(client, supervisor):
    report = reported_by(3, lat=51.503)
    client.force_login(supervisor)  # may see the reporter's contact details
    html = client.get(reverse("console:report", args=[report.service_request_id])).content.decode()
    section = html.split('id="supporters-h"', 1)[1].split("</ul>", 1)[0]
    assert "3 people reported this" in section and section.count("<time") == 2 and "via Web form" in section
    assert "person0@example.org" in html  # the reporter, as before
    for n in (1, 2):
        assert f"person{n}@example.org" not in html and f"Person {n}" not in html
