"""Index for the staff console's default queue (console.selectors.CONFIDENCE_SQL).

Raw SQL with no model state: the expression must match the console's ORDER BY
text exactly, and reports/models.py (owned by intake) does not need to know.
"""
from django.db import migrations

INDEX = """
CREATE INDEX IF NOT EXISTS report_queue_conf_idx ON reports_report
    (status, COALESCE(predicted_probability, -1), created_at, id);
CREATE INDEX IF NOT EXISTS report_conf_idx ON reports_report
    (COALESCE(predicted_probability, -1), created_at, id);
"""


class Migration(migrations.Migration):
    dependencies = [("reports", "0002_seed_and_append_only_events")]

    operations = [
        migrations.RunSQL(INDEX, "DROP INDEX IF EXISTS report_queue_conf_idx; DROP INDEX IF EXISTS report_conf_idx;"),
    ]
