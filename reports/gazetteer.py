"""The local gazetteer: streets, places and postcodes a citizen can search for instead of using a map,
and the street that reverse lookup names at intake. Read from CSV (OS Open Names or a council's own
list, `manage.py import_gazetteer`); searched with PostgreSQL trigrams, so typos still match and no
outside service is asked.
"""
from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from django.contrib.gis.db.models.functions import Distance
from django.contrib.gis.gdal import CoordTransform, SpatialReference
from django.contrib.gis.geos import Point
from django.contrib.gis.measure import D
from django.contrib.postgres.search import TrigramSimilarity, TrigramWordSimilarity
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Case, When

from .models import Place, Report

SEARCH_MIN_CHARS = 3  # fewer letters than a trigram match nothing useful
SEARCH_LIMIT = 8
# pg_trgm word_similarity (0..1); lower than its 0.6 default so a typo or two still match
WORD_SIMILARITY_THRESHOLD = 0.4
REVERSE_LOOKUP_METRES = 150  # a street further than this from the point is not named as its address
BATCH = 2000  # rows per INSERT ... ON CONFLICT while importing

# OS Open Names' CSV files come without a header line (it ships as a separate file); these are its 34 columns.
OS_OPEN_NAMES_COLUMNS = (
    "ID,NAMES_URI,NAME1,NAME1_LANG,NAME2,NAME2_LANG,TYPE,LOCAL_TYPE,GEOMETRY_X,GEOMETRY_Y,MOST_DETAIL_VIEW_RES,"
    "LEAST_DETAIL_VIEW_RES,MBR_XMIN,MBR_YMIN,MBR_XMAX,MBR_YMAX,POSTCODE_DISTRICT,POSTCODE_DISTRICT_URI,"
    "POPULATED_PLACE,POPULATED_PLACE_URI,POPULATED_PLACE_TYPE,DISTRICT_BOROUGH,DISTRICT_BOROUGH_URI,"
    "DISTRICT_BOROUGH_TYPE,COUNTY_UNITARY,COUNTY_UNITARY_URI,COUNTY_UNITARY_TYPE,REGION,REGION_URI,COUNTRY,"
    "COUNTRY_URI,RELATED_SPATIAL_OBJECT,SAME_AS_DBPEDIA,SAME_AS_GEONAMES"
).split(",")
OS_KINDS = {
    "Named Road": Place.Kind.STREET, "Section Of Named Road": Place.Kind.STREET,
    "Numbered Road": Place.Kind.STREET, "Section Of Numbered Road": Place.Kind.STREET,
    "Postcode": Place.Kind.POSTCODE,
    "City": Place.Kind.PLACE, "Town": Place.Kind.PLACE, "Village": Place.Kind.PLACE, "Hamlet": Place.Kind.PLACE,
    "Suburban Area": Place.Kind.PLACE, "Other Settlement": Place.Kind.PLACE,
}  # every other LOCAL_TYPE (stations, parks, hospitals...) is a landmark
COUNCIL_COLUMNS = {"name", "kind", "lat", "lon"}  # plus an optional "locality"
_BNG_TO_WGS84 = None


@dataclass
class ImportResult:
    read: int = 0
    kinds: Counter = field(default_factory=Counter)
    skipped: list[str] = field(default_factory=list)  # "line N: why", for the command to show

    @property
    def imported(self) -> int:
        return sum(self.kinds.values())


def _bng_to_wgs84() -> CoordTransform:
    global _BNG_TO_WGS84
    if _BNG_TO_WGS84 is None:
        _BNG_TO_WGS84 = CoordTransform(SpatialReference(27700), SpatialReference(4326))
    return _BNG_TO_WGS84


def bng_point(easting: float, northing: float) -> Point:
    """British National Grid metres (EPSG:27700) as a longitude/latitude point (EPSG:4326)."""
    point = Point(easting, northing, srid=27700)
    point.transform(_bng_to_wgs84())
    return point


def _text(value: str | None, limit: int) -> str:
    return " ".join((value or "").split())[:limit]


def _os_places(row: dict, source: str) -> Iterator[Place]:
    """One Place per name: Welsh and English names (NAME1, NAME2) are both searchable."""
    try:
        point = bng_point(float(row["GEOMETRY_X"]), float(row["GEOMETRY_Y"]))
    except (TypeError, ValueError):
        raise ValueError("GEOMETRY_X/GEOMETRY_Y are not numbers") from None
    kind = OS_KINDS.get(row.get("LOCAL_TYPE") or "", Place.Kind.LANDMARK)
    town = row.get("POPULATED_PLACE") or row.get("DISTRICT_BOROUGH") or row.get("COUNTY_UNITARY") or ""
    if kind == Place.Kind.PLACE:
        town = row.get("DISTRICT_BOROUGH") or row.get("COUNTY_UNITARY") or ""
    locality = ", ".join(p for p in (town, "" if kind == Place.Kind.POSTCODE else row.get("POSTCODE_DISTRICT")) if p)
    ident = _text(row.get("ID"), 100)
    if not ident:
        raise ValueError("no ID")
    for suffix, name in (("", row.get("NAME1")), (":2", row.get("NAME2"))):
        if name := _text(name, 200):
            yield Place(ref=f"os:{ident}{suffix}", name=name, kind=kind, locality=_text(locality, 200),
                        point=point, source=source)


def _council_place(row: dict, source: str) -> Iterator[Place]:
    name, locality = _text(row.get("name"), 200), _text(row.get("locality"), 200)
    kind = (row.get("kind") or "").strip().lower()
    if not name:
        raise ValueError("no name")
    if kind not in Place.Kind.values:
        raise ValueError(f"kind {kind!r} is not one of {', '.join(Place.Kind.values)}")
    try:
        lat, lon = float(row["lat"]), float(row["lon"])
    except (TypeError, ValueError):
        raise ValueError("lat/lon are not numbers") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise ValueError("lat/lon outside -90..90 / -180..180")
    yield Place(ref=f"{kind}|{name}|{locality}".lower()[:120], name=name, kind=kind, locality=locality,
                point=Point(lon, lat, srid=4326), source=source)


def _reader(text: io.TextIOBase) -> tuple[csv.DictReader, str]:
    """A DictReader and which format: a council CSV (name,kind,lat,lon), OS Open Names with its header
    line, or OS Open Names as shipped (no header, 34 columns, IDs starting "osgb")."""
    sample = text.readline()
    first = next(csv.reader([sample]), [])
    header = {c.strip().lower() for c in first}
    text.seek(0)
    if COUNCIL_COLUMNS <= header:
        reader = csv.DictReader(text)
        reader.fieldnames = [c.strip().lower() for c in reader.fieldnames or []]
        return reader, "council"
    if {"name1", "local_type", "geometry_x", "geometry_y", "id"} <= header:
        reader = csv.DictReader(text)
        reader.fieldnames = [c.strip().upper() for c in reader.fieldnames or []]
        return reader, "os_open_names"
    if len(first) == len(OS_OPEN_NAMES_COLUMNS) and first[0].startswith("osgb"):
        return csv.DictReader(text, fieldnames=OS_OPEN_NAMES_COLUMNS), "os_open_names"
    raise ValidationError(
        "The file is neither OS Open Names (NAME1, LOCAL_TYPE, GEOMETRY_X, GEOMETRY_Y...) nor a council "
        "list with the columns name,kind,lat,lon (and optionally locality).")


def _upsert(places: list[Place]) -> None:
    unique = {p.ref: p for p in places}  # a file naming one ID twice: the last wins, as a re-import would
    Place.objects.bulk_create(unique.values(), update_conflicts=True, unique_fields=["ref"],
                              update_fields=["name", "kind", "locality", "point", "source"])


def places_import(*, lines: Iterable[str] | io.TextIOBase, source: str) -> ImportResult:
    """Create or update places from a CSV; the same file imported again changes nothing.

    A row that cannot be read is skipped and reported (a national file has a few); a file in neither
    format raises ValidationError before anything is written. Places are keyed by the source's ID
    (OS Open Names) or kind, name and locality (a council list), so a corrected point replaces the old one.
    """
    text = lines if isinstance(lines, io.TextIOBase) else io.StringIO("".join(lines))
    reader, fmt = _reader(text)
    make = _council_place if fmt == "council" else _os_places
    result, batch = ImportResult(), []
    with transaction.atomic():
        for row in reader:
            result.read += 1
            try:
                made = list(make(row, source))
            except (ValueError, KeyError) as exc:
                result.skipped.append(f"line {reader.line_num}: {exc}")
                continue
            for place in made:
                result.kinds[place.kind] += 1
            batch.extend(made)
            if len(batch) >= BATCH:
                _upsert(batch)
                batch = []
        if batch:
            _upsert(batch)
    return result


def places_search(*, query: str, limit: int = SEARCH_LIMIT) -> list[Place]:
    """Places whose name best matches what was typed, typos allowed: most similar word first, then the
    closest whole name, streets before other kinds of the same score. Uses the trigram index."""
    query = " ".join(query.split())[:100]
    if len(query) < SEARCH_MIN_CHARS:
        return []
    with transaction.atomic(), connection.cursor() as cursor:
        # Only for this transaction: the %> operator (and so the GIN index) uses this threshold.
        cursor.execute("SELECT set_config('pg_trgm.word_similarity_threshold', %s, true)",
                       [str(WORD_SIMILARITY_THRESHOLD)])
        return list(
            Place.objects.filter(name__trigram_word_similar=query)
            .annotate(word=TrigramWordSimilarity(query, "name"), whole=TrigramSimilarity("name", query))
            .annotate(street_first=Case(When(kind=Place.Kind.STREET, then=0), default=1))
            .order_by("-word", "-whole", "street_first", "name", "locality")[:limit]
        )


def nearest_street(*, point: Point, within_m: float = REVERSE_LOOKUP_METRES) -> Place | None:
    """The gazetteer street nearest the point, if one lies within `within_m` metres."""
    return (Place.objects.filter(kind=Place.Kind.STREET, point__dwithin=(point, D(m=within_m)))
            .annotate(distance=Distance("point", point)).order_by("distance", "name").first())


def place_label(place: Place) -> str:
    """How a place reads as a report's address."""
    return str(place)[:Report._meta.get_field("address").max_length]
