"""reports.params, the one parser behind the REST, Open311 and console map/export parameters,
and what those endpoints answer for boxes, dates and pages: what lies inside, or a 400."""
from __future__ import annotations

import json

import pytest
from django.core.exceptions import ValidationError

from reports import params, services

LONDON = (51.5, -0.12)  # lat, lon
SYDNEY = (-33.9, 151.2)
GEOJSON = "/api/v1/reports/geojson/"
REQUESTS = "/open311/v2/requests"


def message(exc: pytest.ExceptionInfo) -> str:
    return " ".join(exc.value.messages)


# The parser ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("raw,expected", [
    ("-180,-90,180,90", (-180.0, -90.0, 180.0, 90.0)),
    (" -0.2, 51.4 ,0,51.6 ", (-0.2, 51.4, 0.0, 51.6)),
    ("1e1,0,+20,.5", (10.0, 0.0, 20.0, 0.5)),
    ("5,5,5,5", (5.0, 5.0, 5.0, 5.0)),
])
def test_bbox_accepts_any_box_within_the_world(raw, expected):
    assert params.parse_bbox(raw) == expected


@pytest.mark.parametrize("raw", [None, "", "  "])
def test_blank_bbox_is_no_filter(raw):
    assert params.parse_bbox(raw) is None


@pytest.mark.parametrize("raw,fragment", [
    ("nan,0,1,1", "must be four numbers"),
    ("0,0,inf,1", "must be four numbers"),
    ("0,0,1e999,1", "outside -180..180"),
    ("0,0,1_0,1", "must be four numbers"),
    ("٠,0,1,1", "must be four numbers"),  # Arabic-Indic zero: float() takes it
    ("1,2,3", "must be four numbers"),
    ("1,2,3,4,5", "must be four numbers"),
    ("-181,0,0,1", "outside -180..180"),
    ("0,-91,1,1", "outside -180..180"),
    ("10,0,0,1", "minimum is larger than its maximum"),
    ("0,10,1,0", "minimum is larger than its maximum"),
])
def test_bad_bbox_names_the_parameter(raw, fragment):
    with pytest.raises(ValidationError) as exc:
        params.parse_bbox(raw, name="in_bbox")
    assert exc.value.message_dict.keys() == {"in_bbox"}
    assert message(exc).startswith("in_bbox ") and fragment in message(exc)


@pytest.mark.parametrize("raw", ["²", "١٠", "1.0", "+1", " ", "0", "201", "99999999999999999999"])
def test_positive_int_takes_ascii_digits_in_range_only(raw):
    if not raw.strip():
        assert params.parse_positive_int(raw, name="page", default=7, maximum=200) == 7
        return
    with pytest.raises(ValidationError) as exc:
        params.parse_positive_int(raw, name="page", default=1, maximum=200)
    assert "page must be a whole number between 1 and 200" in message(exc)


@pytest.mark.parametrize("raw", ["9999-12-31", "0001-01-01", "1969-12-31T23:59:59Z", "2100-01-01"])
def test_datetimes_outside_the_date_range_are_refused(raw):
    with pytest.raises(ValidationError) as exc:
        params.parse_datetime_param(raw, name="start_date")
    assert "start_date must be between 1970-01-01 and 2099-12-31" in message(exc)


@pytest.mark.parametrize("raw", ["2026-13-01", "yesterday", "２０２６-01-01", "2026-01-01T25:00:00Z"])
def test_malformed_datetimes_are_refused(raw):
    with pytest.raises(ValidationError) as exc:
        params.parse_datetime_param(raw, name="end_date")
    assert "end_date must be a W3C datetime" in message(exc)


def test_near_defaults_the_radius_and_refuses_bad_parts():
    point, metres = params.parse_near("51.5", "-0.12", None)
    assert (point.x, point.y, point.srid, metres) == (-0.12, 51.5, 4326, params.DEFAULT_RADIUS_M)
    assert params.parse_near(None, "", None) is None
    for lat, long, radius, name in [("nan", "0", None, "lat"), ("0", "inf", None, "long"), ("91", "0", None, "lat"),
                                    ("0", "0", "-1", "radius"), ("0", "0", "50001", "radius"),
                                    ("0", None, None, "long"), (None, None, "10", "radius")]:
        with pytest.raises(ValidationError) as exc:
            params.parse_near(lat, long, radius)
        assert exc.value.message_dict.keys() == {name}, (lat, long, radius)


# The endpoints ------------------------------------------------------------------------------------

@pytest.fixture
def london_and_sydney(db, unique_jpeg):
    return [services.report_create(photo=unique_jpeg(), latitude=lat, longitude=lon).report.service_request_id
            for lat, lon in (LONDON, SYDNEY)]


@pytest.mark.parametrize("bbox,inside", [
    ("-180,-90,180,90", {0, 1}),  # the whole world: PostGIS geography refuses its 180-degree edges
    ("-170,-80,170,80", {0, 1}),  # as a geography polygon, a sliver across the antimeridian
    ("-180,0,0,90", {0}),  # 180 degrees wide, touching the pole
    ("0,-90,180,0", {1}),
    ("-10,45,10,90", {0}),
    ("-0.2,51.4,0,51.6", {0}),
    ("100,-90,120,90", set()),
])
def test_rest_geojson_returns_what_lies_in_wide_boxes(client, london_and_sydney, bbox, inside):
    response = client.get(GEOJSON, {"in_bbox": bbox})
    assert response.status_code == 200, response.content
    assert {f["properties"]["reference"] for f in response.json()["features"]} == {london_and_sydney[i] for i in inside}


@pytest.mark.parametrize("bbox", ["nan,0,1,1", "-inf,0,1,1", "0,0,1", "a,b,c,d", "-181,0,1,1", "10,0,0,1"])
def test_rest_geojson_bad_bbox_is_a_400_json_error(client, db, bbox):
    response = client.get(GEOJSON, {"in_bbox": bbox})
    assert response.status_code == 400
    body = response.json()
    assert body["detail"].startswith("in_bbox ") and list(body["errors"]) == ["in_bbox"]


@pytest.mark.parametrize("query,fragment", [
    ({"page": "²"}, "page must be a whole number"),
    ({"page_size": "١٠"}, "page_size must be a whole number"),
    ({"start_date": "9999-12-31"}, "start_date must be between 1970-01-01 and 2099-12-31"),
    ({"end_date": "0001-01-01"}, "end_date must be between 1970-01-01 and 2099-12-31"),
    ({"start_date": "9999-12-31T23:59:59-12:00"}, "start_date must be between"),
    ({"start_date": "2026-02-30"}, "start_date must be a W3C datetime"),
    ({"lat": "NaN", "long": "0"}, "lat must be a number"),
    ({"lat": "51.5", "long": "Infinity"}, "long must be a number"),
    ({"lat": "51.5"}, "Give both lat and long"),
    ({"lat": "51.5", "long": "0", "radius": "1e9"}, "radius must be between 0 and 50000"),
])
def test_open311_bad_parameters_are_400_error_lists_in_both_formats(client, db, query, fragment):
    body = client.get(f"{REQUESTS}.json", query)
    assert body.status_code == 400 and body["Content-Type"].startswith("application/json")
    errors = json.loads(body.content)
    assert errors[0]["code"] == 400 and fragment in errors[0]["description"], errors
    xml = client.get(f"{REQUESTS}.xml", query)
    assert xml.status_code == 400 and b"<errors><error><code>400</code>" in xml.content


def test_open311_lat_long_radius_finds_reports_nearby(client, london_and_sydney):
    near = json.loads(client.get(f"{REQUESTS}.json", {"lat": "51.501", "long": "-0.12", "radius": "500"}).content)
    assert [r["service_request_id"] for r in near] == [london_and_sydney[0]]  # ~111 m away
    far = json.loads(client.get(f"{REQUESTS}.json", {"lat": "51.6", "long": "-0.12", "radius": "500"}).content)
    assert far == []


def test_the_bbox_filter_matches_the_geometry_index(db):
    """in_bbox's cast is the indexed expression (migration 0008), so a map box need not scan every row."""
    from django.db import connection

    from reports.models import Report
    from reports.selectors import in_bbox

    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # a few test rows would otherwise favour a scan
        plan = Report.objects.filter(in_bbox((-0.2, 51.4, 0.0, 51.6))).order_by().explain()  # no ORDER BY: only the box decides
    assert "report_location_geom_idx" in plan
