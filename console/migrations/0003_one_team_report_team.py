"""One notion of team: Report.team (set by the routing rules, or by staff by hand through
reports.assignment); the console's free-text ReportAssignment.team goes.

A non-blank free-text team naming a Team (same name, case-insensitive) becomes the report's
team, set by hand (no rule) with an `assigned` audit event from the person who typed it, when
the report has no team or the text was typed after the report's last team change; otherwise
the later routing stands. A text naming no Team is dropped: it is still in the audit trail
(the `assign` events' "person/team" values). An assignment row left with no person is deleted.
Signals do not run in migrations, so nobody is e-mailed about these.
"""
from django.db import migrations
from django.db.models import Max


def text_to_team(apps, schema_editor):
    ReportAssignment = apps.get_model("console", "ReportAssignment")
    Report = apps.get_model("reports", "Report")
    ReportEvent = apps.get_model("reports", "ReportEvent")
    Team = apps.get_model("reports", "Team")
    teams = {}
    for t in Team.objects.order_by("-active", "pk"):  # two teams of one name: the active, older one
        teams.setdefault(t.name.strip().lower(), t)
    for a in ReportAssignment.objects.exclude(team="").select_related("assigned_by").iterator():
        team = teams.get(a.team.strip().lower())
        report = Report.objects.select_related("team").get(pk=a.report_id)
        if team is None or team.pk == report.team_id:
            continue
        last_change = (ReportEvent.objects.filter(report_id=report.pk, action="assigned", field="team")
                       .aggregate(at=Max("created_at"))["at"])
        if report.team_id is not None and last_change is not None and last_change > a.assigned_at:
            continue
        ReportEvent.objects.create(
            report_id=report.pk, actor=a.assigned_by,
            actor_label=a.assigned_by.username if a.assigned_by else "system", action="assigned", field="team",
            from_value=report.team.slug if report.team_id else "", to_value=team.slug,
            note=f"set by hand (the console's team text {a.team!r}, moved by migration console 0003)")
        Report.objects.filter(pk=report.pk).update(team=team, routing_rule=None)
    ReportAssignment.objects.filter(assignee__isnull=True).delete()


class Migration(migrations.Migration):

    dependencies = [
        ("console", "0002_manage_routing_permission"),
        ("reports", "0015_report_period_index"),
    ]

    operations = [
        migrations.RunPython(text_to_team, migrations.RunPython.noop),
        migrations.RemoveIndex(model_name="reportassignment", name="console_rep_team_f8a2f3_idx"),
        migrations.RemoveField(model_name="reportassignment", name="team"),
    ]
