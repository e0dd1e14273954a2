from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from classifier.services import model_activate


class Command(BaseCommand):
    help = "Make a registered model version the active one (pending reports are then classified)."
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("version")

    def handle(self, *args, version, **options):
        try:
            mv = model_activate(version=version)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        self.stdout.write(f"active model: {mv.version}")
