"""Each API key gets its own submission limit (reports.throttle), instead of its IP's."""
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("reports", "0005_one_report_per_photo_and_supporters"),
    ]

    operations = [
        migrations.AddField(
            model_name="apikey",
            name="reports_per_hour",
            field=models.PositiveIntegerField(default=1000),
        ),
    ]
