"""Mail the service sends, and who asked not to get any."""
from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower


class OutgoingMessage(models.Model):
    """One e-mail to one address, rendered when queued and sent by a task (notifications.tasks).

    Written after the report's own transaction has committed, so a mail problem can never
    undo or lose a report; a failed send is retried with backoff until MAIL_MAX_ATTEMPTS."""

    class Kind(models.TextChoices):
        CONFIRMATION = "confirmation", "Confirmation"
        TRIAGED = "triaged", "Triaged"
        ASSIGNED = "assigned", "Assigned to an outside body"
        IN_PROGRESS = "in_progress", "In progress"
        FIXED = "fixed", "Fixed"
        CLOSED = "closed", "Closed"
        DUPLICATE = "duplicate", "Merged as a duplicate"
        REJECTED = "rejected", "Rejected"
        NOTE = "note", "Public note"
        FORWARD = "forward", "Forwarded to an outside body"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"  # gave up after MAIL_MAX_ATTEMPTS
        CANCELLED = "cancelled", "Cancelled"  # the address unsubscribed before it went

    report = models.ForeignKey("reports.Report", null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="messages")
    # The audit event that caused it: one message per event and address, however often it is announced.
    event = models.ForeignKey("reports.ReportEvent", null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    to_address = models.EmailField()
    kind = models.CharField(max_length=32, choices=Kind.choices)
    subject = models.CharField(max_length=255)
    text = models.TextField()
    html = models.TextField(blank=True)
    headers = models.JSONField(default=dict, blank=True)  # List-Unsubscribe and friends
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)  # null = now
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["status", "next_attempt_at"])]
        constraints = [
            models.UniqueConstraint(fields=["event", "to_address", "kind"], condition=Q(event__isnull=False),
                                    name="message_once_per_event_and_address"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} to {self.to_address} ({self.status})"


class Unsubscribe(models.Model):
    """An address that wants no more mail about one report, or (report null) none at all."""

    email = models.EmailField()
    report = models.ForeignKey("reports.Report", null=True, blank=True, on_delete=models.CASCADE,
                               related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(Lower("email"), "report", name="unsubscribe_once_per_report"),
            models.UniqueConstraint(Lower("email"), condition=Q(report__isnull=True),
                                    name="unsubscribe_once_per_address"),
        ]

    def __str__(self) -> str:
        return f"{self.email} from {self.report or 'everything'}"
