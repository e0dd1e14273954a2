"""`{% overdue_badge report %}`: "overdue 2 days" on a report past its response target."""
from __future__ import annotations

from django import template
from django.utils.html import format_html
from django.utils.timezone import localtime

from reports import workflow
from reports.targets import current_due, overdue_days

register = template.Library()


@register.simple_tag
def overdue_badge(report) -> str:
    days = overdue_days(report)
    if days is None:
        return ""
    which = "triage" if report.status in workflow.INTAKE else "fix"
    return format_html('<span class="flag overdue" title="Due to {} by {}">overdue {} day{}</span>', which,
                       f"{localtime(current_due(report)):%a %d %b %Y}", days, "" if days == 1 else "s")
