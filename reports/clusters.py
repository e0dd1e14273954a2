"""Map answers that stay small however many reports a box holds.

A web map asks for its visible box and zoom. When more than settings.MAP_CLUSTER_THRESHOLD
reports match, the answer is one feature per grid cell (`cluster: true`, `count`, the mean
position of its reports and their extent, so a click can zoom to them) instead of one per
report. Cells are CELL_PX screen pixels at the requested zoom and aligned to 0,0, so panning
does not move them; they are coarsened until the box holds at most MAX_CELLS, so neither a
high zoom nor a wide box makes the answer large. Used by the REST GeoJSON and the console map.
"""
from __future__ import annotations

import math

from django.conf import settings
from django.contrib.gis.db.models import PointField
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import FloatField, Func, QuerySet
from django.db.models.functions import Cast

from . import params

MAX_ZOOM = 22  # the deepest web-map zoom level accepted
CELL_PX = 64  # a cell's side in screen pixels at the requested zoom
MAX_CELLS = 1024  # cells one answer may hold at most (a 2048 x 2048 px map at CELL_PX)
WORLD = (-180.0, -90.0, 180.0, 90.0)


def parse_zoom(raw: str | None) -> int | None:
    """A web-map zoom level, 0..MAX_ZOOM in ASCII digits; blank -> None (sized from the box)."""
    if raw is None or not str(raw).strip():
        return None
    text = str(raw).strip()
    if not params.WHOLE.fullmatch(text) or int(text) > MAX_ZOOM:
        raise ValidationError({"zoom": f"zoom must be a whole number between 0 and {MAX_ZOOM}, got {text[:20]!r}."},
                              code="invalid")
    return int(text)


def threshold() -> int:
    return settings.MAP_CLUSTER_THRESHOLD


def too_many(queryset: QuerySet) -> bool:
    """Whether more than threshold() reports match; counts no further than that."""
    return queryset.order_by()[:threshold() + 1].count() > threshold()


def cell_size(bbox: tuple[float, float, float, float], zoom: int | None) -> tuple[float, float]:
    """(degrees of longitude, degrees of latitude) of one cell, square on a Mercator map at the box's
    middle latitude."""
    min_lon, min_lat, max_lon, max_lat = bbox
    if zoom is None:  # as if the box filled a map 1024 px wide
        zoom = max(0, min(MAX_ZOOM, math.floor(math.log2(360 * 4 / max(max_lon - min_lon, 1e-9)))))
    dx = 360 / 2 ** zoom * CELL_PX / 256
    dy = dx * math.cos(math.radians(max(-85.0, min(85.0, (min_lat + max_lat) / 2))))
    while math.ceil((max_lon - min_lon) / dx) * math.ceil((max_lat - min_lat) / dy) > MAX_CELLS:
        dx, dy = dx * 2, dy * 2
    return dx, dy


def coordinate(function: str) -> Func:
    # location::geometry, the expression the map-box index is built on (reports.selectors.in_bbox).
    return Func(Cast("location", PointField(srid=4326)), function=function, output_field=FloatField())


def cluster_collection(queryset: QuerySet, *, bbox: tuple[float, float, float, float] | None,
                       zoom: int | None) -> dict:
    """A GeoJSON FeatureCollection of grid cells over `queryset` (already filtered to `bbox`)."""
    dx, dy = cell_size(bbox or WORLD, zoom)
    # Each report's x and y once, in a subquery: aggregating on the expressions themselves
    # evaluates the geography -> geometry cast once per aggregate and per row.
    points = queryset.order_by().annotate(x=coordinate("ST_X"), y=coordinate("ST_Y")).values_list("x", "y")
    sql, sql_params = points.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*), avg(x), avg(y), min(x), min(y), max(x), max(y) FROM ({sql}) AS point "
                       "GROUP BY floor(x / %s), floor(y / %s)", [*sql_params, dx, dy])
        cells = cursor.fetchall()
    features = [{
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [round(lon, 6), round(lat, 6)]},
        "properties": {"cluster": True, "count": n, "bbox": [round(v, 6) for v in (west, south, east, north)]},
    } for n, lon, lat, west, south, east, north in cells]
    return {"type": "FeatureCollection", "clustered": True, "count": sum(f["properties"]["count"] for f in features),
            "cell_degrees": [dx, dy], "features": features}
