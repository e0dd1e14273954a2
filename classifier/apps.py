from django.apps import AppConfig


class ClassifierConfig(AppConfig):
    name = "classifier"
    verbose_name = "Classifier"

    def ready(self):
        from reports.signals import report_submitted

        from . import checks  # noqa: F401  (registers system checks)
        from .tasks import enqueue_on_submit

        report_submitted.connect(enqueue_on_submit, dispatch_uid="classifier.enqueue_on_submit")
