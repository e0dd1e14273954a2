import json
from pathlib import Path

from django.core.management.base import BaseCommand

from classifier.training_data import export_training_set


class Command(BaseCommand):
    help = ("Export staff-verified reports as images + manifest.jsonl (path, label, report_id, split). "
            "The frozen holdout is assigned once and marked split=holdout.")

    def add_arguments(self, parser):
        parser.add_argument("out", type=Path)

    def handle(self, *args, out, **options):
        self.stdout.write(json.dumps(export_training_set(out), indent=2))
