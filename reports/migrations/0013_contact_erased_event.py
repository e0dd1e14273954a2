from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('reports', '0012_category_welsh_and_report_language'),
    ]

    operations = [
        migrations.AlterField(
            model_name='reportevent',
            name='action',
            field=models.CharField(choices=[('created', 'Created'), ('classified', 'Classified'), ('routed', 'Routed'), ('spot_check', 'Spot check'), ('citizen_label', "Citizen's label"), ('verify', 'Verified'), ('correct', 'Corrected'), ('reject', 'Rejected'), ('status', 'Status changed'), ('reopen', 'Reopened'), ('duplicate', 'Marked duplicate'), ('note', 'Note'), ('assign', 'Assigned'), ('assigned', 'Assigned to team'), ('also_reported', 'Also reported'), ('citizen_update', "Reporter's update"), ('contact_erased', 'Contact details erased')], max_length=32),
        ),
    ]
