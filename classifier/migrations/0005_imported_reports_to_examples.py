"""Reports that `import_labelled_photos` used to create (channel "import": bootstrap photos
posing as closed or rejected reports) become training examples, so they leave the public
Open311 feed, the REST/GeoJSON lists, the console queue and the map.

Each keeps its label (rejected = no_issue), its photo file (already in private storage;
training reads it through the export, which orients it and drops the metadata) and its side
of the frozen holdout. The report row, its events and its public copies are removed; the
files only once the transaction has committed. Reversing restores nothing (noop): the
examples stay training data.
"""
from django.db import migrations, transaction

IMPORT_PREFIX = "imported from "


def convert_imported_reports(apps, schema_editor) -> int:
    """Convert every channel="import" report; returns how many examples were created.
    Works on historical models (the migration) and on the real ones (tests)."""
    Report = apps.get_model("reports", "Report")
    ReportEvent = apps.get_model("reports", "ReportEvent")
    TrainingExample = apps.get_model("classifier", "TrainingExample")
    TrainingSplit = apps.get_model("classifier", "TrainingSplit")
    created = 0
    public_files: list[tuple] = []
    with transaction.atomic():
        imported = Report.objects.filter(channel="import").select_related("final_category").order_by("pk")
        for report in imported.iterator(chunk_size=500):
            if report.status == "rejected":
                label = "no_issue"
            else:
                label = report.final_category.slug if report.final_category_id else ""
            note = (ReportEvent.objects.filter(report_id=report.pk, action="verify", note__startswith=IMPORT_PREFIX)
                    .values_list("note", flat=True).first())
            example = None
            if label and not TrainingExample.objects.filter(photo_sha256=report.photo_sha256).exists():
                example = TrainingExample.objects.create(
                    photo=report.photo_original.name, photo_sha256=report.photo_sha256, label=label,
                    source="bootstrap", origin=(note or "")[len(IMPORT_PREFIX):][-500:])
                created += 1
                TrainingSplit.objects.filter(report_id=report.pk).update(report=None, example=example)
            else:  # unlabelled, or the same photo twice: nothing to train on, the file goes too
                public_files.append((report.photo_original.storage, report.photo_original.name))
            for field in (report.photo_public, report.photo_thumbnail):
                public_files.append((field.storage, field.name))
            report.delete()

        def delete_files():
            for storage, name in public_files:
                if name:
                    storage.delete(name)

        transaction.on_commit(delete_files)
    return created


class Migration(migrations.Migration):
    dependencies = [
        ("classifier", "0004_retrain_run"),
        ("reports", "0003_console_queue_index"),
        ("console", "0001_initial"),  # so deleting a report also deletes its assignment
    ]

    operations = [
        migrations.RunPython(convert_imported_reports, migrations.RunPython.noop),
    ]
