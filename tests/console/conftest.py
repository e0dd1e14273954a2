"""Console fixtures: one user per role, and reports made through the real intake service."""
from __future__ import annotations

import itertools

import pytest
from django.contrib.auth import get_user_model
from django.contrib.gis.geos import Point

from console.roles import setup_roles
from reports.models import Category, Report
from reports.services import report_create
from tests import images

_seq = itertools.count(1)


@pytest.fixture
def roles(db):
    return setup_roles()


def _user(username: str, group=None, **extra):
    user = get_user_model().objects.create_user(username=username, password="pw-" + username, **extra)
    if group is not None:
        user.groups.add(group)
    return get_user_model().objects.get(pk=user.pk)  # fresh permission cache


@pytest.fixture
def triager(roles):
    return _user("tina", roles["triager"])


@pytest.fixture
def supervisor(roles):
    return _user("sam", roles["supervisor"])


@pytest.fixture
def council_admin(roles):
    return _user("ada", roles["admin"], is_staff=True)


@pytest.fixture
def outsider(db):
    return _user("olly")


@pytest.fixture
def make_report(db):
    """make_report(lat=, lon=, status=, predicted=, probability=, ...) -> Report.

    Goes through reports.services.report_create (real photo pipeline), then sets
    the classifier's fields directly, as the classify task would."""
    def make(*, lat: float = 51.5, lon: float = -0.12, status: str = Report.Status.NEEDS_REVIEW,
             predicted: str | None = "pothole", probability: float | None = 0.5, citizen: str | None = None,
             phash: str | None = None, **fields) -> Report:
        n = next(_seq)
        photo = images.jpeg(color=((n * 37) % 256, (n * 91) % 256, (n * 13 + 50) % 256), size=(96, 72))
        report = report_create(photo=photo, latitude=lat, longitude=lon, category=citizen,
                               description=f"report {n}").report
        updates = dict(status=status, predicted_label=predicted or "", predicted_probability=probability,
                       predicted_category=Category.objects.filter(slug=predicted).first() if predicted else None,
                       predicted_top_k=[[predicted, probability], ["graffiti", 0.1]] if predicted else None,
                       model_version="v1" if predicted else "")
        updates.update(fields)
        if phash is not None:
            updates["photo_phash"] = phash
        Report.objects.filter(pk=report.pk).update(**updates)
        return Report.objects.get(pk=report.pk)
    return make


def category(slug: str) -> Category:
    return Category.objects.get(slug=slug)


def point(lat: float, lon: float) -> Point:
    return Point(lon, lat, srid=4326)
