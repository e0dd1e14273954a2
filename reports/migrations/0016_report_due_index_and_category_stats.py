"""What the staff queue's overdue sections need from the planner (console.selectors._section).

- `report_queue_due_idx` on (status, the due date that applies now): the expression is
  console.selectors.DUE_SQL, text for text (it needs no now(), so it can be indexed; "overdue"
  itself cannot). console.selectors._all_if_few reads a status's overdue reports in this
  order, at most a page and one, so a status with almost none overdue costs a few index
  entries instead of a walk of report_queue_conf_idx through the whole status (the planner
  cannot see that few are overdue: it takes status and due date as independent).
- Statistics (no index, nothing to maintain on writes) on the current category's COALESCE,
  which the category filter compares: without them the planner guessed 1 report in 200 per
  category where 1 in 8 was true, and sorted a parallel seq scan instead of walking
  report_conf_idx.

Building the index on 100,000 reports took about 0.3 s on the shared 2-vCPU VM (a plain
CREATE INDEX, which blocks writes to the table for that long; CONCURRENTLY would not, but
cannot run in a migration's transaction), and the ANALYZE that fills both statistics 1.8 s (it
blocks no reads or writes; without it they would wait for autovacuum's next analyze).
"""
from django.db import migrations

DUE = ("CASE WHEN status IN ('needs_review', 'pending_classification') THEN triage_due_at "
       "WHEN status IN ('closed', 'duplicate', 'fixed', 'rejected') THEN NULL ELSE fix_due_at END")
FORWARD = f"""
CREATE INDEX IF NOT EXISTS report_queue_due_idx ON reports_report (status, ({DUE}));
CREATE STATISTICS IF NOT EXISTS report_current_category_stats
    ON (COALESCE(final_category_id, predicted_category_id, citizen_category_id)) FROM reports_report;
ANALYZE reports_report;
"""
BACKWARD = "DROP STATISTICS IF EXISTS report_current_category_stats; DROP INDEX IF EXISTS report_queue_due_idx;"


class Migration(migrations.Migration):
    dependencies = [("reports", "0015_report_period_index")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
