import json

from django.core.management.base import BaseCommand, CommandError

from classifier.retrain import retrain


class Command(BaseCommand):
    help = ("Export verified labels, train a candidate in a subprocess, compare it with the active model on "
            "the frozen holdout and promote it if it is not worse. Safe to run from a timer.")
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("--force", action="store_true", help="train even with few new labels")

    def handle(self, *args, force, **options):
        try:
            report = retrain(force=force)
        except RuntimeError as exc:  # training subprocess failed: the active model is untouched
            raise CommandError(str(exc)) from None
        self.stdout.write(json.dumps({k: report.get(k) for k in
                                      ("outcome", "reason", "candidate_version", "run_dir", "decision")}, indent=2))
