import hashlib
import math
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from reports import photos, services
from reports.models import Category, Report

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".heic", ".heif"}


def jittered(lat: float, lon: float, key: str, radius_m: float = 2000) -> tuple[float, float]:
    """A stable point within `radius_m` of (lat, lon), for photos without GPS."""
    h = hashlib.sha256(key.encode()).digest()
    r = radius_m * math.sqrt(h[0] / 255) / 111_320
    a = 2 * math.pi * h[1] / 255
    return lat + r * math.cos(a), lon + r * math.sin(a) / math.cos(math.radians(lat))


class Command(BaseCommand):
    help = ("Import an ImageFolder tree (<label>/<photo>) as staff-verified reports, to bootstrap a council's "
            "history or a demo. Labels are category slugs or no_issue (imported as rejected).")

    def add_arguments(self, parser):
        parser.add_argument("directory", type=Path)
        parser.add_argument("--lat", type=float, default=settings.MAP_DEFAULT_CENTER[0],
                            help="centre for photos without GPS (degrees)")
        parser.add_argument("--lon", type=float, default=settings.MAP_DEFAULT_CENTER[1])
        parser.add_argument("--limit", type=int, default=None, help="at most this many photos per label")
        parser.add_argument("--train", action="store_true", help="then run `retrain --force` to make a first model")

    def handle(self, *args, directory, lat, lon, limit, train, **options):
        if not directory.is_dir():
            raise CommandError(f"{directory} is not a folder")
        categories = {c.slug: c for c in Category.objects.all()}
        created = skipped = 0
        for label_dir in sorted(p for p in directory.iterdir() if p.is_dir()):
            label = label_dir.name
            if label != "no_issue" and label not in categories:
                self.stderr.write(f"skipping {label_dir}: {label!r} is not a category slug or no_issue")
                continue
            files = sorted(p for p in label_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:limit]
            for path in files:
                data = path.read_bytes()
                try:
                    gps = photos.read_photo(data).gps
                    plat, plon = gps if gps else jittered(lat, lon, f"{label}/{path.name}")
                    with transaction.atomic():
                        intake = services.report_create(
                            photo=data, latitude=plat, longitude=plon, channel=Report.Channel.IMPORT,
                            location_source=Report.LocationSource.EXIF if gps else Report.LocationSource.MAP_PIN,
                            actor_label="import", classify=False)
                        if not intake.created:
                            skipped += 1
                            continue
                        report = intake.report
                        report.verified_at = timezone.now()
                        if label == "no_issue":
                            report.status = Report.Status.REJECTED
                        else:
                            report.status, report.final_category = Report.Status.CLOSED, categories[label]
                        report.save(update_fields=["status", "final_category", "verified_at", "updated_at"])
                        services.record_event(report=report, actor_label="import", action="verify",
                                              field="final_category", to_value=label, note=f"imported from {path}")
                except ValidationError as exc:
                    self.stderr.write(f"skipping {path}: {' '.join(exc.messages)}")
                    skipped += 1
                    continue
                created += 1
        self.stdout.write(f"imported {created} verified reports ({skipped} skipped)")
        if train:
            from django.core.management import call_command

            call_command("retrain", "--force", stdout=self.stdout)
