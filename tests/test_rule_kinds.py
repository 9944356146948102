"""The rule kinds for what the plans count (issue 13, item 4), on small hand-built layers.

Every expected value is worked out by hand in the comments from the tables built here; the
fixture district (tests/district_dadukou.py) checks a few of the new preset standards.
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
from covplan.scenario import RULE_TABLES, scenario_json_schema
from covplan.standards import parse_standards
from covplan.standards.audit import run_audit
from covplan.standards.parse import KIND_KEYS
from covplan.standards.rules import (
    RULE_KINDS,
    AttributeRatioRule,
    CountRule,
    RatioRule,
    ServiceRule,
    ShareRule,
    TierRule,
    facility_filter,
)

COUNTY, T1, T2 = "500104", "500104001", "500104100"  # a 街道 and a 镇 (NBS code digits)

#: (id, type, township, beds, clinical pharmacists, grade, fever clinic, parent)
FACILITIES = [
    ("h1", "hospital_grade_3", T1, 200, 3, "三级甲等", None, None),
    ("h1b", "hospital_grade_3", T2, 100, None, None, None, "h1"),  # a 院区 of h1
    ("h2", "hospital_grade_2", T2, 100, 1, "二级", None, None),
    ("thc1", "township_health_centre", T2, 0, None, "甲级", "是", None),
    ("thc2", "township_health_centre", T1, 0, None, "乙级", "否", None),
    ("thc3", "township_health_centre", T1, 0, None, None, None, None),
    ("chc", "community_health_centre", T1, 0, None, None, "否", None),
]


@pytest.fixture
def layers() -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame, gpd.GeoDataFrame]:
    units = gpd.GeoDataFrame(
        {"unit_id": [COUNTY, T1, T2], "name": ["区", "一街道", "二镇"],
         "level": ["county", "township", "township"], "parent_id": [None, COUNTY, COUNTY],
         "population": [10_000.0, 6_000.0, 4_000.0]},
        geometry=[None] * 3, crs=4326,
    )  # fmt: skip
    rows = [{"facility_id": f, "name": f, "type": t, "unit_id": u, "beds": b,
             "clinical_pharmacists": cp, "grade": g, "fever_clinic": fc, "parent_id": p}
            for f, t, u, b, cp, g, fc, p in FACILITIES]
    facilities = gpd.GeoDataFrame(pd.DataFrame(rows), geometry=[None] * len(rows), crs=4326)
    places = gpd.GeoDataFrame({"place_id": ["p1", "p2"], "unit_id": [T1, T2],
                               "population": [6_000.0, 4_000.0]}, geometry=[None] * 2,
                              crs=4326)
    return facilities, units, places


def _run(rule, layers) -> pd.DataFrame:
    facilities, units, places = layers
    return rule.evaluate(facilities=facilities, units=units, places=places)


def test_every_kind_is_parsed_typed_and_in_the_schema() -> None:
    assert set(RULE_TABLES) == set(RULE_KINDS) == set(KIND_KEYS)
    for kind in ("count", "service", "share", "attribute_ratio", "tiers"):
        assert kind in RULE_KINDS
    schema = str(scenario_json_schema())
    for title in ("CountTable", "ServiceTable", "ShareTable", "AttributeRatioTable",
                  "TiersTable"):
        assert title in schema
    # the parse module's documented example is valid, kind by kind
    import covplan.standards.parse as parse

    doc = parse.__doc__.split("::", 1)[1]
    tables = tomllib.loads("\n".join(line[4:] for line in doc.splitlines()))["standards"]
    rules = parse_standards(tables)
    assert [r.kind for r in rules][-5:] == ["count", "share", "attribute_ratio", "service",
                                            "tiers"]
    # and the typed model of the JSON Schema accepts each table
    for table in tables[-5:]:
        RULE_TABLES[table["rule"]].model_validate(table)


def test_count_at_a_level_with_filters(layers) -> None:
    # two 三级 hospitals rows, but h1b is a 院区 of h1: one counted
    t = _run(CountRule(id="C", facility_types=("hospital_grade_3",), min_count=2), layers)
    assert t["unit_id"].tolist() == [COUNTY] and t["level"].tolist() == ["county"]
    assert t["value"].iloc[0] == 1 and t["status"].iloc[0] == "fail"
    assert t["needed"].iloc[0] == 1
    t = _run(CountRule(id="C1", facility_types=("hospital_grade_3",), min_count=1), layers)
    assert t["status"].iloc[0] == "pass" and "counted once" in t["evidence"].iloc[0]
    # where grade 三级 (a prefix: 三级甲等): h1 only; h2 (二级) is not counted
    rule = CountRule(id="C3", facility_types=("hospitals",), where={"grade": "三级"},
                     min_count=1)
    t = _run(rule, layers)
    assert t["value"].iloc[0] == 1 and t["status"].iloc[0] == "pass"
    # the whole study area as one unit
    t = _run(CountRule(id="R", facility_types=("township_health_centre",), min_count=3,
                       level="region"), layers)
    assert t["unit_id"].tolist() == ["region"] and t["status"].iloc[0] == "pass"
    assert t["value"].iloc[0] == 3 and t["population"].iloc[0] == 10_000


def test_share_of_grade_a(layers) -> None:
    rule = ShareRule(id="S", facility_types=("township_health_centre",),
                     where={"grade": "甲级"}, min_share=0.6)
    t = _run(rule, layers).iloc[0]
    # 1 甲级 (thc1) of 3 centres = 1/3 < 60 %: needs ceil(0.6 * 3) - 1 = 1 more
    assert t["value"] == pytest.approx(1 / 3) and t["status"] == "fail"
    assert t["needed"] == math.ceil(0.6 * 3) - 1 == 1
    assert t["margin"] == pytest.approx(1 / 3 - 0.6)
    assert "thc3" in t["evidence"] and "without a value" in t["evidence"]
    # per 镇街: 一街道 0 of 2, 二镇 1 of 1
    town = ShareRule(id="S2", facility_types=("township_health_centre",),
                     where={"grade": "甲级"}, min_share=0.6, level="township")
    t = _run(town, layers).set_index("unit_id")
    assert t.loc[T1, "value"] == 0 and t.loc[T1, "status"] == "fail"
    assert t.loc[T2, "value"] == 1 and t.loc[T2, "status"] == "pass"


def test_attribute_per_attribute_ratio(layers) -> None:
    # hospitals: pharmacists 3 + 0 (h1b has none) + 1 = 4 for beds 200 + 100 + 100 = 400
    rule = AttributeRatioRule(id="A", numerator="clinical_pharmacists", denominator="beds",
                              target=1, facility_types=("hospitals",))
    t = _run(rule, layers).iloc[0]
    assert t["value"] == pytest.approx(4 / 400 * 100) and t["status"] == "pass"
    assert t["margin"] == pytest.approx(0.0) and "h1b" in t["evidence"]
    strict = AttributeRatioRule(id="A2", numerator="clinical_pharmacists", denominator="beds",
                                target=1.5, facility_types=("hospitals",))
    assert _run(strict, layers)["status"].iloc[0] == "fail"
    facilities, units, places = layers
    result = run_audit([rule], facilities=facilities, units=units, places=places, access=None)
    assert result.summary.iloc[0]["region_value"] == pytest.approx(1.0)


def test_service_flag_per_unit(layers) -> None:
    rule = ServiceRule(id="F", service="fever_clinic")
    t = _run(rule, layers).set_index("unit_id")
    # 一街道: thc2 否, chc 否, thc3 blank -> none; 二镇: thc1 是
    assert t.loc[T1, "status"] == "fail" and t.loc[T1, "value"] == 0
    assert t.loc[T2, "status"] == "pass" and t.loc[T2, "value"] == 1
    fac = layers[0]
    assert facility_filter(fac, {"fever_clinic": True}).tolist() == [
        False, False, False, True, False, False, False]


def test_three_tiers(layers) -> None:
    rule = TierRule(id="YC", tiers=(
        {"name": "不出村", "level": "village", "facility_types": ["grassroots"]},
        {"name": "不出乡镇", "level": "township", "facility_types": ["township_health_centre"]},
        {"name": "不出区", "level": "county", "facility_types": ["hospital_grade_3"]},
    ))
    t = _run(rule, layers)
    # no village units: that tier alone cannot be checked; both 镇街 host a THC; the 区 a 三级
    village = t[t["level"] == "village"]
    assert village["status"].tolist() == ["cannot_check"]
    assert set(t.loc[t["level"] == "township", "status"]) == {"pass"}
    assert t.loc[t["level"] == "county", "status"].tolist() == ["pass"]
    assert (t["rule"] == "tiers").all() and t["criterion"].str.startswith("不出").all()


def test_a_missing_column_is_cannot_check(layers) -> None:
    rule = RatioRule(id="DZ-14", attribute="beds", target=1, facility_types=("hospitals",),
                     where={"social_run": True})
    t = _run(rule, layers)
    assert t["status"].tolist() == ["cannot_check"]
    assert "no 'social_run' column" in t["evidence"].iloc[0]


def test_new_standards_on_the_dadukou_fixture() -> None:
    from district_dadukou import district
    from test_units_hierarchy import _facility_rows

    d = district()
    rows = _facility_rows()
    fac = pd.DataFrame(rows)
    fac["unit_id"] = fac["unit"]
    units = pd.concat([
        pd.DataFrame({"unit_id": ["500104"], "name": ["大渡口区"], "level": ["county"],
                      "parent_id": [None], "population": [float(d.villages["population"].sum())]}),
        pd.DataFrame({"unit_id": d.townships["code"], "name": d.townships["name"],
                      "level": "township", "parent_id": "500104", "population": float("nan")}),
        pd.DataFrame({"unit_id": d.villages["code"], "name": d.villages["name"],
                      "level": "village", "parent_id": d.villages["township"],
                      "population": d.villages["population"].astype(float)}),
    ], ignore_index=True)
    places = pd.DataFrame({"place_id": d.villages["code"], "unit_id": d.villages["code"],
                           "population": d.villages["population"].astype(float)})
    fac, units, places = (gpd.GeoDataFrame(x, geometry=[None] * len(x), crs=4326)
                          for x in (fac, units, places))
    rules = parse_standards([{"preset": "dadukou",
                              "only": ["DDK-03", "DDK-07", "DDK-09", "DDK-22"]}])
    result = run_audit(rules, facilities=fac, units=units, places=places, access=None)
    u = result.units.set_index("rule_id")
    # the fixture has no 等级, no 社区医院, no 三级医院 and no 临床药师 column: none of them
    # can be checked, and each says why (never a fail of the district)
    assert (result.units["status"] == "cannot_check").all()
    assert "'grade' column" in u.loc["DDK-03", "evidence"]
    assert "社区医院" in u.loc["DDK-07", "evidence"]
    assert "三级医院" in u.loc["DDK-09", "evidence"]
    assert "clinical_pharmacists" in u.loc["DDK-22", "evidence"]
    # with grades given: 2 township health centres (F8, F10; F9 is F8's 分院) -> 1 of 2 甲级
    fac["grade"] = fac["facility_id"].map({"F8": "甲级", "F10": "乙级"})
    fac["clinical_pharmacists"] = fac["facility_id"].map({"F11": 4})
    result = run_audit(rules, facilities=fac, units=units, places=places, access=None)
    u = result.units.set_index("rule_id")
    assert u.loc["DDK-03", "value"] == 0.5 and u.loc["DDK-03", "status"] == "fail"
    # 4 clinical pharmacists for the hospital's 500 beds (only hospitals count): 0.8 per 100
    assert u.loc["DDK-22", "value"] == pytest.approx(4 / 500 * 100)
    assert u.loc["DDK-22", "status"] == "fail"
    assert Path(__file__).name == "test_rule_kinds.py"
