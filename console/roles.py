"""The three staff roles as Django groups. Idempotent: safe to run after every migrate."""
from __future__ import annotations

import logging

from django.apps import apps as global_apps
from django.contrib.auth.management import create_permissions
from django.contrib.auth.models import Group, Permission

logger = logging.getLogger(__name__)

TRIAGER, SUPERVISOR, ADMIN = "triager", "supervisor", "admin"

_TRIAGER_PERMS = [
    "console.view_console", "console.verify_report", "console.set_status", "console.add_note",
]
_SUPERVISOR_PERMS = _TRIAGER_PERMS + [
    "console.assign_report", "console.reopen_report", "console.merge_duplicates", "console.view_contact",
    "console.edit_thresholds", "console.retrain_model", "console.rollback_model", "console.manage_routing",
]
# Admins also need `is_staff` to log in to the Django admin (setup_roles --user NAME --role admin sets it).
_ADMIN_PERMS = _SUPERVISOR_PERMS + [
    f"reports.{action}_{model}" for model in ("category", "apikey", "team", "routingrule", "area")
    for action in ("view", "add", "change", "delete")
] + ["reports.view_report", "reports.view_reportevent"]

ROLE_PERMISSIONS: dict[str, list[str]] = {TRIAGER: _TRIAGER_PERMS, SUPERVISOR: _SUPERVISOR_PERMS, ADMIN: _ADMIN_PERMS}


def setup_roles() -> dict[str, Group]:
    """Create or update the groups so each has exactly its role's permissions."""
    for app_config in global_apps.get_app_configs():
        create_permissions(app_config, verbosity=0)
    groups = {}
    for name, codenames in ROLE_PERMISSIONS.items():
        perms = []
        for dotted in codenames:
            app_label, codename = dotted.split(".")
            perm = Permission.objects.filter(content_type__app_label=app_label, codename=codename).first()
            if perm is None:
                logger.warning("permission %s does not exist; role %s is missing it", dotted, name)
                continue
            perms.append(perm)
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.set(perms)
        groups[name] = group
    return groups


def setup_roles_after_migrate(sender, using="default", **kwargs) -> None:
    if using != "default":
        return
    setup_roles()
