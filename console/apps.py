from django.apps import AppConfig
from django.db.models.signals import post_migrate


class ConsoleConfig(AppConfig):
    name = "console"
    verbose_name = "Staff console"

    def ready(self) -> None:
        # Groups are data that `flush` (and TransactionTestCase) wipes; like Django's
        # own permissions they are re-created after every migrate/flush.
        # `manage.py setup_roles` does the same on demand.
        from .roles import setup_roles_after_migrate

        post_migrate.connect(setup_roles_after_migrate, sender=self, dispatch_uid="console.setup_roles")
