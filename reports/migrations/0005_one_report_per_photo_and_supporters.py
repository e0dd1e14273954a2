"""One report per photo (a partial unique index on photo_sha256 among non-duplicates), and
ReportSupporter for the people who send a photo that is already reported.

Copies that concurrent uploads created before the index existed are merged first: the
earliest report that did not come from the old import channel stays the original, the
others become its duplicates (status and events as a staff merge would leave them, by
"system"). Reversing drops the index and the table; the merged copies stay merged.
"""
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models
from django.db.models import Case, Count, IntegerField, Value, When


def merge_existing_copies(apps, schema_editor) -> int:
    """Returns how many reports became duplicates. Works on historical and real models (tests)."""
    Report = apps.get_model("reports", "Report")
    ReportEvent = apps.get_model("reports", "ReportEvent")
    originals = Report.objects.filter(duplicate_of__isnull=True)
    shared = (originals.values("photo_sha256").annotate(n=Count("id")).filter(n__gt=1)
              .values_list("photo_sha256", flat=True))
    merged = 0
    for sha in list(shared):
        keeper, *copies = (originals.filter(photo_sha256=sha)
                           .annotate(imported=Case(When(channel="import", then=Value(1)), default=Value(0),
                                                   output_field=IntegerField()))
                           .order_by("imported", "created_at", "pk"))
        for copy in copies:
            old = copy.status
            Report.objects.filter(pk=copy.pk).update(status="duplicate", duplicate_of=keeper)
            ReportEvent.objects.create(report_id=copy.pk, actor_label="system", action="duplicate",
                                       field="duplicate_of", to_value=keeper.service_request_id,
                                       note="the same photo, sent at the same time")
            ReportEvent.objects.create(report_id=copy.pk, actor_label="system", action="status", field="status",
                                       from_value=old, to_value="duplicate")
            merged += 1
    return merged


class Migration(migrations.Migration):

    dependencies = [
        ('reports', '0004_report_open_set_and_reject_reason'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='ReportSupporter',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('channel', models.CharField(choices=[('web', 'Web form'), ('api', 'REST API'), ('open311', 'Open311'), ('import', 'Import')], max_length=16)),
                ('reporter_name', models.CharField(blank=True, max_length=100)),
                ('reporter_email', models.EmailField(blank=True, max_length=254)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
            ],
            options={
                'ordering': ['created_at', 'id'],
            },
        ),
        migrations.RunPython(merge_existing_copies, migrations.RunPython.noop),
        # The merge's deferred foreign-key checks must fire before the index is built.
        migrations.RunSQL("SET CONSTRAINTS ALL IMMEDIATE", migrations.RunSQL.noop),
        migrations.AddConstraint(
            model_name='report',
            constraint=models.UniqueConstraint(condition=models.Q(('duplicate_of__isnull', True)), fields=('photo_sha256',), name='report_one_original_per_photo'),
        ),
        migrations.AddField(
            model_name='reportsupporter',
            name='report',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='supporters', to='reports.report'),
        ),
    ]
