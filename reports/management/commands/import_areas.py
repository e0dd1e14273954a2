from __future__ import annotations

from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from reports.areas import areas_import


class Command(BaseCommand):
    help = ("Create or update named areas (wards, parks, road corridors) from a GeoJSON file of "
            "Polygon/MultiPolygon features in longitude/latitude, for routing rules.")

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path, help="a GeoJSON FeatureCollection")
        parser.add_argument("--name-field", default="name", help="the feature property naming each area")

    def handle(self, *args, file: Path, name_field: str, **options):
        try:
            data = file.read_bytes()
        except OSError as exc:
            raise CommandError(f"cannot read {file}: {exc.strerror}") from None
        try:
            areas = areas_import(data=data, name_field=name_field, source=file.name)
        except ValidationError as exc:
            raise CommandError(f"{file}: {' '.join(exc.messages)} Nothing was imported.") from None
        for area in areas:
            self.stdout.write(f"{area.name}")
        self.stdout.write(self.style.SUCCESS(f"{len(areas)} area(s) imported from {file.name}"))
