"""The local gazetteer (issue 16, location without a map): importing OS Open Names and council CSVs,
trigram search, the form's search without JavaScript, and reverse lookup of the nearest street."""
from __future__ import annotations

import csv
import html
import io
import re

import pytest
from django.contrib.gis.geos import Point
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.test import Client

from reports import gazetteer
from reports.models import Place, Report
from reports.services import geodesic_distance_m
from tests.conftest import stored_files

pytestmark = pytest.mark.django_db

# The OS guide's worked example (E 651409.903, N 313177.270), as WGS 84 by its 7-parameter Helmert.
CAISTER = (651409.903, 313177.270, 52.657979, 1.716052)


def os_row(ident, name1, local_type, x, y, *, name2="", place="Caister-on-Sea", district="NR30"):
    row = dict.fromkeys(gazetteer.OS_OPEN_NAMES_COLUMNS, "")
    row.update(ID=ident, NAME1=name1, NAME1_LANG="cym" if name2 else "", NAME2=name2, NAME2_LANG="eng" if name2 else "",
               TYPE="transportNetwork", LOCAL_TYPE=local_type, GEOMETRY_X=str(x), GEOMETRY_Y=str(y),
               POSTCODE_DISTRICT=district, POPULATED_PLACE=place, COUNTRY="England")
    return row


def os_csv(rows, *, header=False) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=gazetteer.OS_OPEN_NAMES_COLUMNS, lineterminator="\n")
    if header:
        writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


OS_ROWS = [
    os_row("osgb4000000000000001", "High Street", "Named Road", CAISTER[0], CAISTER[1]),
    os_row("osgb4000000000000002", "Heol y Frenhines", "Named Road", 318600, 176500, name2="Queen Street",
           place="Cardiff", district="CF10"),
    os_row("osgb4000000000000003", "NR30 5AA", "Postcode", 651500, 313200),
    os_row("osgb4000000000000004", "Caister-on-Sea", "Town", 651000, 313000, place=""),
    os_row("osgb4000000000000005", "Broken Row", "Named Road", "not-a-number", 1),
]

COUNCIL = """name,kind,lat,lon,locality
Hillside Road,street,51.5010,-0.1200,Demo
High Street,street,51.5033,-0.1196,Demo
Highfield Park,landmark,51.5100,-0.1300,Demo
Market Square,place,51.5050,-0.1250,Demo
Nowhere Lane,motorway,51.5,-0.1,Demo
"""


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def run(*files) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("import_gazetteer", *map(str, files), stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.fixture
def council(tmp_path):
    run(write(tmp_path, "council.csv", COUNCIL))
    return {p.name: p for p in Place.objects.all()}


def test_os_open_names_points_are_transformed_from_the_national_grid_within_metres(tmp_path):
    out, err = run(write(tmp_path, "TG51.csv", os_csv(OS_ROWS)))
    street = Place.objects.get(name="High Street")
    assert geodesic_distance_m(street.point, Point(CAISTER[3], CAISTER[2], srid=4326)) < 5
    assert (street.kind, street.locality, street.source) == ("street", "Caister-on-Sea, NR30", "TG51.csv")
    assert Place.objects.get(name="NR30 5AA").kind == "postcode"
    assert Place.objects.get(name="Caister-on-Sea").kind == "place"
    assert "5 row(s) read, 5 place(s) imported" in out and "1 skipped" in out
    assert "line 5" in err and "GEOMETRY_X" in err


def test_os_open_names_welsh_and_english_names_are_both_found(tmp_path):
    run(write(tmp_path, "ST17.csv", os_csv(OS_ROWS)))
    welsh, english = Place.objects.get(name="Heol y Frenhines"), Place.objects.get(name="Queen Street")
    assert welsh.point == english.point and welsh.locality == "Cardiff, CF10"
    assert gazetteer.places_search(query="queen st")[0] == english
    assert gazetteer.places_search(query="heol y frenhines")[0] == welsh


def test_os_open_names_with_its_header_line_reads_the_same(tmp_path):
    out, _ = run(write(tmp_path, "with-header.csv", os_csv(OS_ROWS, header=True)))
    assert "5 row(s) read, 5 place(s) imported" in out
    assert Place.objects.filter(name="High Street", kind="street").count() == 1


def test_importing_again_changes_nothing_and_a_moved_point_is_updated(tmp_path):
    path = write(tmp_path, "TG51.csv", os_csv(OS_ROWS))
    run(path)
    run(path)
    assert Place.objects.count() == 5
    moved = [os_row("osgb4000000000000001", "High Street", "Named Road", CAISTER[0] + 100, CAISTER[1])]
    run(write(tmp_path, "TG51.csv", os_csv(moved)))
    street = Place.objects.get(name="High Street")
    assert Place.objects.count() == 5
    assert 95 < geodesic_distance_m(street.point, Point(CAISTER[3], CAISTER[2], srid=4326)) < 105


def test_council_csv_counts_each_kind_and_skips_an_unknown_kind(tmp_path):
    out, err = run(write(tmp_path, "council.csv", COUNCIL))
    assert "5 row(s) read, 4 place(s) imported (1 landmark, 1 place, 2 street), 1 skipped" in out
    assert "line 6: kind 'motorway' is not one of street, place, postcode, landmark" in err
    road = Place.objects.get(name="Hillside Road")
    assert (road.point.y, road.point.x, road.locality) == (51.5010, -0.1200, "Demo")  # latitude/longitude order
    run(write(tmp_path, "council.csv", COUNCIL))
    assert Place.objects.count() == 4


def test_a_file_in_neither_format_is_refused_and_imports_nothing(tmp_path):
    with pytest.raises(CommandError, match="neither OS Open Names .* nor a council list"):
        run(write(tmp_path, "other.csv", "street,x,y\nHigh Street,1,2\n"))
    assert Place.objects.count() == 0


def test_search_forgives_typos_and_ranks_the_closest_name_first(council):
    assert [p.name for p in gazetteer.places_search(query="hgh stret")][:1] == ["High Street"]
    assert [p.name for p in gazetteer.places_search(query="hillsde")][:1] == ["Hillside Road"]
    assert gazetteer.places_search(query="market")[0].name == "Market Square"
    assert gazetteer.places_search(query="zzzzzz") == []
    assert gazetteer.places_search(query="hi") == []  # too short to mean anything


def test_the_suggestions_endpoint_gives_labels_and_latitude_before_longitude(client, council):
    data = client.get("/report/places/", {"q": "hgh stret"}).json()
    first = data["places"][0]
    assert first["label"] == "High Street, Demo" and (first["lat"], first["lon"]) == (51.5033, -0.1196)
    assert client.get("/report/places/", {"q": ""}).json() == {"places": []}


# The form without JavaScript ------------------------------------------------------------------------

TYPED = {"description": "Sofa dumped by the bins", "email": "jane@example.org", "category": "fly_tipping"}


def test_find_without_javascript_is_a_post_so_the_token_and_email_stay_out_of_urls(client):
    page = client.get("/report/").content.decode()
    form = re.search(r'<form method="post"[^>]*id="report-form">(.*?)</form>', page, re.S).group(1)
    find = re.search(r'<button[^>]*id="find-place"[^>]*>', form).group(0)
    assert "formmethod" not in find and "formenctype" not in find  # the form's POST, token in the body
    # Enter in a text field clicks the first submit button: it must send the report, not run "Find".
    first = re.search(r'<button type="submit"[^>]*>', form).group(0)
    assert "name=" not in first


def test_find_without_javascript_lists_matches_as_radio_buttons_keeps_what_was_typed_and_stores_nothing(
        council, media_dirs, unique_jpeg):
    client = Client(enforce_csrf_checks=True)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', client.get("/report/").content.decode()).group(1)
    resp = client.post("/report/", {**TYPED, "csrfmiddlewaretoken": token, "place_query": "hgh stret",
                                    "find_place": "1", "latitude": "", "longitude": "", "location_source": "",
                                    "photo": SimpleUploadedFile("sofa.jpg", unique_jpeg(), "image/jpeg")})
    assert resp.status_code == 200
    assert Report.objects.count() == 0 and stored_files(media_dirs) == []
    page = resp.content.decode()
    matches = re.search(r'<fieldset id="place-matches">(.*?)</fieldset>', page, re.S).group(1)
    first = re.search(r'<input type="radio" name="place" value="(\d+)"', matches).group(1)
    assert first == str(council["High Street"].pk) and "High Street, Demo" in html.unescape(matches)
    assert 'value="hgh stret"' in page
    assert f">\n{TYPED['description']}</textarea>" in page and f'value="{TYPED["email"]}"' in page
    assert '<option value="fly_tipping" selected>' in page
    assert 'id="photo-again-search"' in page  # the search drops the photo: it must be chosen again
    assert 'class="error"' not in page  # a search is not a failed report


def test_find_without_a_photo_does_not_ask_for_it_again(client, council):
    page = client.post("/report/", {"place_query": "hgh stret", "find_place": "1"}).content.decode()
    assert 'id="place-matches"' in page and 'id="photo-again-search"' not in page


def test_a_search_link_shows_matches_but_prefills_nothing_else(client, council):
    page = client.get("/report/", {"place_query": "hgh stret", "find_place": "1", "email": "jane@example.org"})
    page = page.content.decode()
    assert 'id="place-matches"' in page and "jane@example.org" not in page


def test_find_with_no_match_says_so(client, council):
    page = client.post("/report/", {"place_query": "qqqqqq", "find_place": "1"}).content.decode()
    assert "No street or place matches" in html.unescape(page) and 'id="place-matches"' not in page


def test_a_photo_without_gps_and_a_chosen_place_makes_a_report_located_by_search(client, council, unique_jpeg):
    street = council["High Street"]
    resp = client.post("/report/", {**TYPED, "photo": SimpleUploadedFile("p.jpg", unique_jpeg(), "image/jpeg"),
                                    "place_query": "hgh stret", "place": str(street.pk)})
    assert resp.status_code == 302
    report = Report.objects.get()
    assert report.location_source == Report.LocationSource.SEARCH
    assert (report.location.y, report.location.x) == (51.5033, -0.1196)
    assert report.address == "High Street, Demo"


def test_a_place_no_longer_listed_is_a_clear_400_and_stores_nothing(client, council, unique_jpeg):
    resp = client.post("/report/", {**TYPED, "photo": SimpleUploadedFile("p.jpg", unique_jpeg(), "image/jpeg"),
                                    "place_query": "high", "place": "999999"})
    assert resp.status_code == 400
    assert "The place you chose is no longer in our list" in html.unescape(resp.content.decode())
    assert Report.objects.count() == 0


def test_a_pin_moved_after_choosing_a_place_wins(client, council, unique_jpeg):
    client.post("/report/", {**TYPED, "photo": SimpleUploadedFile("p.jpg", unique_jpeg(), "image/jpeg"),
                             "place": str(council["High Street"].pk), "latitude": "51.5011",
                             "longitude": "-0.1201", "location_source": "map_pin"})
    report = Report.objects.get()
    assert (report.location_source, report.location.y) == ("map_pin", 51.5011)
    assert report.address == "Hillside Road, Demo"  # the nearest street, by reverse lookup


# Reverse lookup at intake ---------------------------------------------------------------------------

def test_reverse_lookup_names_the_nearest_street_for_a_photo_located_by_gps(client, council, unique_jpeg):
    photo = unique_jpeg(lat=51.5012, lon=-0.1201)  # about 25 m from Hillside Road, 250 m from High Street
    assert client.post("/report/", {"photo": SimpleUploadedFile("p.jpg", photo, "image/jpeg")}).status_code == 302
    report = Report.objects.get()
    assert (report.location_source, report.address) == ("exif", "Hillside Road, Demo")


def test_reverse_lookup_leaves_the_address_empty_when_no_street_is_near(client, council, unique_jpeg):
    photo = unique_jpeg(lat=51.53, lon=-0.05)
    client.post("/report/", {"photo": SimpleUploadedFile("p.jpg", photo, "image/jpeg")})
    assert Report.objects.get().address == ""


def test_reverse_lookup_keeps_an_address_the_sender_gave(council, unique_jpeg):
    from reports.services import report_create

    intake = report_create(photo=unique_jpeg(), latitude=51.5012, longitude=-0.1201, address="Outside no. 12",
                           classify=False)
    assert intake.report.address == "Outside no. 12"
