"""The layers hold (issue 14): the contracts in .importlinter, checked by import-linter itself."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_reports_announces_submissions_instead_of_importing_the_classifier(settings, db, unique_jpeg):
    """The classifier hears of a new report through the signal it subscribed to in ready()."""
    from django_tasks_db.models import DBTaskResult

    from reports import services

    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": settings.TASK_QUEUES}}
    settings.CLASSIFY_INLINE = False
    report = services.report_create(photo=unique_jpeg(lat=51.5, lon=-0.1)).report
    services.enqueue_classification(report.pk)
    assert DBTaskResult.objects.filter(task_path="classifier.tasks.classify_report").count() >= 1
