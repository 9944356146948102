"""Urban/rural class per place (column > NBS code > density > default) and the zh/en labels."""

from __future__ import annotations

import csv

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from covplan.errors import CoverageError, InputError
from covplan.inputs.urban_rural import classify_places, load_nbs_codes
from covplan.labels import facility_type_label, label, translate_table
from shapely.geometry import Point
from shipped import NBS_TABLES as DATA


def _row(code: str) -> dict[str, str]:
    with open(DATA / "admin_units_nbs2016.csv", encoding="utf-8") as fh:
        return next(r for r in csv.DictReader(fh) if r["code"] == code)


def test_nbs_table_matches_the_township_summary() -> None:
    """1xx urban per township, recounted from the village table, equals the shipped summary."""
    codes = load_nbs_codes()
    assert len(codes) == 3471  # the villages/communities of the nine counties
    codes["town9"] = codes["code"].str[:9]
    urban = codes[codes["urban_rural"] == "urban"].groupby("town9").size()
    summary = pd.read_csv(DATA / "townships_nbs2016_summary.csv", dtype={"town_code9": str})
    got = summary["town_code9"].map(urban).fillna(0).astype(int)
    assert (got == summary["n_urban_ur1xx"]).all()
    # Dadukou: 八桥镇 has 20 villages, all 1xx (111/112/122); 跳磴镇's 双河村 is 112 (urban)
    assert summary.set_index("name").loc["八桥镇", "n_urban_ur1xx"] == 20


def test_sources_in_order() -> None:
    places = gpd.GeoDataFrame(
        {
            "place_id": ["a", "b", "c", "d", "e", "f"],
            "population": [300.0, 300.0, 300.0, 200.0, 50.0, np.nan],
            "user": ["rural", None, "", None, None, None],
            "village": ["500104103202", "500104004013", "500111001200", "999999999999",
                        None, None],
        },
        geometry=[Point(106.48, 29.44)] * 6, crs=4326,
    )  # fmt: skip
    out = classify_places(places, column="user", nbs_code_column="village",
                          density_per_km2=1500, area_km2=0.0625)
    by = out.set_index("place_id")
    # a: the user's column wins over NBS (双河村 is 112 = urban)
    assert _row("500104103202")["ur_code"] == "112"
    assert (by.loc["a", "urban_rural"], by.loc["a", "ur_source"]) == ("rural", "column")
    # b: 伏牛溪社区 121 -> urban; c: Dazu 龙岗村 220 -> rural
    assert _row("500104004013")["ur_code"] == "121" and _row("500111001200")["ur_code"] == "220"
    assert (by.loc["b", "urban_rural"], by.loc["b", "ur_source"]) == ("urban", "nbs")
    assert (by.loc["c", "urban_rural"], by.loc["c", "ur_source"]) == ("rural", "nbs")
    # d: unknown code -> density 200 / 0.0625 = 3,200 per km2 >= 1,500 -> urban
    assert (by.loc["d", "urban_rural"], by.loc["d", "ur_source"]) == ("urban", "density")
    # e: 50 / 0.0625 = 800 per km2 -> rural
    assert (by.loc["e", "urban_rural"], by.loc["e", "ur_source"]) == ("rural", "density")
    # f: no population, no code -> the default
    assert (by.loc["f", "urban_rural"], by.loc["f", "ur_source"]) == ("rural", "default")
    assert "urban_rural" not in places.columns  # a copy is returned


def test_bad_values_and_missing_area_are_reported() -> None:
    places = gpd.GeoDataFrame(
        {"place_id": ["a", "b", "c"], "population": [1.0, 2.0, 3.0],
         "user": ["urban", "town", "metro"]},
        geometry=[Point(0, 0)] * 3, crs=4326,
    )  # fmt: skip
    with pytest.raises(InputError) as info:
        classify_places(places, column="user")
    assert [p.what for p in info.value.problems] == [
        "not an urban/rural class: 'metro'", "not an urban/rural class: 'town'"]
    with pytest.raises(CoverageError, match="needs each place's area"):
        classify_places(places, density_per_km2=1000)
    with pytest.raises(CoverageError, match="no column 'nope'"):
        classify_places(places, column="nope")


def test_labels_in_both_languages() -> None:
    assert label("travel_time", language="zh") == "通行时间覆盖"
    assert label("pass", language="zh") == "达标"
    assert label("covered_population") == "covered population"
    assert label("village_clinic", language="zh") == "村卫生室"
    assert facility_type_label("hospital_grade_3", language="zh") == "三级医院"
    assert facility_type_label("emergency_station", language="zh") == "急救中心（站）"
    assert facility_type_label("sub_centre", language="zh") == "区域医疗卫生次中心"
    assert facility_type_label("medical_institutions", language="zh") == "医疗卫生机构"
    table = pd.DataFrame({"rule_id": ["BZ-12"], "status": ["fail"], "rule": ["travel_time"]})
    zh = translate_table(table, language="zh")
    assert list(zh.columns) == ["规则编号", "状态", "标准类型"]
    assert zh.iloc[0].tolist() == ["BZ-12", "未达标", "通行时间覆盖"]
    with pytest.raises(CoverageError, match="language"):
        label("pass", language="fr")
