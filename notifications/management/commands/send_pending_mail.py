from django.core.management.base import BaseCommand

from notifications.services import messages_send_due


class Command(BaseCommand):
    help = "Send every queued e-mail that is due (retries after a mail server outage, lost tasks)."
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("--limit", type=int, default=500, help="messages at most (default 500)")

    def handle(self, *args, limit: int, **options):
        counts = messages_send_due(limit=limit)
        self.stdout.write(", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "nothing due")
