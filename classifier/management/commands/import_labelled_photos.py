from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from classifier.models import TrainingExample
from reports.categories import NO_ISSUE
from classifier.services import training_example_create
from inference.preprocess import IMAGE_SUFFIXES
from reports.models import Category


class Command(BaseCommand):
    help = ("Import an ImageFolder tree (<label>/<photo>) as training examples: labelled photos that "
            "train the model but are never reports, so they appear in no public feed, queue or map. "
            "Labels are category slugs or no_issue. Re-running imports only photos not seen before.")

    def add_arguments(self, parser):
        parser.add_argument("directory", type=Path)
        parser.add_argument("--source", choices=TrainingExample.Source.values, default=TrainingExample.Source.BOOTSTRAP,
                            help="bootstrap: public or curated photos (default); local: this council's own "
                                 "photos, e.g. from its old system (training weighs them higher)")
        parser.add_argument("--limit", type=int, default=None, help="at most this many photos per label")
        parser.add_argument("--train", action="store_true", help="then run `retrain --force` to make a first model")

    def handle(self, *args, directory, source, limit, train, **options):
        if not directory.is_dir():
            raise CommandError(f"{directory} is not a folder")
        if limit is not None and limit < 1:
            raise CommandError(f"--limit must be at least 1, got {limit}")
        slugs = set(Category.objects.values_list("slug", flat=True))
        created = duplicates = skipped = 0
        for label_dir in sorted(p for p in directory.iterdir() if p.is_dir()):
            label = label_dir.name
            if label != NO_ISSUE and label not in slugs:
                self.stderr.write(f"skipping {label_dir}: {label!r} is not a category slug or {NO_ISSUE}")
                continue
            files = sorted(p for p in label_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:limit]
            for path in files:
                try:
                    intake = training_example_create(photo=path.read_bytes(), label=label, source=source,
                                                     origin=str(path))
                except (ValidationError, OSError) as exc:
                    messages = exc.messages if isinstance(exc, ValidationError) else [str(exc)]
                    self.stderr.write(f"skipping {path}: {' '.join(messages)}")
                    skipped += 1
                    continue
                if intake.created:
                    created += 1
                else:
                    duplicates += 1
        self.stdout.write(f"imported {created} {source} training examples "
                          f"({duplicates} already imported or reported, {skipped} skipped)")
        if train:
            from django.core.management import call_command

            call_command("retrain", "--force", "--trigger", "other",
                         "--reason", "first model after import_labelled_photos", stdout=self.stdout)
