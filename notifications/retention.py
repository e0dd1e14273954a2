"""Retention (reports.retention): when a report's contact details are erased, its messages lose theirs."""
from __future__ import annotations

from .models import OutgoingMessage, Unsubscribe

Kind, M = OutgoingMessage.Kind, OutgoingMessage.Status


def on_contact_details_erasing(sender, *, report, dry_run: bool, **kwargs) -> dict[str, int]:
    """Blank the address, the text and HTML and headers (the unsubscribe link's token carries the
    address, readably) and any error of `report`'s messages to people, cancelling one still queued;
    kind, subject and when it went stay. Their event link goes too: the once-per-event-and-address
    guard needs distinct addresses. Forwards keep theirs (an outside body's address, not a
    person's). The report's own unsubscribes are deleted: nobody is left to write to."""
    messages = OutgoingMessage.objects.filter(report=report).exclude(kind=Kind.FORWARD).exclude(to_address="")
    stops = Unsubscribe.objects.filter(report=report)
    if dry_run:
        return {"message addresses": messages.count(), "unsubscribes": stops.count()}
    messages.filter(status=M.QUEUED).update(status=M.CANCELLED)
    erased = messages.update(to_address="", text="", html="", headers={}, last_error="", event=None)
    deleted, _ = stops.delete()
    return {"message addresses": erased, "unsubscribes": deleted}
