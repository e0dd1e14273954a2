"""The lifecycle moves to reports.workflow: the never-used status "new" goes (any row still
in it becomes pending classification, which classify_pending picks up; the reverse leaves
rows as they are), new reports default to pending, and ReportEvent.action is a set of
choices (the values already stored, unchanged)."""
from django.db import migrations, models


def new_to_pending(apps, schema_editor):
    Report = apps.get_model("reports", "Report")
    Report.objects.filter(status="new").update(status="pending_classification")


class Migration(migrations.Migration):

    dependencies = [
        ("reports", "0006_apikey_reports_per_hour"),
    ]

    operations = [
        migrations.RunPython(new_to_pending, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="report",
            name="status",
            field=models.CharField(
                choices=[("pending_classification", "Pending classification"), ("needs_review", "Needs review"),
                         ("triaged", "Triaged"), ("in_progress", "In progress"), ("fixed", "Fixed"),
                         ("closed", "Closed"), ("rejected", "Rejected"), ("duplicate", "Duplicate")],
                default="pending_classification", max_length=32,
            ),
        ),
        migrations.AlterField(
            model_name="reportevent",
            name="action",
            field=models.CharField(
                choices=[("created", "Created"), ("classified", "Classified"), ("routed", "Routed"),
                         ("spot_check", "Spot check"), ("citizen_label", "Citizen's label"),
                         ("verify", "Verified"), ("correct", "Corrected"), ("reject", "Rejected"),
                         ("status", "Status changed"), ("reopen", "Reopened"), ("duplicate", "Marked duplicate"),
                         ("note", "Note"), ("assign", "Assigned"), ("also_reported", "Also reported")],
                max_length=32,
            ),
        ),
    ]
