"""Area alerts read back from a real SMTP server (aiosmtpd): double opt-in, which subscriptions a
new report reaches (radius, ward, categories), one mail each, the signed links, and the Atom feeds
parsed with a real XML parser. No reporter's details anywhere."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest
from django.contrib.gis.geos import MultiPolygon, Point, Polygon
from django.test import Client

from console import services as console
from notifications import alerts
from notifications.models import AlertSubscription, OutgoingMessage
from reports.models import Area, Category, Report
from reports.services import report_create

from .conftest import html_of, text_of

pytestmark = pytest.mark.django_db
ATOM = "{http://www.w3.org/2005/Atom}"
HOME = (51.5, -0.12)  # lat, long
REPORTER, REPORTER_NAME = "rita@example.org", "Rita Reporter"
SITE = "https://reports.example.test"


def ward(name: str = "Riverside Ward", lon0=-0.20, lat0=51.40, lon1=-0.15, lat1=51.45) -> Area:
    ring = ((lon0, lat0), (lon1, lat0), (lon1, lat1), (lon0, lat1), (lon0, lat0))
    return Area.objects.create(name=name, geometry=MultiPolygon(Polygon(ring), srid=4326))


def report_at(committed, unique_jpeg, lat: float, long: float, *, category: str | None = None) -> Report:
    with committed():
        intake = report_create(photo=unique_jpeg(), latitude=lat, longitude=long, category=category,
                               reporter_email=REPORTER, reporter_name=REPORTER_NAME,
                               description="Deep hole outside number 12, Mrs Jones' house")
    return Report.objects.get(pk=intake.report.pk)


def subscribed(email: str, *, point=HOME, radius=500, area=None, categories=()) -> AlertSubscription:
    """A confirmed subscription, made through the services (the form is tested on its own)."""
    where = alerts.Where(area=area, categories=tuple(Category.objects.filter(slug__in=categories))) if area else \
        alerts.Where(point=Point(point[1], point[0], srid=4326), radius_m=radius,
                     categories=tuple(Category.objects.filter(slug__in=categories)))
    return alerts.subscription_confirm(subscription=alerts.subscription_create(email=email, where=where))


def alerts_to(mailbox, address: str) -> list:
    return [m for m in mailbox.to(address) if m["Subject"].startswith("New report")]


def link(message, pattern: str) -> str:
    return re.search(rf"{re.escape(SITE)}({pattern})", text_of(message)).group(1)


def test_nothing_but_the_confirmation_is_sent_before_confirming(mailbox, committed, unique_jpeg):
    client = Client()
    with committed():
        response = client.post("/alerts/", {"email": "ann@example.org", "latitude": "51.5", "longitude": "-0.12",
                                            "radius": "500"})
    assert response.status_code == 302 and response["Location"] == "/alerts/sent/"
    [confirmation] = mailbox.to("ann@example.org")
    assert confirmation["Subject"].startswith("Confirm your alerts")
    assert confirmation["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    report_at(committed, unique_jpeg, 51.501, -0.12)
    assert alerts_to(mailbox, "ann@example.org") == []  # not confirmed: no alert
    page = link(confirmation, r"/alerts/confirm/[^/\s]+/")
    assert client.get(page).status_code == 200  # a mail scanner opening it confirms nothing
    assert AlertSubscription.objects.get().confirmed_at is None
    assert "your alerts are on" in client.post(page).content.decode()
    second = report_at(committed, unique_jpeg, 51.501, -0.12)
    [alert] = alerts_to(mailbox, "ann@example.org")
    assert second.service_request_id in alert["Subject"]


def test_radius_ward_and_category_decide_who_hears(mailbox, committed, unique_jpeg):
    riverside = ward()
    subscribed("near@example.org", radius=500)
    subscribed("wide@example.org", radius=5_000)
    subscribed("ward@example.org", area=riverside)
    subscribed("potholes@example.org", radius=5_000, categories=["pothole"])
    near = report_at(committed, unique_jpeg, 51.503, -0.12, category="graffiti")  # ~330 m north
    far = report_at(committed, unique_jpeg, 51.52, -0.12, category="pothole")  # ~2.2 km
    in_ward = report_at(committed, unique_jpeg, 51.42, -0.17)  # ~11 km away, in the ward
    got = {address: [m["Subject"].split()[2] for m in alerts_to(mailbox, address)]
           for address in ("near@example.org", "wide@example.org", "ward@example.org", "potholes@example.org")}
    assert got == {"near@example.org": [near.service_request_id],
                   "wide@example.org": [near.service_request_id, far.service_request_id],
                   "ward@example.org": [in_ward.service_request_id],
                   "potholes@example.org": [far.service_request_id]}


def test_the_public_category_decides_which_includes_staffs_and_the_citizens(mailbox, committed, unique_jpeg):
    subscribed("graffiti@example.org", categories=["graffiti"])
    report_at(committed, unique_jpeg, *HOME, category="graffiti")  # the citizen's choice is public
    report_at(committed, unique_jpeg, *HOME)  # no public category yet: only "every category" hears
    assert len(alerts_to(mailbox, "graffiti@example.org")) == 1


def test_one_mail_per_matching_subscription_never_two_to_one_address(mailbox, committed, unique_jpeg):
    from notifications.receivers import on_report_event

    subscribed("ann@example.org")
    subscribed("bob@example.org", radius=2_000)
    subscribed("bob@example.org", area=ward("Home Ward", -0.13, 51.49, -0.11, 51.51))
    report = report_at(committed, unique_jpeg, *HOME)
    on_report_event(None, event=report.events.get(action="routed"))  # announced again
    assert len(alerts_to(mailbox, "ann@example.org")) == 1 and len(alerts_to(mailbox, "bob@example.org")) == 1
    assert len(mailbox.to(REPORTER)) == 1  # the reporter still gets only their confirmation


def test_staffs_first_decision_also_makes_a_report_new_but_a_rejection_does_not(mailbox, committed, unique_jpeg,
                                                                              triager, settings):
    from reports.signals import report_submitted

    subscribed("ann@example.org")
    report_submitted.receivers, saved = [], report_submitted.receivers  # as if the classifier has not run yet
    try:
        first, second = report_at(committed, unique_jpeg, *HOME), report_at(committed, unique_jpeg, *HOME)
    finally:
        report_submitted.receivers = saved
    with committed():
        console.report_verify(report=first, staff=triager, category=Category.objects.get(slug="pothole"),
                              expected_version=first.version)
    with committed():
        console.report_set_status(report=second, staff=triager, status=Report.Status.REJECTED,
                                  expected_version=second.version, reason="private_land")
    [alert] = alerts_to(mailbox, "ann@example.org")
    assert first.service_request_id in alert["Subject"] and "Pothole" in alert["Subject"]


def test_an_alert_has_public_fields_and_links_only(mailbox, committed, unique_jpeg):
    subscribed("ann@example.org")
    report = report_at(committed, unique_jpeg, *HOME, category="pothole")
    [alert] = alerts_to(mailbox, "ann@example.org")
    ref, text, html = report.service_request_id, text_of(alert), html_of(alert)
    assert f"{SITE}/report/{ref}/" in text and f"{SITE}{report.photo_public.url}" in text and "Pothole" in text
    assert f"{SITE}{report.photo_public.url}" in html
    whole = alert.as_string()
    for private in (REPORTER, REPORTER_NAME, "Rita", "Mrs Jones", "/manage/" + ref, "/report/" + ref + "/manage/"):
        assert private not in whole
    stop = link(alert, r"/alerts/stop/[^/\s]+/")
    assert alert["List-Unsubscribe"].strip() == f"<{SITE}{stop}>"
    assert alert["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    response = Client(enforce_csrf_checks=True).post(stop, {"List-Unsubscribe": "One-Click"})  # RFC 8058
    assert response.status_code == 200 and AlertSubscription.objects.get().unsubscribed_at is not None
    report_at(committed, unique_jpeg, *HOME)
    assert len(alerts_to(mailbox, "ann@example.org")) == 1


def test_the_manage_link_lists_every_alert_of_the_address_and_deletes_one_or_all(mailbox, committed):
    with committed():
        mine = [subscribed("ann@example.org"), subscribed("ann@example.org", area=ward())]
    other = subscribed("bob@example.org")
    client = Client()
    manage = link(mailbox.to("ann@example.org")[0], r"/alerts/manage/[^/\s]+/")
    page = client.get(manage).content.decode()
    assert "Riverside Ward" in page and "within 500 metres" in page and "bob@example.org" not in page
    assert client.post(manage, {"delete": str(other.pk)}).status_code == 400  # not theirs to delete
    assert client.post(manage, {"delete": str(mine[0].pk)}).status_code == 200
    assert list(AlertSubscription.objects.filter(email="ann@example.org")) == [mine[1]]
    client.post(manage, {"delete": "all"})
    assert list(AlertSubscription.objects.all()) == [other]


@pytest.mark.parametrize("kind", ["confirm", "manage", "stop"])
def test_forged_and_expired_links_are_refused_with_a_clear_page(db, settings, kind):
    subscription = alerts.subscription_create(email="ann@example.org", where=alerts.Where(
        point=Point(HOME[1], HOME[0], srid=4326), radius_m=500))
    token = {"confirm": alerts.confirm_token, "stop": alerts.stop_token,
             "manage": lambda s: alerts.manage_token(s.email)}[kind](subscription)
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    for bad in (forged, "not-a-token"):
        for method in ("get", "post"):
            response = getattr(Client(), method)(f"/alerts/{kind}/{bad}/", {"delete": "all"})
            assert response.status_code == 400
            assert "This alerts link does not work" in response.content.decode()
            assert "not valid" in response.content.decode()
    settings.ALERT_CONFIRM_MAX_AGE = settings.UNSUBSCRIBE_LINK_MAX_AGE = -1
    response = Client().post(f"/alerts/{kind}/{token}/", {"delete": "all"})
    assert response.status_code == 400 and "expired" in response.content.decode()
    subscription.refresh_from_db()
    assert subscription.confirmed_at is None and subscription.unsubscribed_at is None


@pytest.mark.parametrize("data, message", [
    ({"latitude": "51.5", "longitude": "-0.12"}, "This field is required"),
    ({"email": "not an address", "latitude": "51.5", "longitude": "-0.12"}, "valid email"),
    ({"email": "a@example.org"}, "Say where"),
    ({"email": "a@example.org", "latitude": "51.5"}, "Longitude is needed"),
    ({"email": "a@example.org", "latitude": "95", "longitude": "0"}, "Latitude must be between -90 and 90"),
    ({"email": "a@example.org", "latitude": "nan", "longitude": "0"}, "Latitude must be a number"),
    ({"email": "a@example.org", "latitude": "51.5", "longitude": "0", "radius": "50000"},
     "The distance must be between 50 and 10000"),
    ({"email": "a@example.org", "latitude": "51.5", "longitude": "0", "categories": ["nope"]}, "nope"),
    ({"email": "a@example.org", "latitude": "51.5", "longitude": "0", "area": "AREA"}, "not both"),
    ({"email": "a@example.org", "area": "999999"}, "valid choice"),
])
def test_bad_subscriptions_are_a_400_naming_the_problem_and_store_nothing(mailbox, data, message):
    area = ward()
    data = {k: (str(area.pk) if v == "AREA" else v) for k, v in data.items()}
    response = Client().post("/alerts/", data)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not AlertSubscription.objects.exists() and not OutgoingMessage.objects.exists()
    assert mailbox.messages == []


def test_subscribing_is_rate_limited_like_the_report_form(db, settings):
    settings.REPORT_ATTEMPT_RATE_LIMIT = "2/h"
    client = Client()
    for _ in range(2):
        assert client.post("/alerts/", {"email": "a@example.org"}).status_code == 400
    response = client.post("/alerts/", {"email": "a@example.org", "latitude": "51.5", "longitude": "0"})
    assert response.status_code == 429 and int(response["Retry-After"]) > 0
    assert "try again in about" in response.content.decode() and not AlertSubscription.objects.exists()


def test_one_address_may_hold_a_bounded_number_of_alerts(db, settings):
    settings.ALERT_MAX_PER_ADDRESS = 1
    subscribed("a@example.org")
    response = Client().post("/alerts/", {"email": "A@example.org", "latitude": "51.5", "longitude": "0"})
    assert response.status_code == 400 and "the most one address may have" in response.content.decode()
    assert AlertSubscription.objects.count() == 1


def test_the_status_page_offers_alerts_at_the_reports_location(committed, unique_jpeg):
    report = report_at(committed, unique_jpeg, 51.501234, -0.123456)
    page = Client().get(f"/report/{report.service_request_id}/").content.decode()
    href = re.search(r'href="(/alerts/\?[^"]+)" id="alerts-here"', page).group(1).replace("&amp;", "&")
    form = Client().get(href).content.decode()
    assert 'value="51.501234"' in form and 'value="-0.123456"' in form
    assert 'href="/alerts/"' in Client().get("/report/").content.decode()


def feed(path: str) -> ET.Element:
    response = Client().get(path)
    assert response.status_code == 200, response.content[:300]
    assert response["Content-Type"].startswith("application/atom+xml")
    return ET.fromstring(response.content)  # a real XML parser: raises on anything malformed


def test_the_feed_lists_new_reports_near_a_point_with_public_fields(committed, unique_jpeg, settings):
    settings.SITE_URL = SITE
    near = report_at(committed, unique_jpeg, 51.501, -0.12, category="pothole")
    report_at(committed, unique_jpeg, 51.6, -0.12, category="pothole")  # 11 km away
    graffiti = report_at(committed, unique_jpeg, 51.5, -0.1201, category="graffiti")
    root = feed("/alerts/feed/?lat=51.5&long=-0.12&radius=1000")
    assert root.tag == f"{ATOM}feed"
    entries = root.findall(f"{ATOM}entry")
    assert [e.find(f"{ATOM}title").text for e in entries] == [f"Graffiti {graffiti.service_request_id}",
                                                              f"Pothole {near.service_request_id}"]
    entry = entries[1]
    assert entry.find(f"{ATOM}link").get("href") == f"{SITE}/report/{near.service_request_id}/"
    summary = entry.find(f"{ATOM}summary").text
    assert "Waiting for our team to look at it" in summary and f"{SITE}{near.photo_public.url}" in summary
    assert entry.find(f"{ATOM}published") is not None
    body = Client().get("/alerts/feed/?lat=51.5&long=-0.12&radius=1000").content.decode()
    for private in (REPORTER, REPORTER_NAME, "Mrs Jones", "/manage/"):
        assert private not in body
    only = feed("/alerts/feed/?lat=51.5&long=-0.12&radius=1000&category=pothole").findall(f"{ATOM}entry")
    assert [e.find(f"{ATOM}title").text for e in only] == [f"Pothole {near.service_request_id}"]


def test_the_area_feed_and_its_bounds(committed, unique_jpeg, settings):
    area = ward("Riverside\x0b Ward")  # stored by another writer with a character XML cannot carry
    inside = report_at(committed, unique_jpeg, 51.42, -0.17)
    report_at(committed, unique_jpeg, *HOME)
    root = feed("/alerts/feed/area/riverside-ward/")
    assert "Riverside Ward" in root.find(f"{ATOM}title").text
    assert [e.find(f"{ATOM}title").text for e in root.findall(f"{ATOM}entry")] == [
        f"Report {inside.service_request_id}"]
    assert area.pk
    settings_items, alerts.FEED_ITEMS = alerts.FEED_ITEMS, 1
    try:
        report_at(committed, unique_jpeg, 51.43, -0.17)
        assert len(feed("/alerts/feed/area/riverside-ward/").findall(f"{ATOM}entry")) == 1
    finally:
        alerts.FEED_ITEMS = settings_items


@pytest.mark.parametrize("query, message", [
    ("", "Give lat and long"),
    ("lat=51.5", "Give lat and long"),
    ("lat=abc&long=0", "lat must be a number"),
    ("lat=91&long=0", "lat must be between -90 and 90"),
    ("lat=51.5&long=0&radius=10", "radius must be between 50 and 10000"),
    ("lat=51.5&long=0&radius=1e400", "radius must be a number"),
    ("lat=51.5&long=0&category=pothole,nope", "Unknown category 'nope'"),
])
def test_bad_feed_parameters_are_a_400_naming_them(db, query, message):
    response = Client().get(f"/alerts/feed/?{query}")
    assert response.status_code == 400 and message in response.content.decode()


def test_an_unknown_area_is_a_404_naming_the_areas(db):
    ward()
    response = Client().get("/alerts/feed/area/nowhere/")
    assert response.status_code == 404 and "riverside-ward" in response.content.decode()
