"""Issue 13 item 13: maps stay bounded. Above MAP_CLUSTER_THRESHOLD reports in the box, the REST
GeoJSON and the console map answer grid clusters whose counts add up to the matching reports;
below it, every report. The filters apply to clusters too; a bad zoom is a 400."""
from __future__ import annotations

import math

import pytest
from django.urls import reverse

from reports import clusters, services
from reports.models import Category, Report
from tests.images import jpeg

GEOJSON = "/api/v1/reports/geojson/"
UK = "-6,49.9,2,55.9"
STREET = "-0.125,51.499,-0.115,51.503"  # about 700 x 450 m around the London group
LONDON = [(51.5005, -0.1201), (51.5012, -0.1185), (51.5020, -0.1170)]  # lat, lon
MANCHESTER = [(53.4800, -2.2420), (53.4810, -2.2400), (53.4790, -2.2380), (53.4805, -2.2410)]


@pytest.fixture
def seven(db):
    """Three reports in a London street (pothole), four in Manchester (graffiti, one fixed)."""
    made = []
    for n, (lat, lon) in enumerate(LONDON + MANCHESTER):
        slug = "pothole" if n < len(LONDON) else "graffiti"
        photo = jpeg(color=(n * 30 % 256, 90, 200 - n * 20), size=(96, 72))
        made.append(services.report_create(photo=photo, latitude=lat, longitude=lon, category=slug).report)
    Report.objects.filter(pk=made[-1].pk).update(status=Report.Status.FIXED)
    return made


@pytest.fixture
def triager(client, django_user_model):
    from console.roles import setup_roles

    user = django_user_model.objects.create_user("map-triager", password="x")
    user.groups.add(setup_roles()["triager"])
    client.force_login(user)
    return user


def counted(body: dict) -> int:
    return sum(f["properties"]["count"] for f in body["features"])


def test_rest_geojson_clusters_above_the_threshold_and_counts_add_up(client, seven, settings):
    settings.MAP_CLUSTER_THRESHOLD = 3
    body = client.get(GEOJSON, {"in_bbox": UK, "zoom": "6"}).json()
    assert body["clustered"] is True
    assert all(f["properties"]["cluster"] for f in body["features"])
    assert counted(body) == body["count"] == 7
    assert len(body["features"]) == 2  # a London cell and a Manchester cell at zoom 6
    manchester = max(body["features"], key=lambda f: f["geometry"]["coordinates"][1])
    west, south, east, north = manchester["properties"]["bbox"]
    lon, lat = manchester["geometry"]["coordinates"]
    assert manchester["properties"]["count"] == 4 and west <= lon <= east and south <= lat <= north
    assert (west, north) == (-2.242, 53.481)  # lon, lat order: the extent of its reports


def test_rest_geojson_lists_reports_at_or_below_the_threshold(client, seven, settings):
    settings.MAP_CLUSTER_THRESHOLD = 7
    body = client.get(GEOJSON, {"in_bbox": UK, "zoom": "6"}).json()
    assert body["clustered"] is False and body["count"] == 7
    assert {f["properties"]["reference"] for f in body["features"]} == {r.service_request_id for r in seven}


def test_a_street_level_box_returns_its_reports(client, seven, settings):
    settings.MAP_CLUSTER_THRESHOLD = 3
    body = client.get(GEOJSON, {"in_bbox": STREET, "zoom": "17"}).json()
    assert body["clustered"] is False
    assert {f["properties"]["reference"] for f in body["features"]} == {r.service_request_id for r in seven[:3]}


def test_the_whole_world_without_a_box_or_zoom_is_clustered(client, seven, settings):
    settings.MAP_CLUSTER_THRESHOLD = 1
    body = client.get(GEOJSON).json()
    assert body["clustered"] is True and counted(body) == 7


@pytest.mark.parametrize("query,expected", [
    ({"category": "graffiti"}, 4),
    ({"category": "pothole"}, 3),
    ({"status": "fixed"}, 1),
    ({"status": ["needs_review", "pending_classification", "triaged"], "category": "graffiti"}, 3),
    ({"in_bbox": "-3,53,-2,54"}, 4),
])
def test_filters_apply_to_clusters(client, seven, settings, query, expected):
    settings.MAP_CLUSTER_THRESHOLD = 0
    body = client.get(GEOJSON, {**query, "zoom": "5"}).json()
    assert body["clustered"] is True and counted(body) == body["count"] == expected


def test_clusters_follow_the_public_category_rule(client, seven, settings):
    """Staff's decision is what the public sees: a London pothole re-labelled graffiti counts as graffiti."""
    settings.MAP_CLUSTER_THRESHOLD = 0
    Report.objects.filter(pk=seven[0].pk).update(final_category=Category.objects.get(slug="graffiti"))
    assert counted(client.get(GEOJSON, {"category": "graffiti"}).json()) == 5
    assert counted(client.get(GEOJSON, {"category": "pothole"}).json()) == 2


@pytest.mark.parametrize("zoom", ["-1", "23", "1.5", "²", "abc", "nan", "1e1", "99999999999"])
def test_bad_zoom_is_a_400_naming_it(client, db, zoom):
    response = client.get(GEOJSON, {"zoom": zoom})
    assert response.status_code == 400
    assert response.json()["detail"].startswith("zoom must be a whole number between 0 and 22")


def test_console_map_clusters_above_the_threshold(client, triager, seven, settings):
    settings.MAP_CLUSTER_THRESHOLD = 3
    url = reverse("console:map-geojson")
    body = client.get(url, {"status": "", "bbox": UK, "zoom": "6"}).json()
    assert body["clustered"] is True and counted(body) == 7
    street = client.get(url, {"status": "", "bbox": STREET, "zoom": "17"}).json()
    assert street["clustered"] is False and len(street["features"]) == 3


def test_console_map_filters_apply_to_clusters(client, triager, seven, settings):
    settings.MAP_CLUSTER_THRESHOLD = 0
    url = reverse("console:map-geojson")
    assert counted(client.get(url, {"status": "fixed", "zoom": "4"}).json()) == 1
    assert counted(client.get(url, {"status": "", "category": "graffiti", "category_field": "citizen"}).json()) == 4


@pytest.mark.parametrize("zoom", ["-1", "23", "x"])
def test_console_map_bad_zoom_is_a_400(client, triager, zoom):
    response = client.get(reverse("console:map-geojson"), {"status": "", "zoom": zoom})
    assert response.status_code == 400 and response.json()["detail"].startswith("zoom must be")


@pytest.mark.parametrize("bbox,zoom", [(clusters.WORLD, 22), (clusters.WORLD, None), ((-0.3, 51.4, 0.1, 51.6), 18),
                                       ((5, 5, 5, 5), None), ((-10, 80, 10, 90), 3)])
def test_no_box_and_zoom_make_more_than_max_cells(bbox, zoom):
    dx, dy = clusters.cell_size(bbox, zoom)
    min_lon, min_lat, max_lon, max_lat = bbox
    assert math.ceil((max_lon - min_lon) / dx) * math.ceil((max_lat - min_lat) / dy) <= clusters.MAX_CELLS


def test_cells_follow_the_zoom():
    """64 px at zoom z: 360 / 2**z / 4 degrees wide; a zoom level deeper halves them."""
    box = (-0.15, 51.49, -0.1, 51.52)
    assert clusters.cell_size(box, 12)[0] == pytest.approx(360 / 2 ** 12 / 4)
    assert clusters.cell_size(box, 13)[0] == pytest.approx(clusters.cell_size(box, 12)[0] / 2)


def test_the_same_map_query_is_answered_from_the_cache_for_map_cache_seconds(client, seven, settings,
                                                                               django_assert_max_num_queries):
    settings.MAP_CLUSTER_THRESHOLD, settings.MAP_CACHE_SECONDS = 3, 30
    first = client.get(GEOJSON, {"in_bbox": UK, "zoom": "6"}).json()
    with django_assert_max_num_queries(1):  # the database cache's own read at most; no report query
        again = client.get(GEOJSON, {"zoom": "6", "in_bbox": UK}).json()  # same query, other order
    assert again == first
    other = client.get(GEOJSON, {"in_bbox": UK, "zoom": "6", "category": "graffiti"}).json()
    assert other["count"] == 4  # another query is not served the first one's answer
    assert client.get(GEOJSON, {"in_bbox": UK, "zoom": "99"}).status_code == 400  # never cached


def test_console_map_caches_clusters_per_filters_but_never_markers(client, triager, seven, settings):
    settings.MAP_CLUSTER_THRESHOLD, settings.MAP_CACHE_SECONDS = 3, 30
    url = reverse("console:map-geojson")
    wide = {"status": "", "bbox": UK, "zoom": "6"}
    assert counted(client.get(url, wide).json()) == 7
    Report.objects.filter(pk=seven[0].pk).update(status=Report.Status.REJECTED)
    assert counted(client.get(url, wide).json()) == 7  # the cached aggregate, for up to 30 s
    assert counted(client.get(url, {**wide, "status": "open"}).json()) == 5  # other filters: computed afresh
    street = client.get(url, {"status": "open", "bbox": STREET, "zoom": "17"}).json()
    assert street["clustered"] is False and len(street["features"]) == 2  # markers are always live
