"""Mail the service sends, and who asked not to get any."""
from __future__ import annotations

from django.contrib.gis.db import models as gis
from django.core.validators import MaxValueValidator, MinValueValidator
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
        ALERT_CONFIRM = "alert_confirm", "Area alert: confirm the subscription"
        ALERT = "alert", "Area alert: a new report"

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
    # An area alert's subscription (notifications.alerts); deleting it cancels what still waits.
    alert = models.ForeignKey("AlertSubscription", null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="messages")
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


# Radius of an area alert, metres (also the Atom feed's bounds).
ALERT_MIN_RADIUS_M, ALERT_MAX_RADIUS_M, ALERT_DEFAULT_RADIUS_M = 50, 10_000, 500


class AlertSubscription(models.Model):
    """Anyone's wish to hear of new reports within `radius_m` of `point`, or inside `area`
    (a ward), optionally only of some categories (none = every category). Double opt-in:
    nothing but the confirmation is sent until `confirmed_at` is set (notifications.alerts)."""

    email = models.EmailField()
    point = gis.PointField(geography=True, srid=4326, null=True, blank=True)  # longitude/latitude
    radius_m = models.PositiveIntegerField(
        null=True, blank=True,
        validators=[MinValueValidator(ALERT_MIN_RADIUS_M), MaxValueValidator(ALERT_MAX_RADIUS_M)])
    area = models.ForeignKey("reports.Area", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    categories = models.ManyToManyField("reports.Category", blank=True, related_name="+")
    confirmed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    unsubscribed_at = models.DateTimeField(null=True, blank=True)  # the alert's one-click unsubscribe
    # The language used when subscribing (settings.LANGUAGES code): its e-mails are written in it.
    language = models.CharField(max_length=8, blank=True, default="")

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(point__isnull=False, radius_m__gte=ALERT_MIN_RADIUS_M, radius_m__lte=ALERT_MAX_RADIUS_M,
                             area__isnull=True)
                           | Q(point__isnull=True, radius_m__isnull=True, area__isnull=False)),
                name="alert_point_and_radius_or_area"),
        ]
        indexes = [models.Index(Lower("email"), name="alert_email_idx")]

    def __str__(self) -> str:
        where = self.area.name if self.area_id else f"{self.radius_m} m of {self.point.y:.5f},{self.point.x:.5f}"
        return f"alerts to {self.email} for {where}"

    @property
    def active(self) -> bool:
        return self.confirmed_at is not None and self.unsubscribed_at is None
