"""manage.py import_areas: named areas from a real GeoJSON file, all or nothing."""
from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command

from reports.models import Area

pytestmark = pytest.mark.django_db

RING = [[-0.2, 51.45], [-0.1, 51.45], [-0.1, 51.55], [-0.2, 51.55], [-0.2, 51.45]]


def write(tmp_path, *features, **extra):
    path = tmp_path / "wards.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": list(features), **extra}))
    return path


def ward(name, ring=RING):
    return {"type": "Feature", "properties": {"NAME": name}, "geometry": {"type": "Polygon", "coordinates": [ring]}}


def test_import_creates_areas_named_by_the_field(tmp_path, capsys):
    call_command("import_areas", str(write(tmp_path, ward("Riverside"), ward("Parkside"))), "--name-field", "NAME")
    assert sorted(Area.objects.values_list("name", flat=True)) == ["Parkside", "Riverside"]
    area = Area.objects.get(name="Riverside")
    assert area.geometry.geom_type == "MultiPolygon" and area.geometry.srid == 4326
    assert area.source == "wards.geojson"
    assert "2 area(s) imported" in capsys.readouterr().out


def test_reimporting_replaces_the_boundary_of_the_same_name(tmp_path):
    call_command("import_areas", str(write(tmp_path, ward("Riverside"))), "--name-field", "NAME")
    bigger = [[-0.3, 51.4], [0.0, 51.4], [0.0, 51.6], [-0.3, 51.6], [-0.3, 51.4]]
    call_command("import_areas", str(write(tmp_path, ward("Riverside", bigger))), "--name-field", "NAME")
    (area,) = Area.objects.all()
    assert area.geometry.extent == pytest.approx((-0.3, 51.4, 0.0, 51.6))


def test_a_projected_file_is_refused(tmp_path):
    path = write(tmp_path, ward("Riverside"), crs={"type": "name", "properties": {"name": "EPSG:27700"}})
    with pytest.raises(CommandError, match="EPSG:27700.*longitude/latitude"):
        call_command("import_areas", str(path), "--name-field", "NAME")
    assert not Area.objects.exists()


def test_duplicate_names_in_one_file_import_nothing(tmp_path):
    with pytest.raises(CommandError, match="Feature 2 \\(Riverside\\).*same name.*Nothing was imported"):
        call_command("import_areas", str(write(tmp_path, ward("Riverside"), ward("Riverside"))), "--name-field", "NAME")
    assert not Area.objects.exists()


def test_a_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(CommandError, match="cannot read"):
        call_command("import_areas", str(tmp_path / "nope.geojson"))


def test_heights_in_the_coordinates_are_dropped(tmp_path):
    ring = [[x, y, 12.5] for x, y in RING]
    call_command("import_areas", str(write(tmp_path, ward("Riverside", ring))), "--name-field", "NAME")
    assert not Area.objects.get().geometry.hasz


@pytest.mark.parametrize("geometry", [{"type": "Polygon", "coordinates": [[]]},
                                      {"type": "Polygon", "coordinates": [RING[:3]]},  # not closed
                                      {"type": "MultiPolygon", "coordinates": []}])
def test_an_empty_or_open_polygon_is_refused(tmp_path, geometry):
    feature = {"type": "Feature", "properties": {"NAME": "Broken"}, "geometry": geometry}
    with pytest.raises(CommandError, match="Feature 1 \\(Broken\\): the geometry cannot be read"):
        call_command("import_areas", str(write(tmp_path, feature)), "--name-field", "NAME")
    assert not Area.objects.exists()


def test_a_feature_without_properties_is_refused(tmp_path):
    feature = {"type": "Feature", "properties": None, "geometry": {"type": "Polygon", "coordinates": [RING]}}
    with pytest.raises(CommandError, match="no 'NAME' property"):
        call_command("import_areas", str(write(tmp_path, feature, 7)), "--name-field", "NAME")
