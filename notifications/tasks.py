"""Sending as a task: on the MAIL_TASK_BACKEND queue, never inside the web request."""
from __future__ import annotations

from django.conf import settings
from django_tasks import task, task_backends

from . import services
from .models import OutgoingMessage


@task()
def send_message(message_id: int) -> str:
    """Send one message, then any others that are due (retries an earlier failure left behind).
    After a failure, a backend that can defer (the database queue) gets the retry at its time;
    otherwise the next send or `manage.py send_pending_mail` picks it up."""
    status = services.message_send(message_id=message_id)
    if status == OutgoingMessage.Status.SENT:
        services.messages_send_due(limit=20)
    elif status == OutgoingMessage.Status.QUEUED and task_backends[settings.MAIL_TASK_BACKEND].supports_defer:
        retry_at = OutgoingMessage.objects.values_list("next_attempt_at", flat=True).get(pk=message_id)
        send_message.using(backend=settings.MAIL_TASK_BACKEND, run_after=retry_at).enqueue(message_id)
    return status
