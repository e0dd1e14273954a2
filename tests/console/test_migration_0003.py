"""console 0003: the free-text team moves to Report.team where it names a Team, else is dropped.

Run on the state just before the migration: the column it removes is put back inside the
test's transaction (PostgreSQL DDL rolls back with it), the rows are written through the
historical models, and the migration's own function does the move."""
from __future__ import annotations

import datetime as dt
import importlib

import pytest
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.utils import timezone

from reports.models import Report, Team

pytestmark = pytest.mark.django_db
migration = importlib.import_module("console.migrations.0003_one_team_report_team")


@pytest.fixture
def before_0003(db):
    """The apps as they were before console 0003, with its column back in the table."""
    with connection.cursor() as cur:
        cur.execute("ALTER TABLE console_reportassignment ADD COLUMN team varchar(100) NOT NULL DEFAULT ''")
    return MigrationLoader(connection).project_state(("console", "0003_one_team_report_team"), at_end=False).apps


def test_texts_naming_a_team_move_to_report_team_and_the_rest_are_dropped(before_0003, supervisor, triager,
                                                                        make_report):
    roads, parks = Team.objects.create(slug="roads", name="Roads"), Team.objects.create(slug="parks", name="Parks")
    named, unknown, routed_later, person_only = (make_report(lat=51.5 + i / 1000) for i in range(4))
    Report.objects.filter(pk=routed_later.pk).update(team=parks)
    ReportAssignment = before_0003.get_model("console", "ReportAssignment")
    typed = timezone.now() - dt.timedelta(days=1)
    for report, text, assignee in ((named, " roads ", None), (unknown, "The crew", triager),
                                   (routed_later, "ROADS", None), (person_only, "", None)):
        ReportAssignment.objects.create(report_id=report.pk, team=text, assignee_id=assignee and assignee.pk,
                                        assigned_by_id=supervisor.pk, assigned_at=typed)
    before_0003.get_model("reports", "ReportEvent").objects.create(  # routed to Parks after the text was typed
        report_id=routed_later.pk, actor_label="routing", action="assigned", field="team", to_value="parks")

    migration.text_to_team(before_0003, None)

    named.refresh_from_db(), unknown.refresh_from_db(), routed_later.refresh_from_db()
    assert (named.team, named.routing_rule) == (roads, None)
    event = named.events.get(action="assigned")
    assert (event.actor, event.from_value, event.to_value) == (supervisor, "", "roads")
    assert event.note.startswith("set by hand")
    assert unknown.team is None and not unknown.events.filter(action="assigned").exists()
    assert routed_later.team == parks  # the later routing stands
    assert sorted(ReportAssignment.objects.values_list("report_id", flat=True)) == [unknown.pk]  # a person: kept
