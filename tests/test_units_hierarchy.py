"""Unit levels (区县 - 镇街 - 村社区) and unit kinds on a district built from the real NBS codes.

The fixture (tests/district_dadukou.py) has the real 8 镇街 and 97 村/社区 of 大渡口区 with
GENERATED grid geometry, populations and roads. Facilities are placed here by hand, and the
verdict of every unit under DDK-01, DDK-05, DDK-06, DDK-10, BZ-01, BZ-09, DZ-01 and DZ-02 is
worked out below from that placement and the plans' sentences, then compared with the CLI's
``units.csv``.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
from click.testing import CliRunner
from covplan.cli import main
from covplan.errors import CoverageError, InputError, InputWarning
from covplan.inputs.loaders import load_unit_levels
from covplan.inputs.unit_kinds import classify_unit_kinds, kind_from_code, normalise_kind
from covplan.scenario import load_scenario
from covplan.standards import parse_standards
from district_dadukou import (
    SMALL_VILLAGE,
    district,
    write_facilities,
    write_roads,
    write_townships,
    write_villages,
)
from shapely.geometry import box

D = district()
SUBDISTRICTS = ["500104001", "500104002", "500104003", "500104004", "500104005"]
TOWNS = ["500104101", "500104102", "500104103"]  # 八桥镇, 建胜镇, 跳磴镇

#: Facilities placed by hand: (id, name, type, village code of its cell, beds, parent).
PLACED = [
    ("F1", "新山村街道社区卫生服务中心", "community_health_centre", "500104001001", 20, None),
    ("F2", "新山村街道社区卫生服务中心钢花院区", "community_health_centre", "500104001007", 10,
     "F1"),
    ("F3", "跃进村街道社区卫生服务中心", "community_health_centre", "500104002007", 20, None),
    ("F4", "跃进村街道第二社区卫生服务中心", "community_health_centre", "500104002009", 20, None),
    ("F5", "茄子溪街道社区卫生服务中心", "community_health_centre", "500104004002", 20, None),
    ("F6", "春晖路街道社区卫生服务中心", "community_health_centre", "500104005002", 20, None),
    ("F7", "八桥镇社区卫生服务中心", "community_health_centre", "500104101001", 20, None),
    ("F8", "建胜镇卫生院", "township_health_centre", "500104102201", 30, None),
    ("F9", "建胜镇卫生院建路分院", "township_health_centre", "500104102202", 10, "F8"),
    ("F10", "跳磴镇卫生院", "township_health_centre", "500104103216", 40, None),
    ("F11", "大渡口区人民医院", "hospital", "500104005003", 500, None),
]
#: 行政村 without a village clinic; 八桥村 has two.
NO_CLINIC = {"500104101216", "500104102201", "500104102202", SMALL_VILLAGE}
TWO_CLINICS = "500104101213"


def _villages(kind: str) -> list[str]:
    """Village-level codes of one kind, read from the code digits 10-12 (the NBS rule)."""
    part = D.villages["code"].str[9:].astype(int)
    mask = part < 200 if kind == "community" else (part >= 200) & (part < 400)
    return D.villages.loc[mask, "code"].tolist()


COMMUNITIES, VILLAGES = _villages("community"), _villages("village")
CHC_HOSTS = {unit for _, _, t, unit, _, _ in PLACED if t == "community_health_centre"}
#: One community health station in every 社区 of 新山村街道 and 跃进村街道 not hosting a centre.
STATIONS = [c for c in COMMUNITIES if c[:9] in ("500104001", "500104002") and c not in CHC_HOSTS]


def _facility_rows() -> list[dict]:
    rows = [{"facility_id": fid, "name": name, "type": typ, "unit": unit, "beds": beds,
             **({"parent_id": parent} if parent else {})}
            for fid, name, typ, unit, beds, parent in PLACED]
    for code in VILLAGES:
        if code in NO_CLINIC:
            continue
        name = D.villages.set_index("code").at[code, "name"].replace("村民委员会", "村卫生室")
        rows.append({"facility_id": f"C{code}", "name": name, "type": "village_clinic",
                     "unit": code, "shift": -0.003})
    rows.append({"facility_id": "C2", "name": "八桥村第二卫生室", "type": "village_clinic",
                 "unit": TWO_CLINICS, "shift": 0.003})
    rows += [{"facility_id": f"S{c}", "name": f"社区卫生服务站{c[-3:]}",
              "type": "community_health_station", "unit": c, "shift": 0.002} for c in STATIONS]
    # every row names beds so the column is numeric; facilities without beds have 0
    return [{"beds": 0, **r} for r in rows]


SCENARIO = """
[scenario]
name = "大渡口区 fixture (GENERATED geometry and population)"
language = "en"

[inputs.facilities]
path = "facilities.geojson"

[[inputs.units]]
level = "county"
derive = "union"

[[inputs.units]]
level = "township"
path = "townships.geojson"
id_column = "code"
name_column = "name"

[[inputs.units]]
level = "village"
path = "villages.geojson"
id_column = "code"
name_column = "name"
population_column = "population"

[inputs.population]
kind = "units"

[inputs.network]
source = "roads.osm"
max_snap_m = 1500
buffer_m = 500

[[standards]]
preset = "dadukou"
only = ["DDK-01", "DDK-05", "DDK-06", "DDK-10"]

[[standards]]
preset = "bazhong"
only = ["BZ-01", "BZ-09"]

[[standards]]
preset = "dazu"
only = ["DZ-01", "DZ-02"]
"""


def _write_district(folder: Path, scenario: str = SCENARIO) -> Path:
    write_villages(D, folder / "villages.geojson")
    write_townships(D, folder / "townships.geojson")
    write_roads(D, folder / "roads.osm")
    write_facilities(D, folder / "facilities.geojson", _facility_rows())
    path = folder / "dadukou.toml"
    path.write_text(scenario, encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- unit kinds
def test_kind_from_the_nbs_code_digits():
    assert [kind_from_code(c) for c in ("500104001", "500104099", "500104100", "500104199",
                                         "500104200", "500104399", "500104400")] == [
        "subdistrict", "subdistrict", "town", "town", "township", "township", "other_township"]
    assert [kind_from_code(c) for c in ("500104001001", "500104001199", "500104103200",
                                         "500104103399", "500104103400")] == [
        "community", "community", "village", "village", "other_village"]
    assert kind_from_code("500104001000") == "subdistrict"  # a township code padded to 12
    assert kind_from_code("500104") is None and kind_from_code("500104000000") is None
    assert kind_from_code(500104103202.0) == "village"  # read from a spreadsheet as a number


def test_kind_from_code_then_name_then_column_and_which_decided():
    units = pd.DataFrame({
        "unit_id": ["500104101", "a", "b", "c", "d"],
        "name": ["八桥镇", "新山村街道", "双河村", "某某片区", "某某片区二"],
        "kind": ["乡", None, "社区", "行政村", "parish"],
    })
    got = classify_unit_kinds(units, kind_column="kind")
    # the code wins over the column (乡) for 八桥镇; the name over the column for 双河村
    assert got["unit_kind"].tolist() == ["town", "subdistrict", "village", "village", None]
    assert got["kind_source"].tolist() == ["code", "name", "name", "column", None]
    assert [normalise_kind(w) for w in ("行政村", "村委会", "社区（居委会）", "街道", "镇",
                                        "乡", "community", "x")] == [
        "village", "village", "community", "subdistrict", "town", "township", "community",
        None]


def test_unit_kinds_accept_chinese_names_and_keys_and_reject_others():
    base = {"rule": "presence", "facility_types": ["village_clinic"], "level": "village"}
    a, b = parse_standards([{**base, "id": "A", "unit_kinds": ["行政村"]},
                            {**base, "id": "B", "unit_kinds": ["village", "社区"]}])
    assert a.unit_kinds == ("village",) and b.unit_kinds == ("village", "community")
    with pytest.raises(InputError) as err:
        parse_standards([{**base, "id": "C", "unit_kinds": ["parish"]}])
    assert "standards[0].unit_kinds[0]" in str(err.value) and "行政村" in str(err.value)


# ------------------------------------------------------------------------------ hierarchy
def _levels(folder: Path) -> list[dict]:
    write_villages(D, folder / "villages.geojson")
    write_townships(D, folder / "townships.geojson")
    return [
        {"level": "county", "derive": "union"},
        {"level": "township", "path": folder / "townships.geojson", "id_column": "code"},
        {"level": "village", "path": folder / "villages.geojson", "id_column": "code",
         "population_column": "population"},
    ]


def test_three_levels_linked_by_code_with_kinds(tmp_path):
    units = load_unit_levels(_levels(tmp_path)).set_index("unit_id")
    assert units["level"].value_counts().to_dict() == {"village": 97, "township": 8,
                                                       "county": 1}
    county = units[units["level"] == "county"]
    assert county.index.tolist() == ["500104"] and county["name"].tolist() == ["大渡口区"]
    town = units[units["level"] == "township"]
    assert (town["parent_id"] == "500104").all() and (town["parent_by"] == "code").all()
    vill = units[units["level"] == "village"]
    assert (vill["parent_id"] == vill.index.str[:9]).all()
    # kinds from the codes: 5 街道 and 3 镇; 社区 and 行政村 by digits 10-12
    assert town["unit_kind"].to_dict() == {**dict.fromkeys(SUBDISTRICTS, "subdistrict"),
                                           **dict.fromkeys(TOWNS, "town")}
    assert sorted(vill.index[vill["unit_kind"] == "community"]) == sorted(COMMUNITIES)
    assert sorted(vill.index[vill["unit_kind"] == "village"]) == sorted(VILLAGES)
    assert (units["kind_source"].dropna() == "code").all()
    assert len(COMMUNITIES) + len(VILLAGES) == 97
    # the derived county is the union of the townships: its area is the sum of the cells
    metric = units.geometry.to_crs(3857).area
    assert metric["500104"] == pytest.approx(metric[vill.index].sum(), rel=1e-9)


def test_townships_derived_from_villages_by_code_prefix(tmp_path):
    levels = _levels(tmp_path)
    levels[1] = {"level": "township", "derive": "union"}
    units = load_unit_levels(levels).set_index("unit_id")
    town = units[units["level"] == "township"]
    assert town["name"].to_dict() == dict(zip(D.townships["code"], D.townships["name"],
                                              strict=True))
    assert town.loc["500104103", "name"] == "跳磴镇"
    assert town.loc["500104103", "unit_kind"] == "town"
    # population of a derived township: the sum of its villages' (generated) populations
    per_town = D.villages.groupby("township")["population"].sum()
    assert town["population"].to_dict() == pytest.approx(per_town.astype(float).to_dict())


def test_villages_without_codes_link_by_largest_overlap_and_orphans_are_reported(tmp_path):
    write_villages(D, tmp_path / "villages.geojson", with_codes=False)
    write_townships(D, tmp_path / "townships.geojson")
    # one village moved far outside every township: an orphan
    frame = gpd.read_file(tmp_path / "villages.geojson")
    frame.loc[0, "geometry"] = box(120.0, 30.0, 120.01, 30.01)
    frame.to_file(tmp_path / "villages2.geojson", driver="GeoJSON")
    levels = [{"level": "township", "path": tmp_path / "townships.geojson", "id_column": "code"},
              {"level": "village", "path": tmp_path / "villages2.geojson", "id_column": "vid"}]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", InputWarning)
        units = load_unit_levels(levels)
    vill = units[units["level"] == "village"].set_index("unit_id")
    expected = dict(zip([f"v{i}" for i in range(len(D.villages))], D.villages["township"],
                        strict=True))
    expected["v0"] = None
    assert vill["parent_id"].to_dict() == expected
    assert set(vill["parent_by"].dropna()) == {"overlap"}
    notes = [str(w.message) for w in caught if "no 'township' unit above" in str(w.message)]
    assert len(notes) == 1 and "v0" in notes[0] and "parent_column" in notes[0]
    # the kinds still come from the names (…社区居民委员会, …村村民委员会)
    assert (vill["kind_source"] == "name").all()


# ------------------------------------------------------------------------------ scenario
def test_scenario_units_sections_are_checked(tmp_path):
    _write_district(tmp_path)
    scenario = load_scenario(tmp_path / "dadukou.toml")
    assert [u["level"] for u in scenario.unit_levels] == ["county", "township", "village"]
    assert scenario.boundaries["path"] == tmp_path / "villages.geojson"
    bad = SCENARIO.replace('level = "county"\nderive = "union"',
                           'level = "county"\nderive = "union"\npath = "townships.geojson"')
    (tmp_path / "bad.toml").write_text(bad, encoding="utf-8")
    with pytest.raises(InputError, match="either path"):
        load_scenario(tmp_path / "bad.toml")
    swapped = SCENARIO.replace('level = "county"', 'level = "tmp"').replace(
        'level = "village"', 'level = "county"').replace('level = "tmp"', 'level = "village"')
    (tmp_path / "order.toml").write_text(swapped, encoding="utf-8")
    with pytest.raises(InputError, match="coarsest to the finest"):
        load_scenario(tmp_path / "order.toml")
    both = SCENARIO.replace("[inputs.population]", "[inputs.boundaries]\npath = "
                            "\"villages.geojson\"\n\n[inputs.population]")
    (tmp_path / "both.toml").write_text(both, encoding="utf-8")
    with pytest.raises(InputError, match="not both"):
        load_scenario(tmp_path / "both.toml")


# --------------------------------------------------------------------- the audit, by hand
def _expected() -> dict[str, dict[str, str]]:
    """Rule id -> unit id -> status, from the placement above and the plans' sentences."""
    exp: dict[str, dict[str, str]] = {}
    # DDK-01: 每个行政村 a 村卫生室, villages under 800 residents exempt; 社区 are not asked
    exp["DDK-01"] = {c: "not_applicable" for c in COMMUNITIES}
    for c in VILLAGES:
        exp["DDK-01"][c] = ("pass" if c not in NO_CLINIC else
                            "not_applicable" if c == SMALL_VILLAGE else "fail")
    # BZ-09: 行政村; 建制乡镇卫生院、分院所在地 exempt (四胜村 hosts F8, 建路村 the branch F9)
    exp["BZ-09"] = {c: "not_applicable" for c in COMMUNITIES}
    for c in VILLAGES:
        hosts = c in ("500104102201", "500104102202")
        exp["BZ-09"][c] = "pass" if c not in NO_CLINIC else "not_applicable" if hosts else "fail"
    # DZ-02: exactly one 村卫生室 per 行政村 (八桥村 has two)
    exp["DZ-02"] = {c: "not_applicable" for c in COMMUNITIES}
    for c in VILLAGES:
        exp["DZ-02"][c] = "fail" if c in NO_CLINIC or c == TWO_CLINICS else "pass"
    # DDK-05: one CHC per 街道; 院区 F2 counts with F1; 跃进村 has two, 九宫庙 none; 镇 not asked
    exp["DDK-05"] = {**dict.fromkeys(TOWNS, "not_applicable"), "500104001": "pass",
                     "500104002": "fail", "500104003": "fail", "500104004": "pass",
                     "500104005": "pass"}
    # DZ-01: exactly one 镇卫生院 or CHC per 镇（街道）: 八桥镇 its CHC, 建胜镇 F8 with its branch
    exp["DZ-01"] = {**dict.fromkeys(SUBDISTRICTS + TOWNS, "pass"), "500104002": "fail",
                    "500104003": "fail"}
    # BZ-01: a 乡镇卫生院 per 建制乡镇 (镇/乡): 八桥镇 has none; 街道 not asked
    exp["BZ-01"] = {**dict.fromkeys(SUBDISTRICTS, "not_applicable"), "500104101": "fail",
                    "500104102": "pass", "500104103": "pass"}
    # DDK-06: 8,000-20,000 residents per station in each 社区 except those hosting a CHC
    pop = D.villages.set_index("code")["population"]
    exp["DDK-06"] = {c: "not_applicable" for c in VILLAGES}
    for c in COMMUNITIES:
        p, n = int(pop[c]), STATIONS.count(c)
        if c in CHC_HOSTS or math.ceil(p / 20000) > p // 8000:
            exp["DDK-06"][c] = "not_applicable"
        else:
            exp["DDK-06"][c] = "pass" if n and 8000 <= p / n <= 20000 else "fail"
    # DDK-10: beds per 1,000 of the whole district, judged once
    beds = sum(b for *_, b, _ in PLACED)
    exp["DDK-10"] = {"500104": "pass" if beds / pop.sum() * 1000 >= 7.9 else "fail"}
    return exp


@pytest.fixture(scope="module")
def audit_units(tmp_path_factory) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    folder = tmp_path_factory.mktemp("dadukou")
    scenario = _write_district(folder)
    out = folder / "out"
    result = CliRunner().invoke(main, ["audit", str(scenario), "--out", str(out)])
    assert "Traceback" not in result.output, result.output
    units = pd.read_csv(out / "units.csv", dtype={"unit_id": str})
    summary = pd.read_csv(out / "summary.csv") if (out / "summary.csv").exists() else None
    return units, summary, result.output


def test_every_unit_verdict_matches_the_hand_count(audit_units):
    units, _, output = audit_units
    assert "Traceback" not in output
    expected = _expected()
    assert set(units["rule_id"]) == set(expected)
    levels = {"DDK-01": "village", "BZ-09": "village", "DZ-02": "village", "DDK-06": "village",
              "DDK-05": "township", "DZ-01": "township", "BZ-01": "township",
              "DDK-10": "county"}
    for rule_id, want in expected.items():
        rows = units[units["rule_id"] == rule_id]
        assert set(rows["level"]) == {levels[rule_id]}, rule_id
        got = dict(zip(rows["unit_id"], rows["status"], strict=True))
        assert got == want, rule_id


def test_the_special_cases_say_why(audit_units):
    units, _, _ = audit_units
    row = units.set_index(["rule_id", "unit_id"])
    # 跳磴镇 (a 镇, all NBS 1xx urban) is not asked for a 社区卫生服务中心
    assert row.loc[("DDK-05", "500104103"), "status"] == "not_applicable"
    assert "街道" in row.loc[("DDK-05", "500104103"), "evidence"]
    # a 社区 is not asked for a 村卫生室
    assert row.loc[("DZ-02", "500104103001"), "status"] == "not_applicable"
    assert "居委会" in row.loc[("DZ-02", "500104103001"), "evidence"]
    # the 院区 counts once with its centre: 新山村街道 has exactly one
    xin = row.loc[("DDK-05", "500104001")]
    assert xin["status"] == "pass" and xin["value"] == 1
    assert "钢花院区" in xin["evidence"] and "counted once" in xin["evidence"]
    # DDK-10 is judged once, for the whole district, from every bed and every resident
    ddk10 = units[units["rule_id"] == "DDK-10"]
    assert len(ddk10) == 1 and ddk10["unit_name"].iloc[0] == "大渡口区"
    beds = sum(b for *_, b, _ in PLACED)
    assert ddk10["value"].iloc[0] == pytest.approx(beds / D.villages["population"].sum() * 1000)


def test_one_level_scenario_reports_rules_it_cannot_check(tmp_path):
    """Township polygons only: village-level rules say so (validate and tables), never move."""
    one = SCENARIO.split("[[inputs.units]]")[0] + """
[inputs.boundaries]
path = "townships.geojson"
id_column = "code"
level = "township"

[inputs.population]
kind = "points"
path = "villages.geojson"
population_column = "population"

[inputs.network]
source = "roads.osm"
max_snap_m = 1500
buffer_m = 500

[[standards]]
preset = "dazu"
only = ["DZ-01", "DZ-02"]
"""
    scenario = _write_district(tmp_path, one)
    # villages.geojson holds polygons: as population points their centres are used
    frame = gpd.read_file(tmp_path / "villages.geojson")
    frame["geometry"] = frame.geometry.representative_point()
    frame.to_file(tmp_path / "villages.geojson", driver="GeoJSON")
    result = CliRunner().invoke(main, ["validate", str(scenario)])
    assert result.exit_code == 0, result.output
    assert "DZ-02" in result.stderr and "cannot be checked" in result.stderr
    assert "no units of level 'village'" in result.stderr
    out = tmp_path / "out"
    audit = CliRunner().invoke(main, ["audit", str(scenario), "--out", str(out)])
    line = next(ln for ln in audit.stdout.splitlines() if ln.startswith("DZ-02 "))
    assert "cannot_check" in line and "level: village" in line
    assert "cannot be checked: no units of level 'village'" in audit.stdout
    units = pd.read_csv(out / "units.csv", dtype={"unit_id": str})
    dz02 = units[units["rule_id"] == "DZ-02"]
    assert len(dz02) == 1 and dz02["status"].iloc[0] == "cannot_check"
    assert dz02["level"].iloc[0] == "village" and "townships" not in dz02["evidence"].iloc[0]
    assert len(units[units["rule_id"] == "DZ-01"]) == 8  # still judged per 镇街


def test_a_missing_kind_is_cannot_check_not_a_guess():
    units = gpd.GeoDataFrame({"unit_id": ["p1"], "name": ["Parish one"], "level": ["village"],
                              "population": [1000.0]}, geometry=[None])
    facilities = gpd.GeoDataFrame({"facility_id": ["f"], "type": ["village_clinic"],
                                   "unit_id": ["p1"]}, geometry=[None])
    places = gpd.GeoDataFrame({"place_id": ["x"], "unit_id": ["p1"], "population": [1000.0]},
                              geometry=[None])
    (rule,) = parse_standards([{"preset": "dazu", "only": ["DZ-02"]}])
    table = rule.evaluate(facilities=facilities, units=units, places=places)
    assert table["status"].tolist() == ["cannot_check"]
    assert "kind of this unit is unknown" in table["evidence"].iloc[0]
    with pytest.raises(CoverageError, match="unit_kinds"):
        type(rule)(id="X", facility_types=("village_clinic",), unit_kinds=("parish",))


def test_the_readme_example_is_the_one_tested_here():
    """The README's [[inputs.units]] example is the fixture scenario's, which the CLI runs."""
    import re
    import tomllib

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### Several unit levels"):]
    block = re.search(r"```toml\n(.*?)```", section, re.S).group(1)
    assert tomllib.loads(block)["inputs"]["units"] == tomllib.loads(SCENARIO)["inputs"]["units"]


def test_verdicts_roll_up_village_township_county(tmp_path):
    from covplan.inputs.loaders import load_facilities
    from covplan.standards import load_preset
    from covplan.standards.audit import run_audit

    _write_district(tmp_path)
    units = load_unit_levels(_levels(tmp_path))
    facilities = load_facilities(tmp_path / "facilities.geojson")
    vill = units[units["level"] == "village"]
    places = gpd.GeoDataFrame({"place_id": vill["unit_id"], "unit_id": vill["unit_id"],
                               "population": vill["population"]},
                              geometry=vill.geometry.representative_point().to_numpy(),
                              crs=4326)
    rules = [r for r in load_preset("dazu") if r.id == "DZ-02"]
    result = run_audit(rules, facilities=facilities, units=units, places=places, access=None)
    roll = result.rollup.set_index(["level", "unit_id"])
    want = _expected()["DZ-02"]
    for town in D.townships["code"]:
        mine = {c: s for c, s in want.items() if c.startswith(town)}
        row = roll.loc[("township", town)]
        assert row["judged_level"] == "village"
        assert row["units_fail"] == sum(s == "fail" for s in mine.values())
        assert row["units_pass"] == sum(s == "pass" for s in mine.values())
        assert row["units_not_applicable"] == sum(s == "not_applicable" for s in mine.values())
        assert row["status"] == ("fail" if row["units_fail"] else
                                 "pass" if row["units_pass"] else "not_applicable")
    county = roll.loc[("county", "500104")]
    assert county["units_fail"] == sum(s == "fail" for s in want.values()) == 5
    assert county["status"] == "fail" and "民新村" in county["evidence"]
