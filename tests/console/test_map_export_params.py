"""The console's map and exports read their filters with reports.params: wide boxes return what
lies inside them, bad values are a 400 JSON error (never a 500, never a filter silently dropped)."""
from __future__ import annotations

import csv
import io
import json

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db

ENDPOINTS = ["console:map-geojson", "console:export-csv", "console:export-geojson"]


def references(response) -> set[str]:
    assert response.status_code == 200, response.content
    if response.streaming:
        body = b"".join(response.streaming_content).decode()
        if response["Content-Type"].startswith("text/csv"):
            return {row["reference"] for row in csv.DictReader(io.StringIO(body))}
        return {f["properties"]["reference"] for f in json.loads(body)["features"]}
    return {f["properties"]["reference"] for f in response.json()["features"]}


@pytest.fixture
def london_and_sydney(client, triager, make_report):
    client.force_login(triager)
    return make_report(lat=51.5, lon=-0.12).service_request_id, make_report(lat=-33.9, lon=151.2).service_request_id


@pytest.mark.parametrize("name", ENDPOINTS)
@pytest.mark.parametrize("bbox,inside", [
    ("-180,-90,180,90", {0, 1}),  # the whole world (a 500 from PostGIS geography before)
    ("-170,-80,170,80", {0, 1}),  # 0 rows before: a geography polygon across the antimeridian
    ("0,-90,180,0", {1}),  # 180 degrees wide, touching the pole
    ("-1,51,1,52", {0}),
])
def test_wide_boxes_return_what_lies_inside(client, london_and_sydney, name, bbox, inside):
    got = references(client.get(reverse(name), {"bbox": bbox, "status": ""}))
    assert got == {london_and_sydney[i] for i in inside}


@pytest.mark.parametrize("name", ENDPOINTS)
@pytest.mark.parametrize("query,field,fragment", [
    ({"bbox": "nan,0,1,1"}, "bbox", "Map area must be four numbers"),
    ({"bbox": "0,0,inf,1"}, "bbox", "Map area must be four numbers"),
    ({"bbox": "1,2,3"}, "bbox", "Map area must be four numbers"),
    ({"date_from": "9999-12-31"}, "date_from", "date_from must be between 1970-01-01 and 2099-12-31"),
    ({"date_to": "0001-01-01"}, "date_to", "date_to must be between 1970-01-01 and 2099-12-31"),
    ({"date_to": "9999-12-31"}, "date_to", "must be between"),  # the day after would overflow
    ({"date_from": "yesterday"}, "date_from", "Enter a valid date"),
    ({"min_confidence": "NaN"}, "min_confidence", "Enter a number"),
    ({"status": "bogus"}, "status", "Select a valid choice"),
])
def test_bad_filters_are_a_400_json_error(client, triager, name, query, field, fragment):
    client.force_login(triager)
    response = client.get(reverse(name), query)
    assert response.status_code == 400 and response["Content-Type"] == "application/json"
    body = response.json()
    assert list(body["errors"]) == [field] and fragment in body["detail"]


def test_queue_page_takes_the_whole_world_and_survives_a_far_date(client, london_and_sydney):
    response = client.get(reverse("console:queue"), {"bbox": "-180,-90,180,90", "status": ""})
    assert response.status_code == 200 and london_and_sydney[1] in response.content.decode()
    # The queue falls back to no date filter (the day after 9999-12-31 was an OverflowError, a 500).
    response = client.get(reverse("console:queue"), {"date_to": "9999-12-31", "status": ""})
    assert response.status_code == 200 and london_and_sydney[1] in response.content.decode()
