from django.core.management.base import BaseCommand

from classifier import registry
from classifier.services import classify_pending


class Command(BaseCommand):
    help = "Classify every report still pending classification (e.g. after a model outage)."
    requires_system_checks = []

    def handle(self, *args, **options):
        registry.active_classifier(force_check=True)
        done = classify_pending()
        self.stdout.write(f"classified {done} reports")
