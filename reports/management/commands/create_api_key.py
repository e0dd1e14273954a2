from django.core.management.base import BaseCommand

from reports.apikeys import api_key_create


class Command(BaseCommand):
    help = "Create an Open311 API key and print it once (only its hash is stored)."

    def add_arguments(self, parser):
        parser.add_argument("name", help="who the key is for, e.g. 'FixMyStreet'")

    def handle(self, *args, name, **options):
        _, key = api_key_create(name=name)
        self.stdout.write(key)
