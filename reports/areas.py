"""Named areas (wards, parks, road corridors) from GeoJSON, for routing rules and area alerts.

One reader for the `import_areas` command and the console's upload, so both refuse the same
files with the same messages and write nothing unless the whole file is good.
"""
from __future__ import annotations

import json

from django.contrib.gis.gdal.error import GDALException
from django.contrib.gis.geos import GEOSException, GEOSGeometry, MultiPolygon, WKBWriter
from django.core.exceptions import ValidationError
from django.db import transaction

from .models import Area

_NAME_MAX = Area._meta.get_field("name").max_length
_WGS84 = {"EPSG:4326", "urn:ogc:def:crs:EPSG::4326", "urn:ogc:def:crs:OGC:1.3:CRS84", "urn:ogc:def:crs:OGC::CRS84"}


def _features(data: bytes | str) -> list[dict]:
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValidationError(f"The file is not JSON: {exc}.") from None
    if not isinstance(doc, dict) or doc.get("type") not in ("FeatureCollection", "Feature"):
        raise ValidationError("The file is not GeoJSON: expected a FeatureCollection or a Feature.")
    crs = ((doc.get("crs") or {}).get("properties") or {}).get("name")
    if crs and crs not in _WGS84:
        raise ValidationError(f"The file's coordinates are in {crs}; areas must be in longitude/latitude "
                              f"(WGS 84, EPSG:4326), as GeoJSON requires.")
    features = doc.get("features") if doc["type"] == "FeatureCollection" else [doc]
    if not isinstance(features, list) or not features:
        raise ValidationError("The file has no features.")
    return features


def _polygon(feature: dict, label: str) -> MultiPolygon:
    geometry = feature.get("geometry") if isinstance(feature, dict) else None
    kind = geometry.get("type") if isinstance(geometry, dict) else None
    if kind not in ("Polygon", "MultiPolygon"):
        raise ValidationError(f"{label}: the geometry is {kind or 'missing'}; an area must be a Polygon "
                              f"or MultiPolygon.")
    try:
        geom = GEOSGeometry(json.dumps(geometry), srid=4326)
    except (GEOSException, GDALException, ValueError, TypeError):
        geom = None
    if geom is None or geom.empty:
        raise ValidationError(f"{label}: the geometry cannot be read; a polygon is closed rings of "
                              f"[longitude, latitude] numbers.")
    if geom.hasz:  # heights mean nothing to a boundary; the column is 2D
        writer = WKBWriter()
        writer.outdim = 2
        geom = GEOSGeometry(writer.write(geom), srid=4326)
    xmin, ymin, xmax, ymax = geom.extent
    if not (-180 <= xmin <= xmax <= 180 and -90 <= ymin <= ymax <= 90):
        raise ValidationError(f"{label}: coordinates lie outside longitude -180..180 / latitude -90..90; "
                              f"GeoJSON puts longitude first.")
    if not geom.valid:
        raise ValidationError(f"{label}: the polygon is not valid ({geom.valid_reason}).")
    return geom if isinstance(geom, MultiPolygon) else MultiPolygon(geom, srid=4326)


def areas_import(*, data: bytes | str, name_field: str, source: str = "") -> list[Area]:
    """Create or update (by name) one Area per feature of a GeoJSON file, its name read from
    the feature property `name_field`. All or nothing: any bad feature raises ValidationError
    naming it, and nothing is written."""
    parsed: dict[str, MultiPolygon] = {}
    for n, feature in enumerate(_features(data), start=1):
        properties = feature.get("properties") if isinstance(feature, dict) else None
        name = str((properties or {}).get(name_field) or "").strip()
        label = f"Feature {n}" + (f" ({name})" if name else "")
        if not name:
            raise ValidationError(f"{label}: no {name_field!r} property to name the area by.")
        if len(name) > _NAME_MAX:
            raise ValidationError(f"{label}: the name is longer than {_NAME_MAX} characters.")
        if name in parsed:
            raise ValidationError(f"{label}: another feature in the file has the same name.")
        parsed[name] = _polygon(feature, label)
    with transaction.atomic():
        return [Area.objects.update_or_create(name=name, defaults={"geometry": geom, "source": source[:255]})[0]
                for name, geom in parsed.items()]
