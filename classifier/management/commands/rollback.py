from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from classifier.services import model_rollback


class Command(BaseCommand):
    help = "Reactivate the previously active model; the current one is marked rejected."
    requires_system_checks = []

    def handle(self, *args, **options):
        try:
            mv = model_rollback()
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        self.stdout.write(f"rolled back; active model: {mv.version}")
