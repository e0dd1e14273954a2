"""Which messages an audit event causes, to whom, and what they say.

Only the report's own reporter (and, when it is fixed or closed, the people who
"also reported" it) hear about a report, each in a message of their own: no
message names another person. Only public notes are ever quoted; a private
staff note is never read here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urljoin

from django.conf import settings
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse
from django.utils import translation
from django.utils.translation import gettext_lazy as _

from reports.models import Report, ReportEvent, Team
from reports.tokens import reporter_link_token

from .models import OutgoingMessage, Unsubscribe
from .tokens import unsubscribe_token

Kind = OutgoingMessage.Kind
A = ReportEvent.Action
S = Report.Status

# A status event to one of these tells the citizen.
STATUS_KINDS = {S.TRIAGED: Kind.TRIAGED, S.IN_PROGRESS: Kind.IN_PROGRESS, S.FIXED: Kind.FIXED,
                S.CLOSED: Kind.CLOSED, S.REJECTED: Kind.REJECTED, S.DUPLICATE: Kind.DUPLICATE}
# Also told to the people who sent the same photo later (reports.ReportSupporter).
SUPPORTER_KINDS = {Kind.FIXED, Kind.CLOSED}
SUBJECTS = {
    Kind.CONFIRMATION: _("We have your report {ref}"),
    Kind.TRIAGED: _("Report {ref} has been checked"),
    Kind.ASSIGNED: _("Report {ref} is being handled by {team}"),
    Kind.IN_PROGRESS: _("Work has started on report {ref}"),
    Kind.FIXED: _("Report {ref} is fixed"),
    Kind.CLOSED: _("Report {ref} is closed"),
    Kind.DUPLICATE: _("Report {ref} was already reported as {original}"),
    Kind.REJECTED: _("Report {ref}: we cannot deal with it"),
    Kind.NOTE: _("An update on report {ref}"),
    Kind.FORWARD: "Report {ref} from {council} for {team}",  # to the council's partners: its own language
}


@dataclass
class Draft:
    """A message to one address, before it is stored."""

    to: str
    kind: str
    subject: str
    text: str
    html: str
    headers: dict = field(default_factory=dict)


def absolute(path: str) -> str:
    return urljoin(settings.SITE_URL.rstrip("/") + "/", path.lstrip("/"))


def manage_url(report: Report) -> str:
    """The reporter's private link (reports.tokens); only ever sent to the reporter."""
    ref = report.service_request_id
    token = reporter_link_token(reference=ref)
    try:
        path = reverse("report-manage", args=[ref, token])
    except NoReverseMatch:  # the manage page is built separately; its path is fixed by contract
        path = f"/report/{ref}/manage/{token}/"
    return absolute(path)


def unsubscribe_url(*, email: str, report: Report | None) -> str:
    token = unsubscribe_token(email=email, reference=report.service_request_id if report else "")
    return absolute(reverse("notifications-unsubscribe", args=[token]))


def unsubscribed(*, email: str, report: Report | None) -> bool:
    stops = Unsubscribe.objects.filter(email__iexact=email)
    return stops.filter(report__isnull=True).exists() or (report is not None and stops.filter(report=report).exists())


def outside_body(report: Report) -> Team | None:
    """The report's team when it is an outside body the council forwards reports to by e-mail."""
    team = report.team
    if team is None or not team.is_outside_body or team.send_method != Team.SendMethod.EMAIL:
        return None
    return team


def reject_reason(report: Report) -> tuple[str, str]:
    """(label, what the citizen reads) for the report's reject reason; the console owns the list."""
    from console.services import REJECT_REASONS  # console sits above reports; mail reads its canned texts

    reason = REJECT_REASONS.get(report.reject_reason)
    return (str(reason.label), str(reason.public_note)) if reason else ("", "")


def kinds_for(event: ReportEvent) -> list[str]:
    """The kinds of message `event` causes (most cause none)."""
    report = event.report
    if event.action == A.CREATED:
        return [Kind.CONFIRMATION]
    if event.field == "status" and event.to_value in STATUS_KINDS:
        return [STATUS_KINDS[event.to_value]]
    if event.action == A.NOTE and event.public:
        # Rejecting also records the reason's public text as a note; the rejection message says it.
        if report.status == S.REJECTED and event.note == reject_reason(report)[1]:
            return []
        return [Kind.NOTE]
    if event.action == A.ASSIGNED and outside_body(report) is not None:
        return [Kind.FORWARD, Kind.ASSIGNED]
    return []


def recipients(report: Report, kind: str) -> list[tuple[str, bool]]:
    """(address, is the reporter) for a kind of message about `report`, unsubscribed ones left out."""
    if kind == Kind.FORWARD:
        team = outside_body(report)
        return [(team.email, False)] if team.email else []
    found: list[tuple[str, bool]] = []
    if report.reporter_email:
        found.append((report.reporter_email, True))
    if kind in SUPPORTER_KINDS:
        for email in report.supporters.exclude(reporter_email="").values_list("reporter_email", flat=True):
            if email.lower() not in {e.lower() for e, _ in found}:
                found.append((email, False))
    return [(email, mine) for email, mine in found if not unsubscribed(email=email, report=report)]


def language_for(report: Report, *, kind: str, is_reporter: bool) -> str:
    """The reporter reads their mail in the language they reported in (Report.language); everyone
    else, outside bodies included, in the site's default."""
    if is_reporter and kind != Kind.FORWARD and report.language:
        return report.language
    return settings.LANGUAGE_CODE


def render(*, report: Report, event: ReportEvent, kind: str, to: str, is_reporter: bool) -> Draft:
    """Subject, plain text and HTML for one recipient, in their language (language_for); the
    reporter's private link only to the reporter."""
    with translation.override(language_for(report, kind=kind, is_reporter=is_reporter)):
        return _render(report=report, event=event, kind=kind, to=to, is_reporter=is_reporter)


def _render(*, report: Report, event: ReportEvent, kind: str, to: str, is_reporter: bool) -> Draft:
    team = outside_body(report)
    original = report.duplicate_of.service_request_id if report.duplicate_of_id else ""
    reason_label, reason_text = reject_reason(report) if kind == Kind.REJECTED else ("", "")
    ref = report.service_request_id
    context = {
        "kind": kind, "reference": ref, "council_name": settings.COUNCIL_NAME, "is_reporter": is_reporter,
        "category": (report.public_category.name if kind == Kind.FORWARD else report.public_category.display_name)
        if report.public_category else "",
        "status_url": absolute(reverse("report-status", args=[ref])),
        "manage_url": manage_url(report) if is_reporter else "",
        "original_reference": original,
        "original_url": absolute(reverse("report-status", args=[original])) if original else "",
        "reason_label": reason_label, "reason_text": reason_text,
        "note": event.note if kind == Kind.NOTE else "",
        "team_name": team.name if team else "",
        "description": report.description if kind == Kind.FORWARD else "",
        "address": report.address if kind == Kind.FORWARD else "",
        "latitude": report.location.y, "longitude": report.location.x,
        "photo_url": absolute(report.photo_public.url) if kind == Kind.FORWARD and report.photo_public else "",
        "unsubscribe_url": "" if kind == Kind.FORWARD else unsubscribe_url(email=to, report=report),
    }
    subject = str(SUBJECTS[kind]).format(ref=ref, team=context["team_name"], original=original,
                                    council=settings.COUNCIL_NAME)
    headers = {}
    if context["unsubscribe_url"]:  # RFC 2369 + RFC 8058 one-click
        headers = {"List-Unsubscribe": f"<{context['unsubscribe_url']}>",
                   "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
    return Draft(to=to, kind=kind, subject=subject, headers=headers,
                 text=render_to_string("notifications/message.txt", context).strip() + "\n",
                 html=render_to_string("notifications/message.html", context))


def drafts_for(event: ReportEvent) -> list[Draft]:
    report = event.report
    return [render(report=report, event=event, kind=kind, to=to, is_reporter=mine)
            for kind in kinds_for(event) for to, mine in recipients(report, kind)]
