"""Area alerts' citizen pages (subscribe, confirm, manage, unsubscribe) and the Atom feeds.

Links in mail are signed tokens (notifications.alerts); opening one shows a page with a button,
since mail scanners open links: only a POST confirms, stops or deletes."""
from __future__ import annotations

import math

from django import forms
from django.conf import settings
from django.contrib.syndication.views import Feed
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.feedgenerator import Atom1Feed
from django.utils.translation import gettext as _, gettext_lazy, ngettext
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods
from rest_framework.exceptions import Throttled

from reports import params, throttle
from reports.models import Area, Category, Report
from reports.text import printable
from reports.updates import PUBLIC_WORDS

from . import alerts
from .compose import absolute
from .models import ALERT_DEFAULT_RADIUS_M, ALERT_MAX_RADIUS_M, ALERT_MIN_RADIUS_M, AlertSubscription


class CategoryChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj: Category) -> str:
        return obj.display_name  # Welsh where set


class AlertForm(forms.Form):
    """E-mail, then a place: latitude and longitude with a radius, or an area (ward); categories optional."""

    email = forms.EmailField(max_length=AlertSubscription._meta.get_field("email").max_length,
                             label=gettext_lazy("Your email"))
    latitude = forms.CharField(required=False, max_length=30, label=gettext_lazy("Latitude"))
    longitude = forms.CharField(required=False, max_length=30, label=gettext_lazy("Longitude"))
    radius = forms.CharField(required=False, max_length=10, label=gettext_lazy("Within (metres)"),
                             help_text=gettext_lazy("%(low)s to %(high)s metres.") % {
                                 "low": ALERT_MIN_RADIUS_M, "high": f"{ALERT_MAX_RADIUS_M:,}"})
    area = forms.ModelChoiceField(queryset=Area.objects.all(), required=False,
                                  empty_label=gettext_lazy("(use the point above)"),
                                  label=gettext_lazy("Or a ward or area"))
    categories = CategoryChoiceField(
        queryset=Category.objects.filter(active=True), required=False, to_field_name="slug",
        widget=forms.CheckboxSelectMultiple,
        label=gettext_lazy("Only these kinds of problem (optional: none ticked means all)"))

    def clean(self):
        data = super().clean()
        lat, long, area = data.get("latitude", ""), data.get("longitude", ""), data.get("area")
        if area is not None and (lat or long):
            raise ValidationError(_("Choose either a point (latitude and longitude) or an area, not both."))
        if area is None and not (lat or long):
            if "area" not in self.errors:
                raise ValidationError(_("Say where: give a latitude and longitude, or choose an area."))
            return data
        if area is None:
            for name, raw, low, high, label in (("latitude", lat, -90, 90, _("Latitude")),
                                                ("longitude", long, -180, 180, _("Longitude"))):
                if not raw:
                    self.add_error(name, _("%(label)s is needed with a point.") % {"label": label})
                    continue
                try:
                    data[name] = params.parse_number(raw, name=name, low=low, high=high, label=label)
                except ValidationError as exc:
                    self.add_error(name, exc.message_dict[name])
            try:
                data["radius"] = params.parse_number(data.get("radius") or ALERT_DEFAULT_RADIUS_M, name="radius",
                                                     low=ALERT_MIN_RADIUS_M, high=ALERT_MAX_RADIUS_M,
                                                     label=_("The distance"))
            except ValidationError as exc:
                self.add_error("radius", exc.message_dict["radius"])
        return data

    def where(self) -> alerts.Where:
        d = self.cleaned_data
        categories = tuple(d["categories"])
        if d["area"] is not None:
            return alerts.Where(area=d["area"], categories=categories)
        return alerts.Where(point=params.Point(d["longitude"], d["latitude"], srid=4326), radius_m=d["radius"],
                            categories=categories)


def subscribe(request):
    """GET: the form (lat/long prefilled from a status page's "alerts near here" link).
    POST: validate, store unconfirmed, mail the confirmation, then say to check the inbox."""
    initial = {k: request.GET.get(k, "")[:30] for k in ("latitude", "longitude")}
    form = AlertForm(request.POST or None, initial=initial)
    status, retry_after = 200, None
    if request.method == "POST":
        try:
            throttle.submission_check(request)  # the same per-address limits as the report form
        except Throttled as exc:
            retry_after, status = exc.wait, 429
            minutes = math.ceil(exc.wait / 60)
            form.add_error(None, _("You have sent a lot in a short time. Please try again in about %(minutes)d "
                                   "minutes.") % {"minutes": minutes})
        else:
            if form.is_valid():
                try:
                    alerts.subscription_create(email=form.cleaned_data["email"], where=form.where())
                except ValidationError as exc:
                    for field, messages in exc.message_dict.items():
                        for message in messages:
                            form.add_error(field if field in form.fields else None, message)
                else:
                    return redirect("alerts-sent")
            status = 400
    response = render(request, "notifications/alerts_form.html", {"form": form}, status=status)
    if retry_after:
        response["Retry-After"] = str(retry_after)
    return response


def sent(request):
    return render(request, "notifications/alerts_sent.html")


def _invalid(request, exc: alerts.BadAlertLink):
    response = render(request, "notifications/alerts_invalid.html", {"why": str(exc)}, status=400)
    response["Cache-Control"] = "private, no-store"
    return response


def _private(response):
    response["Cache-Control"] = "private, no-store"  # reached by a secret link
    return response


@require_http_methods(["GET", "POST"])
def confirm(request, token: str):
    try:
        subscription = alerts.subscription_for_confirm(token)
    except alerts.BadAlertLink as exc:
        return _invalid(request, exc)
    if request.method == "POST":
        subscription = alerts.subscription_confirm(subscription=subscription)
        return _private(render(request, "notifications/alerts_confirmed.html", {
            "subscription": subscription, "manage_url": alerts.manage_url(subscription.email)}))
    return _private(render(request, "notifications/alerts_confirm.html", {"subscription": subscription,
                                                                          "token": token}))


@csrf_exempt  # RFC 8058 one-click POSTs come from mail clients, without cookies; the token is the proof
@require_http_methods(["GET", "POST"])
def stop(request, token: str):
    try:
        subscription = alerts.subscription_for_stop(token)
    except alerts.BadAlertLink as exc:
        return _invalid(request, exc)
    context = {"subscription": subscription, "token": token, "manage_url": alerts.manage_url(subscription.email)}
    if request.method == "POST":
        alerts.subscription_stop(subscription=subscription)
        return _private(render(request, "notifications/alerts_stopped.html", context))
    return _private(render(request, "notifications/alerts_stop.html", context))


@require_http_methods(["GET", "POST"])
def manage(request, token: str):
    """Every subscription of the link's address; delete one or all."""
    try:
        email = alerts.email_for_manage(token)
    except alerts.BadAlertLink as exc:
        return _invalid(request, exc)
    status, error, done = 200, "", ""
    if request.method == "POST":
        which = request.POST.get("delete", "")
        if which == "all":
            count = alerts.subscriptions_delete(email=email)
            done = ngettext("Deleted %(count)d alert.", "Deleted %(count)d alerts.", count) % {"count": count}
        elif which.isascii() and which.isdigit() and len(which) < 19 and \
                alerts.subscriptions_delete(email=email, pk=int(which)):
            done = _("Deleted the alert.")
        else:
            status, error = 400, _("Choose an alert of yours to delete, or delete them all.")
    mine = AlertSubscription.objects.filter(email__iexact=email).select_related("area").prefetch_related("categories")
    return _private(render(request, "notifications/alerts_manage.html", {
        "email": email, "subscriptions": mine, "token": token, "error": error, "done": done}, status=status))


# Atom feeds --------------------------------------------------------------------------------

class AlertFeed(Feed):
    """New reports for one place: public fields only, at most alerts.FEED_ITEMS of them."""

    feed_type = Atom1Feed

    def get_object(self, request, *, where: alerts.Where, link: str):
        self.request_link = link
        return where

    def title(self, where: alerts.Where) -> str:
        text = where.describe()
        return printable(text[:1].upper() + text[1:])

    def link(self, where: alerts.Where) -> str:
        return self.request_link

    def subtitle(self, where: alerts.Where) -> str:
        return printable(_("Reports to %(council)s") % {"council": settings.COUNCIL_NAME})

    def items(self, where: alerts.Where):
        return alerts.reports_matching(where)[:alerts.FEED_ITEMS]

    def item_title(self, item: Report) -> str:
        category = item.public_category
        return printable(f"{category.display_name if category else _('Report')} {item.service_request_id}")

    def item_description(self, item: Report) -> str:
        category = item.public_category
        words = _("%(status)s. Category: %(category)s.") % {
            "status": PUBLIC_WORDS[item.status],
            "category": category.display_name if category else _("not known yet")}
        alt = _("Photo of report %(reference)s") % {"reference": item.service_request_id}
        return printable(f"<p>{words}</p><p><img src=\"{absolute(item.photo_public.url)}\" alt=\"{alt}\"></p>")

    def item_link(self, item: Report) -> str:
        return absolute(reverse("report-status", args=[item.service_request_id]))

    def item_guid(self, item: Report) -> str:
        return self.item_link(item)

    def item_pubdate(self, item: Report):
        return item.created_at

    def item_updateddate(self, item: Report):
        return item.created_at


def _bad(exc: ValidationError) -> HttpResponse:
    text = " ".join(m for messages in exc.message_dict.values() for m in messages) if hasattr(exc, "error_dict") \
        else " ".join(exc.messages)
    return HttpResponse(printable(text) + "\n", status=400, content_type="text/plain; charset=utf-8")


def _categories(raw: str) -> tuple[Category, ...]:
    """category=pothole,graffiti (slugs; blank = all)."""
    slugs = [s.strip() for s in raw.split(",") if s.strip()]
    found = {c.slug: c for c in Category.objects.filter(slug__in=slugs)}
    unknown = [s for s in slugs if s not in found]
    if unknown:
        choices = ", ".join(Category.objects.filter(active=True).values_list("slug", flat=True))
        raise ValidationError({"category": _("Unknown category %(slug)r; choose from %(choices)s.") % {
            "slug": unknown[0][:64], "choices": choices}})
    return tuple(found[s] for s in dict.fromkeys(slugs))


@require_GET
def feed_near(request):
    """/alerts/feed/?lat=..&long=..&radius=..&category=..: radius in metres (default ALERT_DEFAULT_RADIUS_M)."""
    q = request.GET
    try:
        if params._blank(q.get("lat")) or params._blank(q.get("long")):
            raise ValidationError({"lat": _("Give lat and long (degrees), e.g. ?lat=51.5&long=-0.12&radius=500.")})
        latitude = params.parse_number(q["lat"], name="lat", low=-90, high=90)
        longitude = params.parse_number(q["long"], name="long", low=-180, high=180)
        radius = params.parse_number(q.get("radius") or ALERT_DEFAULT_RADIUS_M, name="radius",
                                     low=ALERT_MIN_RADIUS_M, high=ALERT_MAX_RADIUS_M)
        where = alerts.Where(point=params.Point(longitude, latitude, srid=4326), radius_m=radius,
                             categories=_categories(q.get("category", "")))
    except ValidationError as exc:
        return _bad(exc)
    return AlertFeed()(request, where=where, link=absolute(request.get_full_path()))


@require_GET
def feed_area(request, slug: str):
    area = alerts.area_by_slug(slug)
    if area is None:
        names = ", ".join(alerts.slugify(a.name) for a in Area.objects.only("name")[:50])
        text = _("No area %(slug)r; areas: %(names)s.") % {"slug": slug[:80], "names": names or _("none yet")}
        return HttpResponse(printable(text + "\n"), status=404,
                            content_type="text/plain; charset=utf-8")
    try:
        where = alerts.Where(area=area, categories=_categories(request.GET.get("category", "")))
    except ValidationError as exc:
        return _bad(exc)
    return AlertFeed()(request, where=where, link=absolute(request.get_full_path()))
