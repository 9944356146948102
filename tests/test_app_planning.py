"""The app's logic at its home in :mod:`covplan.planning` and :mod:`covplan.outputs.planmap`.

Pure functions on small tables built here (expected values counted by hand or with plain
loops), the shipped preset's rules, and the synthetic run of ``test_outputs_exports``; no
Streamlit and no road network.
"""

from __future__ import annotations

import base64
import re
from importlib import resources
from pathlib import Path
from types import SimpleNamespace

import folium
import geopandas as gpd
import pandas as pd
import pytest
from covplan import planning
from covplan.errors import CoverageError
from covplan.outputs.planmap import app_map, plan_layer
from covplan.outputs.webmap import build_map
from covplan.pipeline import rules_for_scenario
from covplan.scenario import load_scenario
from covplan.standards import load_preset
from shapely.geometry import Point, box
from shipped import ANDORRA_SCENARIO
from test_outputs_exports import _build_result


def _run(summary: list[dict], unit_results: list[dict], units: list[dict]) -> SimpleNamespace:
    """A run with only the tables the comparison functions read."""
    return SimpleNamespace(summary=pd.DataFrame(summary), unit_results=pd.DataFrame(unit_results),
                           units=pd.DataFrame(units))


UNITS = [{"unit_id": 1, "name": "A", "population": 100.0},
         {"unit_id": 2, "name": "B", "population": 300.0},
         {"unit_id": 3, "name": "C", "population": 50.0}]
BEFORE = _run(
    [{"rule_id": "R1", "population": 400.0, "covered_population": 100.0, "region_status": "fail"},
     {"rule_id": "R2", "population": None, "covered_population": None, "region_status": "pass"}],
    [{"rule_id": "R1", "unit_id": "1", "status": "pass"},
     {"rule_id": "R1", "unit_id": "2", "status": "fail"},
     {"rule_id": "R1", "unit_id": "3", "status": "not_applicable"},
     {"rule_id": "R2", "unit_id": "1", "status": "pass"},
     {"rule_id": "R2", "unit_id": "2", "status": "pass"},
     {"rule_id": "R2", "unit_id": "3", "status": "not_applicable"}],
    UNITS,
)
AFTER = _run(
    [{"rule_id": "R1", "population": 400.0, "covered_population": 350.0, "region_status": "pass"},
     {"rule_id": "R2", "population": None, "covered_population": None, "region_status": "pass"}],
    [{**row, "status": "pass" if row["status"] == "fail" else row["status"]}
     for row in BEFORE.unit_results.to_dict("records")],
    UNITS,
)


# ------------------------------------------------------------------------------ compare
def test_units_passing_rules_met_and_rule_population() -> None:
    # unit 1 passes both, unit 2 fails R1, unit 3 has no applicable rule
    assert planning.units_passing(BEFORE) == (1, 2)
    assert planning.units_passing(AFTER) == (2, 2)
    assert (planning.rules_met(BEFORE), planning.rules_met(AFTER)) == (1, 2)
    assert planning.rule_population(BEFORE, "R1") == 400.0
    assert pd.isna(planning.rule_population(BEFORE, "NOPE"))


def test_compare_before_after_has_shares_units_and_the_change() -> None:
    table = planning.compare_before_after(BEFORE, AFTER, labels=("b", "a", "d"))
    assert list(table.columns) == ["b", "a", "d"]
    assert list(table.index) == ["R1 %", "units passing", "units checked"]  # R2 has no share
    assert table.loc["R1 %"].tolist() == [25.0, 87.5, 62.5]  # 100/400, 350/400
    assert table.loc["units passing"].tolist() == [1.0, 2.0, 1.0]
    assert table.loc["units checked"].tolist() == [2.0, 2.0, 0.0]
    zh = planning.compare_results({"x": BEFORE}, language="zh")
    assert list(zh.index) == ["R1 %", "达标单元数", "检查单元数"]


def test_unit_table_joins_statuses_and_the_what_if_change() -> None:
    per_unit = pd.DataFrame({"unit_id": [1, 2, 3], "covered_before": [100.4, 0.0, 0.0],
                             "covered_after": [100.4, 249.6, 0.0], "delta": [0.0, 249.6, 0.0]})
    table = planning.unit_table(BEFORE, AFTER, status_label=str.upper, per_unit=per_unit,
                                labels=("before", "after", "change"))
    assert list(table.columns) == ["unit_id", "name", "population", "R1", "R2", "before",
                                   "after", "change"]
    assert table["unit_id"].tolist() == ["1", "2", "3"]
    assert table["R1"].tolist() == ["PASS", "PASS", "NOT_APPLICABLE"]  # the plan's statuses
    assert table["after"].tolist() == [100.0, 250.0, 0.0]  # rounded to whole residents
    plain = planning.unit_table(BEFORE, BEFORE)
    assert plain["R1"].tolist() == ["pass", "fail", "not_applicable"]
    assert "change" not in plain.columns


def test_proposal_table_rounds_positions() -> None:
    sites = gpd.GeoDataFrame({"rank": [1, 2], "site_id": ["p1", "p2"],
                              "covered_population": [10.4, 20.6]},
                             geometry=[Point(1.123456, 42.654321), Point(1.5, 42.5)],
                             crs="EPSG:4326")
    table = planning.proposal_table(sites)
    assert table.to_dict("records") == [
        {"rank": 1, "site_id": "p1", "lon": 1.12346, "lat": 42.65432, "covered_population": 10.0},
        {"rank": 2, "site_id": "p2", "lon": 1.5, "lat": 42.5, "covered_population": 21.0},
    ]


# ------------------------------------------------------------------------------ thresholds
def test_threshold_fields_and_edits_round_trip_through_the_standards() -> None:
    scenario = load_scenario(ANDORRA_SCENARIO)
    rules = {r.id: r for r in planning.travel_rules(rules_for_scenario(scenario))}
    bz12 = next(r for r in load_preset("bazhong") if r.id == "BZ-12")
    fields = planning.threshold_fields(rules["BZ-12"])
    assert [(f.rule_id, f.attr, f.area, f.value) for f in fields] == [
        ("BZ-12", "minutes", area, float(v)) for area, v in dict(bz12.minutes).items()]
    drive = planning.threshold_fields(rules["DRIVE-15"])
    assert [(f.attr, f.area, f.value) for f in drive] == [("minutes", "", 15.0)]
    shown = fields + drive
    assert planning.threshold_edits(shown, [f.value for f in shown]) == {}
    edits = planning.threshold_edits(shown, [20.0] * len(fields) + [10.0])
    assert edits == {"BZ-12": {"minutes": {f.area: 20.0 for f in fields}},
                     "DRIVE-15": {"minutes": 10.0}}
    tables = planning.standards_tables(scenario.standards, thresholds=edits)
    edited = {r.id: r for r in rules_for_scenario(scenario.with_overrides(standards=tables))}
    assert dict(edited["BZ-12"].minutes) == {f.area: 20.0 for f in fields}
    assert edited["DRIVE-15"].minutes == 10.0
    with pytest.raises(CoverageError, match="2 threshold values for 1 fields"):
        planning.threshold_edits(drive, [1.0, 2.0])


def test_rule_titles_and_siting_rules() -> None:
    rules = load_preset("bazhong")
    bz12 = next(r for r in rules if r.id == "BZ-12")
    assert planning.rule_title(bz12, "zh") == bz12.title_zh
    assert planning.rule_title(bz12, "en") == bz12.title
    assert [r.id for r in planning.siting_rules(rules)] == ["BZ-12", "BZ-13"]


# ------------------------------------------------------------------------------ plans, files
def test_plan_points_and_edits_key() -> None:
    plan = planning.Plan(region="andorra", station_type="hospital")
    plan.add(1.5, 42.5)
    plan.add(1.6, 42.6)
    assert plan.named_points == [("S1", 1.5, 42.5), ("S2", 1.6, 42.6)]
    same = plan.copy()
    assert same.edits_key == plan.edits_key
    same.closed.append("f-1")
    assert same.edits_key != plan.edits_key
    same.closed.clear()
    same.preset = "shapingba"  # the standards are keyed apart, by their tables
    assert same.edits_key == plan.edits_key


def test_upload_names_hide_the_session_folder(tmp_path: Path) -> None:
    own = "../my*parishes.geojson"
    names = planning.upload_names(tmp_path, {"boundaries": (own, b"{}")})
    stored = "boundaries-my_parishes.geojson"  # the base name, '*' replaced (safe_name)
    assert names[stored] == own
    assert names[str(tmp_path / "upload" / stored)] == own
    message = f"cannot read {tmp_path / 'upload' / stored}: broken; also {tmp_path}/x/y.txt"
    shown = planning.public_message(message, tmp_path, names)
    assert shown == f"cannot read {own}: broken; also y.txt"
    assert str(tmp_path) not in shown


# ------------------------------------------------------------------------------ maps
def test_app_map_links_leaflet_and_keeps_the_popups_but_the_units() -> None:
    result = _build_result()
    full = build_map(result, language="en").get_root().render()
    page = app_map(result, language="en").get_root().render()
    leaflet = resources.files("covplan.outputs").joinpath("vendor", "leaflet.js").read_bytes()
    link = re.search(r'src="data:text/javascript;base64,([A-Za-z0-9+/=]+)"', page)
    assert link is not None and base64.b64decode(link.group(1)) == leaflet
    probe = leaflet[:200].decode("utf-8")
    assert probe in full and probe not in page  # linked, not inlined as well
    assert '"collapsed": true' in page and '"collapsed": false' in full
    assert "<details>" in page and "<details open" in full  # the legend starts folded

    def fields(html: str) -> list[str]:
        return re.findall(r"let fields = (\[[^\]]*\]);", html)

    unit_popup = '["name", "unit_id", "population", "status", "rules"]'
    missing = list(fields(full))
    for found in fields(page):
        missing.remove(found)
    assert missing == [unit_popup]  # every other popup and tooltip is still there


def test_plan_layer_escapes_names_and_draws_what_it_is_given() -> None:
    units = gpd.GeoDataFrame({"unit_id": ["u1"], "name": ["<i>North</i>"]},
                             geometry=[box(1.4, 42.4, 1.6, 42.6)], crs="EPSG:4326")
    places = gpd.GeoDataFrame({"place_id": ["p1", "p2"], "population": [1234.4, 5.0]},
                              geometry=[Point(1.45, 42.45), Point(1.55, 42.55)],
                              crs="EPSG:4326")
    group = plan_layer([("<b>S1</b>", 1.5, 42.5)], selected_unit=units, gained_places=places)
    fmap = folium.Map()
    group.add_to(fmap)
    html = fmap.get_root().render()
    assert html.count("L.geoJson(") == 3  # unit, gained places, candidates
    assert "<b>S1</b>" not in html and "<i>North</i>" not in html
    assert "\\u0026lt;b\\u0026gt;S1" in html  # escaped before it reaches the page
    assert "1,234" in html and "1.50000, 42.50000" in html
    only = folium.Map()
    plan_layer([("S1", 1.5, 42.5)]).add_to(only)
    assert only.get_root().render().count("L.geoJson(") == 1


def test_scenario_title_is_the_scenario_name_as_plain_text(tmp_path: Path) -> None:
    from covplan.planning import scenario_title
    from shipped import SCENARIOS

    assert scenario_title(SCENARIOS / "huangpu.toml") == "上海市黄浦区（示范）"
    assert scenario_title(SCENARIOS / "andorra.toml") == "Andorra"
    spoofed = tmp_path / "spoof.toml"
    spoofed.write_text('[scenario]\nname = "A\u202eB' + "x" * 100 + '"\n', encoding="utf-8")
    title = scenario_title(spoofed, max_chars=10)
    assert title == "AB" + "x" * 7 + "…"
    broken = tmp_path / "no_name_here.toml"
    broken.write_text("[scenario\n", encoding="utf-8")
    assert scenario_title(broken) == "No_name_here"


def test_standards_table_names_the_level_of_every_rule() -> None:
    """黄浦区 (one level, 街道): county rules are said to be unchecked, in Chinese."""
    import warnings

    from covplan.api import load_scenario, run_scenario
    from covplan.labels import COLUMN_LABELS, UNIT_LEVEL_LABELS
    from covplan.planning import standards_table
    from shipped import SCENARIOS

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = run_scenario(load_scenario(SCENARIOS / "huangpu.toml"))
    table = standards_table(result, language="zh")
    heading = {key: COLUMN_LABELS[key][0] for key in ("rule_id", "level", "region_status")}
    assert list(table[heading["rule_id"]]) == list(result.summary["rule_id"])
    levels = dict(zip(result.summary["rule_id"], result.summary["levels"], strict=True))
    for _, row in table.iterrows():
        rid = row[heading["rule_id"]]
        assert row[heading["level"]] == UNIT_LEVEL_LABELS[levels[rid]][0], rid
        status = result.summary.set_index("rule_id").loc[rid, "region_status"]
        assert (row[heading["region_status"]] == "无法核查") == (status == "cannot_check"), rid
    assert (table[heading["level"]] == "区/县").any()  # the county rules of the Shapingba plan
    assert table[COLUMN_LABELS["title"][0]].str.contains("分钟").any()  # titles in Chinese
