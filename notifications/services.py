"""Queue and send mail. Rows are written after the report's transaction has committed, in
their own; sending happens in a task (notifications.tasks), never inside the web request."""
from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from reports.models import Report, ReportEvent

from . import compose
from .models import OutgoingMessage, Unsubscribe

logger = logging.getLogger(__name__)
M = OutgoingMessage.Status


def messages_queue_for_event(*, event: ReportEvent) -> list[OutgoingMessage]:
    """Store the messages `event` causes (none for most). Idempotent per event and address."""
    event.report = Report.objects.select_related("duplicate_of", "team").get(pk=event.report_id)  # as it is now
    created = []
    for draft in compose.drafts_for(event):
        try:
            with transaction.atomic():
                created.append(OutgoingMessage.objects.create(
                    report=event.report, event=event, to_address=draft.to, kind=draft.kind, subject=draft.subject,
                    text=draft.text, html=draft.html, headers=draft.headers))
        except IntegrityError:  # announced twice: already queued
            continue
    return created


def retry_delay(attempts: int) -> timedelta:
    """Doubling from MAIL_RETRY_BASE_SECONDS after each failed attempt, at most MAIL_RETRY_MAX_SECONDS."""
    seconds = settings.MAIL_RETRY_BASE_SECONDS * 2 ** max(attempts - 1, 0)
    return timedelta(seconds=min(seconds, settings.MAIL_RETRY_MAX_SECONDS))


def _email(message: OutgoingMessage, connection) -> EmailMultiAlternatives:
    email = EmailMultiAlternatives(subject=message.subject, body=message.text, to=[message.to_address],
                                   headers=message.headers, connection=connection)
    if message.html:
        email.attach_alternative(message.html, "text/html")
    report = message.report
    if message.kind == OutgoingMessage.Kind.FORWARD and report is not None and report.photo_public:
        with report.photo_public.open("rb") as photo:  # the public copy: no EXIF, no faces blurred away lost
            email.attach(f"{report.service_request_id}.jpg", photo.read(), "image/jpeg")
    return email


def message_send(*, message_id: int) -> str:
    """Send one queued message that is due; returns its status afterwards.

    Holds the row's lock while it talks to the mail server, so two workers never send it twice
    (one that finds it locked leaves it). A failure is logged, counted and retried later."""
    now = timezone.now()
    with transaction.atomic():
        message = (OutgoingMessage.objects.select_for_update(skip_locked=True, of=("self",))
                   .select_related("report").filter(pk=message_id, status=M.QUEUED)
                   .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)).first())
        if message is None:
            return "skipped"
        if compose.unsubscribed(email=message.to_address, report=message.report) \
                and message.kind != OutgoingMessage.Kind.FORWARD:
            message.status = M.CANCELLED
            message.save(update_fields=["status"])
            return message.status
        message.attempts += 1
        try:
            with get_connection(fail_silently=False) as connection:
                _email(message, connection).send()
        except Exception as exc:  # noqa: BLE001 - any failure of the mail server is retried, never raised
            message.last_error = f"{type(exc).__name__}: {exc}"[:2000]
            if message.attempts >= settings.MAIL_MAX_ATTEMPTS:
                message.status = M.FAILED
                logger.error("mail %s to %s failed for good after %s attempts: %s", message.pk,
                             message.to_address, message.attempts, message.last_error)
            else:
                message.next_attempt_at = now + retry_delay(message.attempts)
                logger.warning("mail %s to %s failed (attempt %s), retry at %s: %s", message.pk,
                               message.to_address, message.attempts, message.next_attempt_at, message.last_error)
        else:
            message.status, message.sent_at, message.last_error = M.SENT, timezone.now(), ""
            logger.info("mail %s (%s, report %s) sent to %s", message.pk, message.kind,
                        message.report_id, message.to_address)
        message.save(update_fields=["attempts", "last_error", "next_attempt_at", "status", "sent_at"])
    return message.status


def due_message_ids(*, limit: int = 100) -> list[int]:
    now = timezone.now()
    return list(OutgoingMessage.objects.filter(status=M.QUEUED)
                .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
                .order_by("next_attempt_at", "id").values_list("pk", flat=True)[:limit])


def messages_send_due(*, limit: int = 100) -> dict[str, int]:
    """Send every queued message that is due (the catch-up: `manage.py send_pending_mail`)."""
    counts: dict[str, int] = {}
    for pk in due_message_ids(limit=limit):
        status = message_send(message_id=pk)
        counts[status] = counts.get(status, 0) + 1
    return counts


def unsubscribe_create(*, email: str, report: Report | None) -> Unsubscribe:
    """No more mail to `email` about `report` (None: about anything). Doing it twice is fine."""
    existing = Unsubscribe.objects.filter(email__iexact=email, report=report).first()
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            stop = Unsubscribe.objects.create(email=email.lower(), report=report)
    except IntegrityError:  # the same click twice at once
        return Unsubscribe.objects.get(email__iexact=email, report=report)
    cancelled = OutgoingMessage.objects.filter(to_address__iexact=email, status=M.QUEUED).exclude(
        kind=OutgoingMessage.Kind.FORWARD)
    cancelled = cancelled.filter(report=report) if report is not None else cancelled
    cancelled.update(status=M.CANCELLED)
    logger.info("%s unsubscribed from %s", email, report or "all mail")
    return stop
