# Training examples: labelled photos that are training data only, and their side of the frozen holdout.

import django.db.models.deletion
import reports.models
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('classifier', '0002_trainingsplit'),
        ('reports', '0003_console_queue_index'),
    ]

    operations = [
        migrations.AlterField(
            model_name='trainingsplit',
            name='report',
            field=models.OneToOneField(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='training_split', to='reports.report'),
        ),
        migrations.CreateModel(
            name='TrainingExample',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('photo', models.FileField(max_length=255, storage=reports.models.private_storage, upload_to='')),
                ('photo_sha256', models.CharField(max_length=64, unique=True)),
                ('label', models.CharField(max_length=64)),
                ('source', models.CharField(choices=[('bootstrap', 'Bootstrap (public or curated photos)'), ('local', "Local (this council's own photos)")], default='bootstrap', max_length=16)),
                ('origin', models.CharField(blank=True, max_length=500)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
            ],
            options={
                'ordering': ['pk'],
                'indexes': [models.Index(fields=['source', 'label'], name='classifier__source_30992d_idx')],
            },
        ),
        migrations.AddField(
            model_name='trainingsplit',
            name='example',
            field=models.OneToOneField(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='training_split', to='classifier.trainingexample'),
        ),
        migrations.AddConstraint(
            model_name='trainingsplit',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('example__isnull', True), ('report__isnull', False)), models.Q(('example__isnull', False), ('report__isnull', True)), _connector='OR'), name='training_split_report_xor_example'),
        ),
    ]
