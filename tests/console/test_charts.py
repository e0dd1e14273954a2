"""console.charts: the weekly share chart as SVG, parsed back with xml.etree."""
import datetime as dt
import xml.etree.ElementTree as ET

import pytest

from console import charts
from console.charts import Marker, Series, weekly_share_chart

NS = {"svg": "http://www.w3.org/2000/svg"}
WEEKS = [dt.date(2026, 11, 2) + dt.timedelta(weeks=i) for i in range(4)]  # 2026-W45 .. W48


def render(**kwargs) -> ET.Element:
    defaults = dict(
        weeks=WEEKS,
        series=[Series("correction", "Staff correction rate", [0.5, None, 0.25, 1.0],
                       ["2 of 4", "none", "1 of 4", "1 of 1"]),
                Series("spot-check", "Spot-check precision", [None, None, None, None]),
                Series("unknown", "Unknown photos", [0.0, 0.1, 0.2, 0.3])],
        markers=[Marker(dt.datetime(2026, 11, 11, 12, 0), "m2"), Marker(dt.datetime(2026, 10, 1), "too-old")],
        title="Model drift per week", description="Per ISO week.", chart_id="drift")
    return ET.fromstring(weekly_share_chart(**{**defaults, **kwargs}))


def paths(svg):
    return {p.get("class"): p for p in svg.iterfind(".//svg:path", NS)}


def test_one_path_per_series_with_gaps_where_a_week_has_no_data():
    p = paths(render())
    assert set(p) == {"series-correction", "series-spot-check", "series-unknown"}
    correction = p["series-correction"].get("d").split()
    assert [c[0] for c in correction if c[0] in "ML"] == ["M", "M", "L"]  # W45, gap at W46, then W47 -> W48
    assert p["series-spot-check"].get("d") == ""  # no data at all: nothing drawn, but still its series
    assert p["series-unknown"].get("d").count("L") == 3


def test_points_sit_at_the_middle_of_their_week_on_a_0_to_100_percent_scale():
    svg = render()
    group = next(g for g in svg.iterfind(".//svg:g[@class='series']", NS) if g.get("data-series") == "correction")
    circles = group.findall("svg:circle", NS)
    assert len(circles) == 3
    plot_w, plot_h = charts.WIDTH - charts.LEFT - charts.RIGHT, charts.HEIGHT - charts.TOP - charts.BOTTOM
    first, last = circles[0], circles[-1]
    assert float(first.get("cx")) == pytest.approx(charts.LEFT + plot_w * 3.5 / 28, abs=0.05)
    assert float(first.get("cy")) == pytest.approx(charts.TOP + plot_h / 2, abs=0.05)  # 50 %
    assert float(last.get("cy")) == pytest.approx(charts.TOP, abs=0.05)  # 100 %
    assert first.find("svg:title", NS).text == "Staff correction rate, 2026-W45: 50%: 2 of 4"


def test_activation_markers_are_vertical_lines_inside_the_weeks_shown():
    svg = render()
    markers = svg.findall(".//svg:line[@class='marker']", NS)
    assert len(markers) == 1  # "too-old" is before the first week
    (line,) = markers
    plot_w = charts.WIDTH - charts.LEFT - charts.RIGHT
    assert line.get("x1") == line.get("x2")
    assert float(line.get("x1")) == pytest.approx(charts.LEFT + plot_w * 9.5 / 28, abs=0.05)  # Wed 11 Nov, noon
    assert line.find("svg:title", NS).text == "m2 on 2026-11-11"
    assert "Vertical lines: m2 on 2026-11-11." in svg.find("svg:desc", NS).text


def test_the_chart_has_a_title_and_description_it_is_labelled_by():
    svg = render()
    assert svg.get("role") == "img" and svg.get("aria-labelledby") == "drift-title drift-desc"
    assert svg.find("svg:title", NS).get("id") == "drift-title"
    assert svg.find("svg:title", NS).text == "Model drift per week"
    assert svg.find("svg:desc", NS).text.startswith("Per ISO week.")
    legend = [t.text for t in svg.iterfind(".//svg:g[@class='legend']/svg:text", NS)]
    assert legend == ["Staff correction rate", "Spot-check precision", "Unknown photos", "model activated"]


def test_text_is_escaped():
    svg = render(markers=[Marker(dt.date(2026, 11, 3), 'v<1>&"x"')], title="a < b")
    assert svg.find("svg:title", NS).text == "a < b"
    assert svg.find(".//svg:line[@class='marker']/svg:title", NS).text == 'v<1>&"x" on 2026-11-03'


def test_a_series_must_have_one_value_per_week():
    with pytest.raises(ValueError, match="3 values for 4 weeks"):
        weekly_share_chart(weeks=WEEKS, series=[Series("x", "X", [0.1, 0.2, 0.3])], title="t", description="d")
    with pytest.raises(ValueError, match="at least one week"):
        weekly_share_chart(weeks=[], series=[], title="t", description="d")
