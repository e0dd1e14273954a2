from django.core.management.base import BaseCommand

from reports.categories import seed_categories
from reports.models import Category


class Command(BaseCommand):
    help = "Create the default issue categories that are missing (existing ones are left as staff edited them)."

    def handle(self, *args, **options):
        created = seed_categories(Category)
        self.stdout.write(f"{created} categories created, {Category.objects.count()} in total")
