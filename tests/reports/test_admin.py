"""The Django admin's report page: the original photo is reached through the staff-only view."""
from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from console.roles import setup_roles
from reports.services import report_create
from tests import images


@pytest.fixture
def council_admin(db):
    user = get_user_model().objects.create_user(username="ada", password="pw-ada", is_staff=True)
    user.groups.add(setup_roles()["admin"])
    return user


@pytest.mark.django_db
def test_admin_links_the_original_photo_to_the_staff_only_view(client, council_admin):
    photo = images.jpeg(lat=51.5, lon=-0.12)
    report = report_create(photo=photo, latitude=51.5, longitude=-0.12, classify=False).report
    client.force_login(council_admin)
    page = client.get(reverse("admin:reports_report_change", args=[report.pk])).content.decode()
    hrefs = re.findall(r'href="([^"]*original[^"]*)"', page)
    assert hrefs == [reverse("console:original", args=[report.service_request_id])]
    response = client.get(hrefs[0])
    assert response.status_code == 200 and b"".join(response.streaming_content) == photo
    client.logout()
    assert client.get(hrefs[0]).status_code == 302  # to the console login: never public
