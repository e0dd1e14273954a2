"""Response targets: per-category targets in working days, the council's own closed days,
each report's due dates, and when it was first triaged and when it closed (backfilled
from the audit trail)."""

import django.core.validators
from django.db import migrations, models

CLOSED = ("fixed", "closed", "rejected", "duplicate")

BACKFILL = f"""
UPDATE reports_report r SET triaged_at = e.at
FROM (SELECT report_id, min(created_at) AS at FROM reports_reportevent
      WHERE field = 'status' AND to_value = 'triaged' GROUP BY report_id) e
WHERE e.report_id = r.id;
UPDATE reports_report r SET closed_at = e.at
FROM (SELECT report_id, max(created_at) AS at FROM reports_reportevent
      WHERE field = 'status' AND to_value IN {CLOSED!r} GROUP BY report_id) e
WHERE e.report_id = r.id AND r.status IN {CLOSED!r};
"""


class Migration(migrations.Migration):

    dependencies = [
        ("reports", "0009_reporter_updates"),
    ]

    operations = [
        migrations.CreateModel(
            name="NonWorkingDay",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("date", models.DateField(unique=True)),
                ("name", models.CharField(max_length=100)),
            ],
            options={"ordering": ["date"]},
        ),
        migrations.AddField(
            model_name="category",
            name="triage_target_days",
            field=models.PositiveSmallIntegerField(
                default=2, help_text="Working days to triage a report.",
                validators=[django.core.validators.MaxValueValidator(250)]),
        ),
        migrations.AddField(
            model_name="category",
            name="fix_target_days",
            field=models.PositiveSmallIntegerField(
                default=10, help_text="Working days to fix a report.",
                validators=[django.core.validators.MaxValueValidator(250)]),
        ),
        migrations.AddField(model_name="report", name="triage_due_at",
                            field=models.DateTimeField(blank=True, null=True)),
        migrations.AddField(model_name="report", name="fix_due_at",
                            field=models.DateTimeField(blank=True, null=True)),
        migrations.AddField(model_name="report", name="triaged_at",
                            field=models.DateTimeField(blank=True, null=True)),
        migrations.AddField(model_name="report", name="closed_at",
                            field=models.DateTimeField(blank=True, null=True)),
        migrations.RunSQL(BACKFILL, migrations.RunSQL.noop),
    ]
