"""Issue 16 item 1 for area alerts: their pages in Welsh with no English sentence left, and their
e-mails in the language the subscriber used when subscribing (AlertSubscription.language)."""
from __future__ import annotations

import re

import pytest
from django.contrib.gis.geos import Point
from django.test import Client

from notifications import alerts
from notifications.models import AlertSubscription
from tests.reports.test_i18n import assert_welsh, categories, compiled_catalogues, welsh  # noqa: F401 (fixtures)

from .conftest import html_of, text_of
from .test_alerts import SITE, report_at, ward

pytestmark = pytest.mark.django_db


def test_every_alerts_page_renders_in_welsh_with_no_english_left(mailbox, committed):
    client = welsh(Client())
    assert_welsh(client.get("/alerts/").content.decode())
    assert_welsh(client.get("/alerts/sent/").content.decode())
    bad = client.post("/alerts/", {"email": "a@example.org", "latitude": "51.5"})
    assert bad.status_code == 400 and "Hydred: mae angen hwn gyda phwynt." in bad.content.decode()
    assert_welsh(bad.content.decode())
    with committed():
        assert client.post("/alerts/", {"email": "ann@example.org", "latitude": "51.5", "longitude": "-0.12",
                                        "radius": "500"}).status_code == 302
    subscription = AlertSubscription.objects.get()
    assert subscription.language == "cy"
    area = ward()
    in_ward = alerts.subscription_create(email="ann@example.org", where=alerts.Where(area=area), language="cy")
    confirm = f"/alerts/confirm/{alerts.confirm_token(subscription)}/"
    stop = f"/alerts/stop/{alerts.stop_token(in_ward)}/"
    manage = f"/alerts/manage/{alerts.manage_token('ann@example.org')}/"
    for path, status in ((confirm, 200), (stop, 200), (manage, 200), ("/alerts/confirm/forged/", 400)):
        response = client.get(path)
        assert response.status_code == status, path
        assert_welsh(response.content.decode())
    page = client.post(confirm).content.decode()
    assert "mae eich rhybuddion ymlaen" in page
    assert_welsh(page)
    assert_welsh(client.post(stop).content.decode())
    page = client.post(manage, {"delete": str(in_ward.pk)}).content.decode()
    assert "Dilëwyd y rhybudd." in page and "ymlaen ers" in page
    assert_welsh(page)


def test_alert_mail_is_in_the_language_used_when_subscribing(mailbox, committed, unique_jpeg):
    with committed():
        welsh(Client()).post("/alerts/", {"email": "rhys@example.org", "latitude": "51.5", "longitude": "-0.12"})
        Client().post("/alerts/", {"email": "rose@example.org", "latitude": "51.5", "longitude": "-0.12"})
    [confirmation] = mailbox.to("rhys@example.org")
    assert confirmation["Subject"].startswith("Cadarnhewch eich rhybuddion gan")
    text = text_of(confirmation)
    assert "adroddiadau newydd o fewn 500 m i 51.50000, -0.12000" in text and "Hello" not in text
    assert '<html lang="cy">' in html_of(confirmation)
    assert mailbox.to("rose@example.org")[0]["Subject"].startswith("Confirm your alerts from")
    for address in ("rhys@example.org", "rose@example.org"):
        token = re.search(rf"{re.escape(SITE)}/alerts/confirm/([^/\s]+)/", text_of(mailbox.to(address)[0])).group(1)
        Client().post(f"/alerts/confirm/{token}/")  # confirming in English keeps the language chosen
    report = report_at(committed, unique_jpeg, 51.501, -0.12)
    [alert] = [m for m in mailbox.to("rhys@example.org") if report.service_request_id in m["Subject"]]
    assert alert["Subject"].startswith(f"Adroddiad newydd {report.service_request_id} o fewn 500 m:")
    text = text_of(alert)
    assert "Mae rhywun wedi rhoi gwybod am broblem newydd o fewn 500 m" in text and "Cyfeirnod:" in text
    assert "Reference" not in text and "Atal y rhybudd hwn:" in text
    [english] = [m for m in mailbox.to("rose@example.org") if report.service_request_id in m["Subject"]]
    assert english["Subject"].startswith(f"New report {report.service_request_id} within 500 m:")


def test_the_feed_follows_the_requests_language(committed, unique_jpeg):
    report_at(committed, unique_jpeg, 51.501, -0.12)
    feed = welsh(Client()).get("/alerts/feed/?lat=51.5&long=-0.12").content.decode()
    assert "Adroddiadau newydd o fewn 500 m i 51.50000, -0.12000" in feed and "Adroddiadau i " in feed
    assert "Categori:" in feed and "Category" not in feed
