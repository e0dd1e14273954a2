"""What the reporter does through their private link (reports.tokens.reporter_link_token), and the
public timeline that shows it.

The caller (reports.views.report_manage) has checked the link. Both writers validate
everything before storing anything: a rejected update leaves no row and no file.
"""
from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime

from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils.translation import gettext_lazy as _

from . import photos, validation, workflow
from .models import Report, ReportEvent, ReportUpdate
from .services import _DeleteFilesUnlessCommitted, record_event, report_transition
from .storage import delete_files
from .workflow import By

logger = logging.getLogger(__name__)

REPORTER = "reporter"  # actor_label of the reporter's own events
TEXT_LIMIT = ReportUpdate._meta.get_field("text").max_length
REOPEN_NOTE = "Still not fixed."  # the reopen event's note when the reporter wrote none (the headline says it)


def _locked(report: Report) -> Report:
    return Report.objects.select_for_update(of=("self",)).get(pk=report.pk)


def report_add_update(*, report: Report, text: str = "", photo: bytes | None = None) -> ReportUpdate:
    """Store the reporter's update (text, optional photo through reports.photos) with a
    `citizen_update` event. ValidationError (per field: "text", "photo") before anything is
    written; a duplicate-merged report takes its updates on the original's page instead."""
    text = validation.clean_text(text, field="text", label=_("Your update"), max_length=TEXT_LIMIT)
    info = None
    if photo:
        try:
            info = photos.read_photo(photo)
        except ValidationError as exc:
            raise ValidationError({"photo": exc}) from None
    if not text and info is None:
        raise ValidationError({"text": _("Write what has changed, or add a photo.")}, code="empty")
    if report.status == Report.Status.DUPLICATE:
        raise ValidationError(_("This report is tracked as another one; please add your update there."),
                              code="duplicate")
    update = ReportUpdate(report=report, text=text, from_reporter=True)
    saved: list[tuple] = []
    try:
        with transaction.atomic():
            if info is not None:
                name = f"{report.service_request_id}-{secrets.token_hex(6)}"
                update.photo_format = info.format
                for field, path, data in (
                        (update.photo_original, f"updates/originals/{name}.{info.extension}", info.data),
                        (update.photo_public, f"updates/photos/{name}.jpg", photos.public_derivative(info)),
                        (update.photo_thumbnail, f"updates/thumbs/{name}.jpg", photos.thumbnail(info))):
                    field.save(path, ContentFile(data), save=False)
                    saved.append((field.storage, field.name))
            update.save()
            record_event(report=report, actor_label=REPORTER, action=ReportEvent.Action.CITIZEN_UPDATE,
                         to_value=update.pk, note=text, public=True)
            transaction.on_commit(_DeleteFilesUnlessCommitted(saved))
    except BaseException:
        delete_files(saved)
        raise
    logger.info("report %s: reporter update %s%s", report.service_request_id, update.pk,
                " with a photo" if saved else "")
    return update


def report_still_not_fixed(*, report: Report, note: str = "") -> Report:
    """The reporter says a fixed or closed report is still not fixed: back to needs review with
    a `reopen` event carrying their words. Refused (ValidationError) from any other status."""
    note = validation.clean_text(note, field="note", label=_("Your note"), max_length=TEXT_LIMIT)
    with transaction.atomic():
        r = _locked(report)
        if r.status not in workflow.CITIZEN_REOPENS:
            raise ValidationError({"status": _("Only a report marked fixed or closed can be reopened here.")},
                                  code="transition")
        report_transition(report=r, to=Report.Status.NEEDS_REVIEW, by=By.CITIZEN, actor_label=REPORTER,
                          note=note or REOPEN_NOTE, public=True)
    logger.info("report %s reopened by its reporter", r.service_request_id)
    return r


# The public timeline: each status in the words a citizen uses, never the internal ones.
PUBLIC_WORDS = {
    Report.Status.PENDING: _("Waiting for our team to look at it"),
    Report.Status.NEEDS_REVIEW: _("Waiting for our team to look at it"),
    Report.Status.TRIAGED: _("We are looking at it"),
    Report.Status.IN_PROGRESS: _("Work has started"),
    Report.Status.FIXED: _("Fixed"),
    Report.Status.CLOSED: _("Closed"),
    Report.Status.REJECTED: _("Not something we can fix"),
    Report.Status.DUPLICATE: _("Already reported: we are tracking it on the other report"),
}
# What the citizen can expect next, by status (the public status page).
NEXT_STEPS = {
    Report.Status.PENDING: _("Someone in our team will check the report and pass it to the people who deal with "
                             "it."),
    Report.Status.NEEDS_REVIEW: _("Someone in our team will check the report and pass it to the people who deal "
                                  "with it."),
    Report.Status.TRIAGED: _("The team that deals with it will plan the work. This page will say when it starts."),
    Report.Status.IN_PROGRESS: _("The work is under way. This page will say when it is fixed."),
    Report.Status.FIXED: _("Nothing more to do. If it is still not fixed, use the link in our e-mail to tell us."),
    Report.Status.CLOSED: _("Nothing more to do: the report is closed."),
    Report.Status.REJECTED: _("We will not do any more about this report. The timeline below says why, "
                              "where we could."),
    Report.Status.DUPLICATE: _("Follow the other report to see what happens."),
}


@dataclass(frozen=True)
class Entry:
    at: datetime
    kind: str  # "status", "note" (a public staff note), "update" (the reporter's), "reopen"
    headline: str
    text: str = ""
    update: ReportUpdate | None = None


def public_timeline(report: Report) -> list[Entry]:
    """Oldest first: status changes (one entry per change of plain words), public staff notes,
    the reporter's updates and their "still not fixed". Private notes and who did what never
    appear."""
    entries: list[Entry] = []
    shown = ""
    events = report.events.filter(field="status") | report.events.filter(action=ReportEvent.Action.NOTE, public=True)
    for event in events.order_by("created_at", "id"):
        if event.action == ReportEvent.Action.CREATED:
            entries.append(Entry(event.created_at, "status", _("Reported")))
            shown = PUBLIC_WORDS.get(event.to_value, "")
        elif event.action == ReportEvent.Action.NOTE:
            entries.append(Entry(event.created_at, "note", _("Update from the council"), event.note))
        elif event.action == ReportEvent.Action.REOPEN and event.actor_label == REPORTER:
            entries.append(Entry(event.created_at, "reopen", _("The reporter says it is still not fixed"),
                                 event.note if event.public and event.note != REOPEN_NOTE else ""))
            shown = PUBLIC_WORDS[Report.Status.NEEDS_REVIEW]
        elif (words := PUBLIC_WORDS.get(event.to_value)) and words != shown:
            entries.append(Entry(event.created_at, "status", words, event.note if event.public else ""))
            shown = words
    entries += [Entry(u.created_at, "update", _("The reporter added an update"), u.text, u)
                for u in report.updates.filter(from_reporter=True)]
    return sorted(entries, key=lambda e: e.at)
