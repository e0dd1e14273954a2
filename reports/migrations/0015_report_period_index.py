"""Covering index for the supervisors' performance page (console/performance.py): the
period is a created_at range, and every column the page reads is in the index, so a
year of reports is one index-only scan instead of a read of the whole (wide) table.

Raw SQL with no model state, as in 0003: the console owns the query, and reports/models.py
(owned by intake) does not need to know. Built CONCURRENTLY so a council's table stays
writable while it builds.
"""
from django.db import migrations

INDEX = """
CREATE INDEX CONCURRENTLY IF NOT EXISTS report_period_idx ON reports_report (created_at)
    INCLUDE (status, final_category_id, predicted_category_id, citizen_category_id, team_id,
             triaged_at, triage_due_at, fix_due_at, closed_at)
"""


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("reports", "0014_gazetteer_places_and_search_location")]

    operations = [
        migrations.RunSQL(INDEX, "DROP INDEX CONCURRENTLY IF EXISTS report_period_idx"),
    ]
