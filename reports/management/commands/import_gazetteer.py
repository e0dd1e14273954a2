from __future__ import annotations

from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from reports.gazetteer import places_import


class Command(BaseCommand):
    help = ("Create or update the local gazetteer (streets, places, postcodes for the report form's address "
            "search and reverse lookup) from CSV: OS Open Names files (British National Grid, with or "
            "without their header line) or a council list with the columns name,kind,lat,lon[,locality]. "
            "Importing the same file again changes nothing.")

    def add_arguments(self, parser):
        parser.add_argument("files", nargs="+", type=Path, help="CSV file(s), UTF-8")

    def handle(self, *args, files: list[Path], **options):
        for file in files:
            try:
                with file.open(encoding="utf-8-sig", newline="") as text:
                    result = places_import(lines=text, source=file.name)
            except OSError as exc:
                raise CommandError(f"cannot read {file}: {exc.strerror}") from None
            except UnicodeDecodeError:
                raise CommandError(f"{file}: not UTF-8 text. Nothing was imported from it.") from None
            except ValidationError as exc:
                raise CommandError(f"{file}: {' '.join(exc.messages)} Nothing was imported from it.") from None
            for line in result.skipped[:20]:
                self.stderr.write(f"{file.name} {line} (skipped)")
            kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(result.kinds.items())) or "nothing"
            self.stdout.write(self.style.SUCCESS(
                f"{file.name}: {result.read} row(s) read, {result.imported} place(s) imported ({kinds}), "
                f"{len(result.skipped)} skipped"))
