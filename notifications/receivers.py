"""Mail hangs off the audit trail: reports.signals.report_event_recorded, sent after commit."""
from __future__ import annotations

import logging

from django.conf import settings

from . import alerts, services, tasks

logger = logging.getLogger(__name__)


def on_report_event(sender, *, event, **kwargs) -> None:
    """Store the event's messages, then hand each to the mail task queue. If the queue is down
    the rows wait as queued and `send_pending_mail` (or the next send) picks them up. Area alerts
    come second, so a problem with them never holds up the reporter's own mail."""
    enqueue(services.messages_queue_for_event(event=event))
    enqueue(alerts.alert_messages_queue(event=event))


def enqueue(messages) -> None:
    for message in messages:
        try:
            tasks.send_message.using(backend=settings.MAIL_TASK_BACKEND).enqueue(message.pk)
        except Exception:  # noqa: BLE001 - the row is stored; the catch-up sends it
            logger.exception("mail %s stored but not enqueued; send_pending_mail will send it", message.pk)
