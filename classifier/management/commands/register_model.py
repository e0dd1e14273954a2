from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from classifier.services import model_activate, model_register


class Command(BaseCommand):
    help = "Validate a model directory (model.onnx + metadata.json), copy it into MODEL_ROOT and register it."
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("directory", type=Path)
        parser.add_argument("--activate", action="store_true", help="also make it the active model")

    def handle(self, *args, directory, activate, **options):
        try:
            mv = model_register(source_dir=directory)
            if activate:
                mv = model_activate(version=mv.version)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        self.stdout.write(f"registered {mv.version} ({mv.status}); classes: {', '.join(mv.classes)}")
