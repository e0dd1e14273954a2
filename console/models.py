"""Console-only state: who a report is assigned to, and the console's permissions."""
from django.conf import settings
from django.db import models


class Console(models.Model):
    """Holds the console's permissions; no table (Django's pattern for global permissions)."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [
            ("view_console", "Can use the staff console (queue, report view, map, exports)"),
            ("verify_report", "Can verify or correct a report's category"),
            ("set_status", "Can move a report along the status workflow"),
            ("add_note", "Can add public or private notes"),
            ("assign_report", "Can assign or reassign reports"),
            ("reopen_report", "Can reopen closed, fixed, rejected or duplicate reports"),
            ("merge_duplicates", "Can mark a report as a duplicate of another"),
            ("view_contact", "Can see reporter contact details"),
            ("edit_thresholds", "Can edit per-category auto-triage thresholds"),
            ("retrain_model", "Can start a retrain"),
            ("rollback_model", "Can roll back the active model"),
            ("manage_routing", "Can edit teams, areas and routing rules"),
        ]


class ReportAssignment(models.Model):
    """The person who handles a report. A separate table so that `reports.Report` stays owned by
    intake. The team is Report.team (reports.assignment), not kept here."""

    report = models.OneToOneField("reports.Report", on_delete=models.CASCADE, primary_key=True,
                                  related_name="assignment")
    assignee = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="console_assignments")
    assigned_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")
    assigned_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["assignee"])]

    def __str__(self) -> str:
        return f"{self.report_id} -> {self.assignee or '-'}"
