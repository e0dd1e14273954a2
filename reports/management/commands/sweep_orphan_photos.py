from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from reports.orphans import PHOTO_DIRECTORIES, orphan_photos_sweep


class Command(BaseCommand):
    help = ("Delete photo objects that no row refers to, left by a process killed mid-upload, once older "
            f"than --older-than hours (folders: {', '.join(d for ds in PHOTO_DIRECTORIES.values() for d in ds)}); "
            "run nightly. Safe to run again.")

    def add_arguments(self, parser):
        parser.add_argument("--older-than", type=float, default=24, metavar="HOURS",
                            help="only objects last modified this many hours ago or more (default 24; at least 1): "
                                 "younger ones may belong to an upload still in flight")
        parser.add_argument("--dry-run", action="store_true", help="count (and with -v 2 list) what would go, delete nothing")

    def handle(self, *args, older_than: float, dry_run: bool, verbosity: int, **options):
        if not older_than >= 1:
            raise CommandError("--older-than must be at least 1 hour: the cutoff protects uploads in flight")
        sweep = orphan_photos_sweep(cutoff=timezone.now() - timedelta(hours=older_than), dry_run=dry_run)
        if verbosity >= 2:
            for alias, name in sweep.orphans:
                self.stdout.write(f"  {alias}: {name}")
        verb = "Would delete" if dry_run else "Deleted"
        self.stdout.write(f"{verb} {len(sweep.orphans) - sweep.failed} orphan photo object"
                          f"{'s' * (len(sweep.orphans) - sweep.failed != 1)} older than {older_than:g} hours "
                          f"({sweep.describe()})")
        if sweep.failed:
            raise CommandError(f"Could not delete {sweep.failed} orphan photo object{'s' * (sweep.failed != 1)} "
                               "(see the log); the next run tries again")
