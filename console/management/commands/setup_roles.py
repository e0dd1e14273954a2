from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from console.roles import ADMIN, ROLE_PERMISSIONS, setup_roles


class Command(BaseCommand):
    help = "Create the triager/supervisor/admin groups; optionally put a user in one."

    def add_arguments(self, parser):
        parser.add_argument("--user", help="username to add to --role")
        parser.add_argument("--role", choices=sorted(ROLE_PERMISSIONS))

    def handle(self, *args, user=None, role=None, **options):
        groups = setup_roles()
        for name, group in groups.items():
            self.stdout.write(f"{name}: {group.permissions.count()} permissions")
        if bool(user) != bool(role):
            raise CommandError("Give both --user and --role, or neither.")
        if user:
            try:
                account = get_user_model().objects.get(username=user)
            except get_user_model().DoesNotExist:
                raise CommandError(f"No user {user!r}; create it with `manage.py createsuperuser` "
                                   "or the admin first.") from None
            account.groups.add(groups[role])
            if role == ADMIN and not account.is_staff:
                account.is_staff = True  # the Django admin requires it
                account.save(update_fields=["is_staff"])
            self.stdout.write(f"{user} is now in {role}")
