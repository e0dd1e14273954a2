"""Query parameters shared by the REST API, Open311 and the console's map and exports.

One parser, one set of messages: a bad value raises ValidationError({name: message}), which
each endpoint renders as a 400 in its own error format, never a 500 and never a filter
silently dropped. Numbers must be ASCII decimals: Python's int() and float() also take
'²', '١٠', 'nan', 'inf' and '1_000'. Dates must lie within DATE_RANGE, so that window
arithmetic (start + 90 days, the day after end) stays inside what datetime and
PostgreSQL can hold.
"""
from __future__ import annotations

import datetime as dt
import math
import re

from django.contrib.gis.geos import Point
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d{1,3})?", re.ASCII)
WHOLE = re.compile(r"\d{1,9}", re.ASCII)
DATE_RANGE = (dt.date(1970, 1, 1), dt.date(2099, 12, 31))
DEFAULT_RADIUS_M, MAX_RADIUS_M = 1_000, 50_000  # metres
BBOX_FORMAT = "min_lon,min_lat,max_lon,max_lat"


def _invalid(name: str, message: str) -> ValidationError:
    return ValidationError({name: message}, code="invalid")


def _blank(raw) -> bool:
    return raw is None or not str(raw).strip()


def parse_number(raw: str, *, name: str, low: float, high: float, label: str = "") -> float:
    """A finite ASCII decimal between `low` and `high` (inclusive)."""
    label = label or name
    text = str(raw).strip()
    if not DECIMAL.fullmatch(text) or not math.isfinite(value := float(text)):
        raise _invalid(name, f"{label} must be a number, got {text[:30]!r}.")
    if not low <= value <= high:
        raise _invalid(name, f"{label} must be between {low:g} and {high:g}, got {text[:30]!r}.")
    return value


def parse_bbox(raw: str | None, *, name: str = "bbox", label: str = "") -> tuple[float, float, float, float] | None:
    """'min_lon,min_lat,max_lon,max_lat' in degrees (SRID 4326) -> a tuple; blank -> None.

    Any box inside -180..180 / -90..90 is accepted, the whole world included: filter with
    reports.selectors.in_bbox, which compares planar coordinates as a web map shows them.
    """
    if _blank(raw):
        return None
    label = label or name
    parts = str(raw).split(",")
    if len(parts) != 4 or not all(DECIMAL.fullmatch(p.strip()) for p in parts):
        raise _invalid(name, f"{label} must be four numbers: {BBOX_FORMAT}.")
    values = tuple(float(p) for p in parts)
    min_lon, min_lat, max_lon, max_lat = values
    if not all(map(math.isfinite, values)) or not (
            all(-180 <= v <= 180 for v in (min_lon, max_lon)) and all(-90 <= v <= 90 for v in (min_lat, max_lat))):
        raise _invalid(name, f"{label} is outside -180..180 longitude / -90..90 latitude.")
    if min_lon > max_lon or min_lat > max_lat:
        raise _invalid(name, f"{label} minimum is larger than its maximum ({BBOX_FORMAT}).")
    return values


def check_date(day: dt.date | None, *, name: str, label: str = "") -> dt.date | None:
    """`day` unchanged if within DATE_RANGE (None passes)."""
    low, high = DATE_RANGE
    if day is not None and not low <= day <= high:
        raise _invalid(name, f"{label or name} must be between {low.isoformat()} and {high.isoformat()}, "
                             f"got {day.isoformat()}.")
    return day


def parse_datetime_param(raw: str | None, *, name: str) -> dt.datetime | None:
    """W3C datetime ('2026-01-31T09:00:00Z', '...+01:00') or a date (local midnight); blank -> None.

    An unencoded '+' in the offset arrives as a space and is read as '+'.
    """
    if _blank(raw):
        return None
    value = re.sub(r" (\d\d:?\d\d)$", r"+\1", str(raw).strip())
    try:
        parsed = parse_datetime(value)
        if parsed is None and (day := parse_date(value)) is not None:
            parsed = dt.datetime.combine(day, dt.time.min)
    except ValueError:
        parsed = None
    if parsed is None or not value.isascii():
        raise _invalid(name, f"{name} must be a W3C datetime such as 2026-01-31T09:00:00Z, got {value[:40]!r}.")
    check_date(parsed.date(), name=name)
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed)


def parse_positive_int(raw: str | None, *, name: str, default: int, maximum: int) -> int:
    """A whole number 1..maximum in ASCII digits; blank -> default."""
    if _blank(raw):
        return default
    text = str(raw).strip()
    if not WHOLE.fullmatch(text) or not 1 <= int(text) <= maximum:
        raise _invalid(name, f"{name} must be a whole number between 1 and {maximum}, got {text[:20]!r}.")
    return int(text)


def parse_near(lat: str | None, long: str | None, radius: str | None) -> tuple[Point, float] | None:
    """lat/long (degrees) and radius (metres, default DEFAULT_RADIUS_M) -> (point, metres); none given -> None."""
    if _blank(lat) and _blank(long):
        if not _blank(radius):
            raise _invalid("radius", "radius needs lat and long.")
        return None
    if _blank(lat) or _blank(long):
        raise _invalid("lat" if _blank(lat) else "long", "Give both lat and long, or neither.")
    latitude = parse_number(lat, name="lat", low=-90, high=90)
    longitude = parse_number(long, name="long", low=-180, high=180)
    metres = DEFAULT_RADIUS_M if _blank(radius) else parse_number(radius, name="radius", low=0, high=MAX_RADIUS_M)
    return Point(longitude, latitude, srid=4326), metres
