"""The production path: tasks queued in PostgreSQL (django-tasks-db) and run by `db_worker`."""
import pytest
from django.core.management import call_command

from classifier.services import model_activate, model_register
from reports import services
from reports.models import Report


@pytest.mark.django_db(transaction=True)
def test_report_waits_in_the_database_queue_until_the_worker_classifies_it(settings, model_dir, unique_jpeg):
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    from django_tasks_db.models import DBTaskResult

    model_register(source_dir=model_dir("v1"))
    model_activate(version="v1")
    report = services.report_create(photo=unique_jpeg(lat=51.5, lon=-0.1)).report
    assert Report.objects.get(pk=report.pk).status == Report.Status.PENDING  # queued, not run
    assert DBTaskResult.objects.filter(task_path="classifier.tasks.classify_report").count() == 1
    call_command("db_worker", "--batch", "--no-startup-delay")
    report.refresh_from_db()
    assert report.model_version == "v1" and report.status != Report.Status.PENDING
