import json

from django.core.management.base import BaseCommand, CommandError

from classifier.models import RetrainRun
from classifier.retrain import retrain


class Command(BaseCommand):
    help = ("Export verified labels, train a candidate in a subprocess, compare it with the active model on "
            "the frozen holdout and promote it if it is not worse. Safe to run from a timer. A retrain still "
            "queued (Retrain now, staff corrections) is served instead, for its own reason.")
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("--force", action="store_true", help="train even with few new labels")
        parser.add_argument("--trigger", choices=[RetrainRun.Trigger.NIGHTLY, RetrainRun.Trigger.OTHER],
                            default=RetrainRun.Trigger.NIGHTLY,
                            help="why this run happens, as the model panel shows it (default: nightly)")
        parser.add_argument("--reason", default="", help="in words, for the model panel")

    def handle(self, *args, force, trigger, reason, **options):
        reason = reason.strip()[:500] or ("nightly timer (manage.py retrain)" if trigger == RetrainRun.Trigger.NIGHTLY
                                          else "manage.py retrain")
        try:
            report = retrain(force=force, trigger=trigger, reason=reason)
        except RuntimeError as exc:  # training subprocess failed: the active model is untouched
            raise CommandError(str(exc)) from None
        self.stdout.write(json.dumps({k: report.get(k) for k in
                                      ("outcome", "reason", "candidate_version", "run_dir", "decision",
                                       "retrain_run")}, indent=2))
