"""The queue puts reports past their response target first, with a badge, and filters them."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from console.selectors import QueueFilters, report_queue
from reports.models import Report

pytestmark = pytest.mark.django_db
S = Report.Status


@pytest.fixture
def three(make_report):
    """Least confident first would show a, b, late; `late` is two days past its triage target."""
    now = timezone.now()
    a = make_report(probability=0.1, triage_due_at=now + timedelta(days=1))
    b = make_report(probability=0.2)
    late = make_report(probability=0.9, triage_due_at=now - timedelta(days=1, hours=2))
    return a, b, late


def _refs(page):
    return [r.service_request_id for r in page.reports]


def test_overdue_reports_come_first_in_every_sort(three):
    a, b, late = three
    for sort in ("confidence", "oldest", "newest"):
        assert _refs(report_queue(filters=QueueFilters(sort=sort)))[0] == late.service_request_id, sort
    assert _refs(report_queue(filters=QueueFilters())) == [late.service_request_id, a.service_request_id,
                                                           b.service_request_id]


def test_paging_crosses_from_overdue_to_the_rest_without_gaps(three):
    seen, cursor = [], ""
    for _ in range(5):
        page = report_queue(filters=QueueFilters(), cursor=cursor, page_size=1)
        seen += _refs(page)
        if not page.next_cursor:
            break
        cursor = page.next_cursor
    assert seen == [r.service_request_id for r in (three[2], three[0], three[1])]


def test_the_fix_target_counts_once_triaged_and_none_once_closed(make_report):
    past = timezone.now() - timedelta(days=3)
    triaged = make_report(status=S.TRIAGED, triage_due_at=past - timedelta(days=5), fix_due_at=past)
    make_report(status=S.TRIAGED, triage_due_at=past)  # triaged in time, fix not due yet (none set)
    make_report(status=S.FIXED, fix_due_at=past)
    assert _refs(report_queue(filters=QueueFilters(status="", overdue=True))) == [triaged.service_request_id]


def test_queue_shows_the_badge_and_the_overdue_filter(client, triager, three):
    client.force_login(triager)
    html = client.get(reverse("console:queue")).content.decode()
    assert html.count("overdue 2 days") == 1  # a day and two hours, rounded up
    assert 'name="overdue"' in html
    html = client.get(reverse("console:queue"), {"status": "needs_review", "overdue": "on"}).content.decode()
    assert three[2].service_request_id in html and three[0].service_request_id not in html


def test_j_and_k_cross_from_overdue_to_the_rest_and_back(three):
    """The queue reads overdue reports and the rest as two sections; the neighbours step across."""
    from console.selectors import queue_neighbour

    a, b, late = three
    for sort in ("confidence", "oldest", "newest"):
        filters = QueueFilters(sort=sort)
        order = _refs(report_queue(filters=filters))
        assert order[0] == late.service_request_id, sort
        by_ref = {r.service_request_id: r for r in three}
        for here, there in zip(order, order[1:]):
            assert queue_neighbour(report=by_ref[here], filters=filters).service_request_id == there, sort
            assert queue_neighbour(report=by_ref[there], filters=filters, previous=True).service_request_id == here
        assert queue_neighbour(report=by_ref[order[-1]], filters=filters) is None
        assert queue_neighbour(report=by_ref[order[0]], filters=filters, previous=True) is None


def test_few_or_many_overdue_reports_page_in_the_same_order(make_report):
    """With one status the overdue section is read whole when it is small (_all_if_few) and
    walked when it is not; with page_size 1 a page asks for two, so four overdue reports take
    the walk until the last page of the section, and both give the queue order, J/K included."""
    from console.selectors import queue_neighbour

    now = timezone.now()
    late = [make_report(probability=p, triage_due_at=now - timedelta(hours=h))
            for p, h in ((0.7, 1), (0.3, 5), (0.5, 2), (0.3, 9))]
    on_time = [make_report(probability=p, triage_due_at=now + timedelta(days=1)) for p in (0.1, 0.6)]
    expected = [r.service_request_id for r in sorted(late, key=lambda r: (r.predicted_probability, r.created_at))]
    expected += [r.service_request_id for r in on_time]
    for filters, want in ((QueueFilters(), expected), (QueueFilters(overdue=True), expected[:4]),
                          (QueueFilters(status=""), expected)):
        seen, cursor = [], ""
        for _ in range(10):
            page = report_queue(filters=filters, cursor=cursor, page_size=1)
            seen += _refs(page)
            if not page.next_cursor:
                break
            cursor = page.next_cursor
        assert seen == want, filters
        assert _refs(report_queue(filters=filters, page_size=50)) == want
        by_ref = {r.service_request_id: r for r in late + on_time}
        for here, there in zip(want, want[1:]):
            assert queue_neighbour(report=by_ref[here], filters=filters).service_request_id == there
            assert queue_neighbour(report=by_ref[there], filters=filters, previous=True).service_request_id == here
    # A report that has just stopped being overdue (an overdue-only queue's J/K from it).
    assert queue_neighbour(report=on_time[0], filters=QueueFilters(overdue=True)) is None
    assert queue_neighbour(report=on_time[0], filters=QueueFilters(overdue=True),
                           previous=True).service_request_id == expected[3]


def test_the_due_date_index_holds_the_queue_s_expression():
    """report_queue_due_idx helps only while its expression is the queue's, text for text."""
    import importlib

    from console.selectors import DUE_SQL

    migration = importlib.import_module("reports.migrations.0016_report_due_index_and_category_stats")
    assert DUE_SQL.replace('"reports_report".', "").replace('"', "") == migration.DUE
