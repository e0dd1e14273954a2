from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from reports.retention import contact_details_erase_due, describe


class Command(BaseCommand):
    help = ("Erase reporter contact details REPORTER_CONTACT_RETENTION_DAYS after a report closed "
            "(each erasure audited); run nightly. Safe to run again.")

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="count what would be erased, change nothing")
        parser.add_argument("--batch-size", type=int, default=200, help="report ids read at a time (default 200)")

    def handle(self, *args, dry_run: bool, batch_size: int, **options):
        days = settings.REPORTER_CONTACT_RETENTION_DAYS
        if days <= 0:
            self.stdout.write("REPORTER_CONTACT_RETENTION_DAYS is 0: contact details are kept, nothing erased")
            return
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        totals = contact_details_erase_due(batch_size=batch_size, dry_run=dry_run)
        failed = totals.pop("failed", 0)
        reports = totals.pop("reports", 0)
        verb = "Would erase" if dry_run else "Erased"
        if reports:
            self.stdout.write(f"{verb} contact details of {reports} report{'s' * (reports != 1)} closed over {days} days ago: "
                              f"{describe(totals)}")
        else:
            self.stdout.write(f"No contact details to erase (reports closed over {days} days ago)")
        if failed:
            raise CommandError(f"Could not erase {failed} report{'s' * (failed != 1)} (see the log); "
                               "the next run tries again")
