"""Classification tasks (django-tasks)."""
from django_tasks import task


@task()
def classify_report(report_id: int) -> None:
    """Classify one report. Until a model registry exists the report stays pending."""
    return None
