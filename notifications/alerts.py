"""Area alerts: anyone may ask to hear of new reports near a point or in a ward (an Area).

Double opt-in: a subscription is stored unconfirmed and only a confirmation goes out; the
signed link in it confirms. A report is "new" for alerts once it leaves pending
classification (the model's, the no-model route's or staff's first move): at creation its
public category is often unknown, so alerts for "potholes only" would miss every report
whose sender left the category to the model. Rejected and merged reports are not new
problems and alert nobody. Messages carry public fields only, never the reporter's.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from django.conf import settings
from django.contrib.gis.db.models import PointField
from django.contrib.gis.geos import Point
from django.core import signing
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Q, QuerySet
from django.db.models.functions import Cast
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify
from django.utils.translation import get_language, gettext as _, override

from reports.models import Area, Category, Report, ReportEvent
from reports.updates import PUBLIC_WORDS

from .compose import absolute
from .models import AlertSubscription, OutgoingMessage

logger = logging.getLogger(__name__)
Kind = OutgoingMessage.Kind
S = Report.Status

CONFIRM_SALT, MANAGE_SALT, STOP_SALT = "notifications.alerts.confirm", "notifications.alerts.manage", \
    "notifications.alerts.stop"
NOT_NEW = {S.PENDING, S.REJECTED, S.DUPLICATE}  # not (yet) a new problem the public hears about
FEED_ITEMS = 50  # newest reports in one Atom feed


def confirm_max_age() -> int:
    """Seconds a confirmation link works (ALERT_CONFIRM_MAX_AGE, default a week)."""
    return getattr(settings, "ALERT_CONFIRM_MAX_AGE", 7 * 24 * 3600)


def max_per_address() -> int:
    """Subscriptions one address may hold (ALERT_MAX_PER_ADDRESS), confirmed or not."""
    return getattr(settings, "ALERT_MAX_PER_ADDRESS", 20)


# Signed links -------------------------------------------------------------------------------

class BadAlertLink(ValueError):
    """Forged, damaged or expired; the message says which, for the page."""


def _read(token: str, *, salt: str, max_age: int) -> dict:
    try:
        data = signing.loads(token, salt=salt, max_age=max_age)
    except signing.SignatureExpired:
        raise BadAlertLink(_("This link has expired.")) from None
    except signing.BadSignature:
        raise BadAlertLink(_("This link is not valid: it may have been copied incompletely.")) from None
    if not isinstance(data, dict) or not isinstance(data.get("e"), str):
        raise BadAlertLink(_("This link is not valid."))
    return data


def confirm_token(subscription: AlertSubscription) -> str:
    return signing.dumps({"s": subscription.pk, "e": subscription.email.lower()}, salt=CONFIRM_SALT)


def stop_token(subscription: AlertSubscription) -> str:
    return signing.dumps({"s": subscription.pk, "e": subscription.email.lower()}, salt=STOP_SALT)


def manage_token(email: str) -> str:
    return signing.dumps({"e": email.lower()}, salt=MANAGE_SALT)


def _subscription(data: dict) -> AlertSubscription:
    found = AlertSubscription.objects.filter(pk=data.get("s"), email__iexact=data["e"]).first() \
        if isinstance(data.get("s"), int) else None
    if found is None:
        raise BadAlertLink(_("This link is for an alert that no longer exists."))
    return found


def subscription_for_confirm(token: str) -> AlertSubscription:
    return _subscription(_read(token, salt=CONFIRM_SALT, max_age=confirm_max_age()))


def subscription_for_stop(token: str) -> AlertSubscription:
    return _subscription(_read(token, salt=STOP_SALT, max_age=settings.UNSUBSCRIBE_LINK_MAX_AGE))


def email_for_manage(token: str) -> str:
    return _read(token, salt=MANAGE_SALT, max_age=settings.UNSUBSCRIBE_LINK_MAX_AGE)["e"]


def manage_url(email: str) -> str:
    return absolute(reverse("alerts-manage", args=[manage_token(email)]))


def stop_url(subscription: AlertSubscription) -> str:
    return absolute(reverse("alerts-stop", args=[stop_token(subscription)]))


# Where -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Where:
    """A point and radius (metres), or an area; optional category filter (empty = all)."""

    point: Point | None = None
    radius_m: float | None = None
    area: Area | None = None
    categories: tuple[Category, ...] = ()

    def describe(self) -> str:
        """In the active language (the e-mail's, the feed's)."""
        if self.area is not None:
            text = _("new reports in %(area)s") % {"area": self.area.name}
        else:
            text = _("new reports within %(metres)s m of %(lat).5f, %(long).5f") % {
                "metres": f"{self.radius_m:g}", "lat": self.point.y, "long": self.point.x}
        if self.categories:
            text += " " + _("(%(categories)s only)") % {"categories": ", ".join(c.display_name for c in self.categories)}
        return text


def area_by_slug(slug: str) -> Area | None:
    """Areas have unique names, not slugs; there are few (wards, parks), so matching in Python is cheap."""
    return next((a for a in Area.objects.only("pk", "name") if slugify(a.name) == slug), None)


def reports_matching(where: Where) -> QuerySet[Report]:
    """New reports (not pending, rejected or merged) that `where` covers, newest first, with public_category_id."""
    reports = Report.objects.with_public_category().exclude(status__in=NOT_NEW)
    if where.area is not None:  # ST_Covers on geometry (the areas' type); the location cast has a GiST index
        reports = reports.annotate(spot=Cast("location", PointField(srid=4326))).filter(
            spot__coveredby=Area.objects.filter(pk=where.area.pk).values("geometry"))
    else:  # ST_DWithin on geography: metres on the spheroid
        reports = reports.filter(location__dwithin=(where.point, where.radius_m))
    if where.categories:
        reports = reports.filter(public_category_id__in=[c.pk for c in where.categories])
    return reports.select_related("final_category", "citizen_category", "predicted_category").order_by(
        "-created_at", "-pk")


def subscriptions_matching(report: Report) -> QuerySet[AlertSubscription]:
    """Confirmed, not unsubscribed subscriptions whose place covers `report` and whose categories
    (none = all) include its public category."""
    public_category_id = Report.objects.with_public_category().values_list(
        "public_category_id", flat=True).get(pk=report.pk)
    flat = Point(report.location.x, report.location.y, srid=4326)
    near = Q(point__isnull=False, point__dwithin=(report.location, F("radius_m")))
    inside = Q(area__isnull=False, area__geometry__covers=flat)
    matching = AlertSubscription.objects.filter(confirmed_at__isnull=False, unsubscribed_at__isnull=True).filter(
        near | inside)
    any_category = Q(categories__isnull=True)
    if public_category_id is not None:
        any_category |= Q(categories=public_category_id)
    ids = matching.filter(any_category).values("pk")
    return AlertSubscription.objects.filter(pk__in=ids).select_related("area").order_by("pk")


# Services ---------------------------------------------------------------------------------

def subscription_create(*, email: str, where: Where, language: str | None = None) -> AlertSubscription:
    """Store an unconfirmed subscription and queue its confirmation mail; nothing else is sent
    to the address until its link is opened and confirmed. Too many for one address -> ValidationError.
    `language` (default: the active one) is the language of all its mail."""
    held = AlertSubscription.objects.filter(email__iexact=email, unsubscribed_at__isnull=True).count()
    if held >= max_per_address():
        raise ValidationError({"email": _("This address already has %(held)d alerts, the most one address may "
                                          "have. Delete some through the link in any alert e-mail first.")
                               % {"held": held}})
    subscription = AlertSubscription(email=email, point=where.point,
                                     radius_m=round(where.radius_m) if where.point is not None else None,
                                     area=where.area,
                                     language=language if language is not None else (get_language() or ""))
    subscription.full_clean()
    with transaction.atomic():
        subscription.save()
        subscription.categories.set(where.categories)
        with override(subscription.language or settings.LANGUAGE_CODE):
            description = where.describe()
        message = _queue(subscription=subscription, kind=Kind.ALERT_CONFIRM, report=None, event=None, context={
            "description": description, "confirm_url": absolute(reverse("alerts-confirm",
                                                                             args=[confirm_token(subscription)])),
            "hours": confirm_max_age() // 3600})
        transaction.on_commit(lambda: _enqueue([message]))
    return subscription


def subscription_confirm(*, subscription: AlertSubscription) -> AlertSubscription:
    """Confirming twice is fine; a subscription stopped by its unsubscribe link stays stopped."""
    AlertSubscription.objects.filter(pk=subscription.pk, confirmed_at__isnull=True).update(confirmed_at=timezone.now())
    subscription.refresh_from_db()
    logger.info("alert subscription %s confirmed", subscription.pk)
    return subscription


def subscription_stop(*, subscription: AlertSubscription) -> None:
    """The alert's one-click unsubscribe: no more mail for it (kept, as the record that they asked)."""
    with transaction.atomic():
        AlertSubscription.objects.filter(pk=subscription.pk, unsubscribed_at__isnull=True).update(
            unsubscribed_at=timezone.now())
        subscription.messages.filter(status=OutgoingMessage.Status.QUEUED).update(
            status=OutgoingMessage.Status.CANCELLED)


def subscriptions_delete(*, email: str, pk: int | None = None) -> int:
    """Delete one of `email`'s subscriptions (or all of them, pk None), and cancel their waiting mail."""
    mine = AlertSubscription.objects.filter(email__iexact=email)
    if pk is not None:
        mine = mine.filter(pk=pk)
    with transaction.atomic():
        OutgoingMessage.objects.filter(alert__in=mine, status=OutgoingMessage.Status.QUEUED).update(
            status=OutgoingMessage.Status.CANCELLED)
        count, _ = mine.delete()
    return count


def _queue(*, subscription: AlertSubscription, kind: str, report: Report | None, event: ReportEvent | None,
           context: dict) -> OutgoingMessage | None:
    """Written in the subscriber's language (AlertSubscription.language)."""
    with override(subscription.language or settings.LANGUAGE_CODE):
        return _queue_in_language(subscription=subscription, kind=kind, report=report, event=event, context=context)


def _queue_in_language(*, subscription: AlertSubscription, kind: str, report: Report | None,
                       event: ReportEvent | None, context: dict) -> OutgoingMessage | None:
    to = subscription.email
    stop = stop_url(subscription)
    context = {**context, "kind": kind, "council_name": settings.COUNCIL_NAME, "manage_url": manage_url(to),
               "stop_url": stop}
    if kind == Kind.ALERT_CONFIRM:
        subject = _("Confirm your alerts from %(council)s") % {"council": settings.COUNCIL_NAME}
    else:
        category = context["category"]
        if report is not None and report.public_category is not None:
            category = report.public_category.display_name
        context = {**context, "category": category, "status_words": str(context["status_words"]),
                   "where": _("in %(area)s") % {"area": subscription.area.name} if subscription.area_id
                   else _("within %(metres)s m") % {"metres": subscription.radius_m}}
        subject = _("New report %(reference)s %(where)s: %(category)s") % {
            "reference": context["reference"], "where": context["where"],
            "category": category or _("category not known yet")}
    headers = {"List-Unsubscribe": f"<{stop}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
    try:
        with transaction.atomic():
            return OutgoingMessage.objects.create(
                report=report, event=event, alert=subscription, to_address=to, kind=kind, subject=subject,
                headers=headers, text=render_to_string("notifications/alerts_message.txt", context).strip() + "\n",
                html=render_to_string("notifications/alerts_message.html", context))
    except IntegrityError:  # this address already has this report's alert (another subscription, or announced twice)
        return None


def _enqueue(messages) -> None:
    from .receivers import enqueue

    enqueue([m for m in messages if m is not None])


def alert_messages_queue(*, event: ReportEvent) -> list[OutgoingMessage]:
    """Store one alert per matching subscription for the event that makes a report new (its first
    move out of pending classification); never two to one address about one report."""
    if not (event.field == "status" and event.from_value == S.PENDING and event.to_value not in NOT_NEW):
        return []
    report = Report.objects.select_related("final_category", "citizen_category", "predicted_category").get(
        pk=event.report_id)
    if report.status in NOT_NEW:
        return []
    category = report.public_category
    context = {"reference": report.service_request_id, "category": category.name if category else "",
               "status_words": PUBLIC_WORDS[report.status], "created_at": report.created_at,
               "status_url": absolute(reverse("report-status", args=[report.service_request_id])),
               "photo_url": absolute(report.photo_public.url) if report.photo_public else ""}
    queued = []
    for subscription in subscriptions_matching(report):
        message = _queue(subscription=subscription, kind=Kind.ALERT, report=report, event=event, context=context)
        if message is not None:
            queued.append(message)
    return queued
