"""Rule kinds on small real inputs, with every expected value computed by hand in the test.

Real inputs:
* Liechtenstein: the 11 municipality polygons (admin_level=8 relations) and place nodes of the
  OSM extract of 2013-08-03, the hospital node 6245 "Liechtensteinisches Landesspital", and the
  official populations at 2014-12-31 (data/population/). Each municipality's population is put
  on its main place node (Mauren has none in the extract: its village Schaanwald stands in).
* Dadukou and Dazu: NBS 2016 codes (coverage/china/tables/admin_units_nbs2016.csv), the
  2020 census (census2020_counties.csv), facilities named in the plan documents, and Dazu's 2020
  bed and staff counts as stated in its plan (seed 004).
"""

from __future__ import annotations

import math
from pathlib import Path

import geopandas as gpd
import numpy as np
import osmium
import pandas as pd
import pytest
import shapely
from covplan.errors import CoverageError
from covplan.inputs.urban_rural import classify_places
from covplan.standards import (
    DistanceRule,
    PopulationBandRule,
    PresenceRule,
    RatioRule,
    StraightLineAccess,
    TravelTimeRule,
)
from osmium.geom import WKBFactory
from shapely.geometry import Point
from shipped import LIECHTENSTEIN_PBF, LIECHTENSTEIN_POPULATION, NBS_TABLES

DATA = Path(__file__).resolve().parents[1] / "data"
NBS = NBS_TABLES / "admin_units_nbs2016.csv"
CENSUS = NBS_TABLES / "census2020_counties.csv"

HOSPITAL = (9.5224777, 47.1343767)  # OSM node 6245, Liechtensteinisches Landesspital, Vaduz
#: municipality -> OSM place node standing for its residents
PLACE_NODES = {
    "Vaduz": 58243, "Schaan": 696, "Triesen": 699, "Balzers": 701, "Triesenberg": 702,
    "Eschen": 691, "Mauren": 692, "Gamprin": 697, "Ruggell": 704, "Schellenberg": 695,
    "Planken": 218,
}  # fmt: skip


def haversine_km(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle distance on a sphere of the mean Earth radius (independent of pyproj)."""
    r = 6371.0088
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * r * math.asin(math.sqrt(a))


def liechtenstein_layers() -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """Return (facilities, units, places) of Liechtenstein from the OSM extract and the census."""
    pop = pd.read_csv(LIECHTENSTEIN_POPULATION)
    wkb = WKBFactory()
    rows = []
    boundaries = osmium.filter.KeyFilter("boundary")
    for obj in osmium.FileProcessor(str(LIECHTENSTEIN_PBF)).with_areas(boundaries):
        if obj.is_area() and obj.tags.get("admin_level") == "8" and "name" in obj.tags:
            rows.append({"name": obj.tags["name"],
                         "geometry": shapely.from_wkb(wkb.create_multipolygon(obj))})
    units = gpd.GeoDataFrame(rows, crs=4326).merge(pop, left_on="name", right_on="municipality")
    units = units.rename(columns={"iso3166_2": "unit_id", "population_2014_12_31": "population"})
    units["level"] = "municipality"
    units["parent_id"] = None
    units = units[["unit_id", "name", "level", "parent_id", "population", "geometry"]]

    wanted = set(PLACE_NODES.values())
    coords = {}
    ids = osmium.filter.IdFilter(wanted)
    for obj in osmium.FileProcessor(str(LIECHTENSTEIN_PBF)).with_filter(ids):
        if obj.is_node() and obj.id in wanted:
            coords[obj.id] = (obj.location.lon, obj.location.lat)
    by_name = units.set_index("name")
    places = gpd.GeoDataFrame(
        {
            "place_id": [f"node/{PLACE_NODES[m]}" for m in PLACE_NODES],
            "municipality": list(PLACE_NODES),
            "population": [float(by_name.loc[m, "population"]) for m in PLACE_NODES],
        },
        geometry=[Point(coords[PLACE_NODES[m]]) for m in PLACE_NODES],
        crs=4326,
    )
    joined = gpd.sjoin(places, units[["unit_id", "geometry"]], predicate="within")
    places = joined.drop(columns="index_right")
    facilities = gpd.GeoDataFrame(
        {"facility_id": ["node/6245"], "name": ["Liechtensteinisches Landesspital"],
         "type": ["hospital"], "source": ["OpenStreetMap"]},
        geometry=[Point(HOSPITAL)], crs=4326,
    )  # fmt: skip
    return facilities, units, places


@pytest.fixture(scope="module")
def li() -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame, gpd.GeoDataFrame]:
    facilities, units, places = liechtenstein_layers()
    # user column for three places (one in Chinese), the rest falls back to the default
    places["ur_given"] = places["municipality"].map({"Vaduz": "urban", "Schaan": "城镇",
                                                     "Triesen": "urban"})
    places = classify_places(places, column="ur_given", default="rural")
    return facilities, units, places


def km_to_hospital(places: gpd.GeoDataFrame) -> dict[str, float]:
    return {m: haversine_km(g.x, g.y, *HOSPITAL)
            for m, g in zip(places["municipality"], places.geometry, strict=True)}


def test_liechtenstein_inputs_are_the_real_ones(li) -> None:
    facilities, units, places = li
    assert len(units) == 11 and units["population"].sum() == 37370
    # every place node lies in its own municipality
    assert (places["unit_id"] == places["municipality"].map(
        units.set_index("name")["unit_id"])).all()
    assert places.set_index("municipality")["ur_source"].to_dict()["Vaduz"] == "column"
    assert places.set_index("municipality")["ur_source"].to_dict()["Ruggell"] == "default"
    assert (places["urban_rural"] == "urban").sum() == 3


def test_straight_line_access_matches_haversine(li) -> None:
    facilities, _, places = li
    access = StraightLineAccess(facilities, places, speeds_kmh={"drive": 40.0},
                                detour_factor=1.3)
    km = access.nearest(("hospital",), mode="drive", metric="length")
    minutes = access.nearest(("hospital",), mode="drive", metric="time")
    hand = km_to_hospital(places)
    for pid, m in zip(places["place_id"], places["municipality"], strict=True):
        # ellipsoid vs sphere differ by < 0.5 %
        assert km.loc[pid, "value"] == pytest.approx(hand[m] * 1.3, rel=5e-3)
        assert minutes.loc[pid, "value"] == pytest.approx(hand[m] * 1.3 / 40 * 60, rel=5e-3)
        assert km.loc[pid, "facility_id"] == "node/6245"
    # Vaduz's place node is about 0.55 km from the hospital: lat 0.00491 deg, lon 0.00032 deg
    assert hand["Vaduz"] == pytest.approx(0.547, abs=0.005)
    none = access.nearest(("emergency_station",), mode="drive", metric="time")
    assert np.isinf(none["value"]).all() and none["facility_id"].isna().all()
    with pytest.raises(CoverageError, match="no speed for mode 'walk'"):
        access.nearest(("hospital",), mode="walk", metric="time")


def test_travel_time_urban_rural_thresholds(li) -> None:
    facilities, units, places = li
    access = StraightLineAccess(facilities, places, speeds_kmh={"drive": 40.0})
    rule = TravelTimeRule(id="T", facility_types=("hospital",), minutes={"urban": 5, "rural": 10},
                          mode="drive")
    table = rule.evaluate(facilities=facilities, units=units, places=places, access=access)
    assert len(table) == 11
    hand_min = {m: d / 40 * 60 for m, d in km_to_hospital(places).items()}
    limit = {m: 5 if m in ("Vaduz", "Schaan", "Triesen") else 10 for m in hand_min}
    by_name = table.set_index("unit_name")
    for m, minutes in hand_min.items():
        assert abs(minutes - limit[m]) > 0.2  # no case sits on the threshold
        expected = "pass" if minutes <= limit[m] else "fail"
        assert by_name.loc[m, "status"] == expected, m
        assert by_name.loc[m, "value"] == (1.0 if expected == "pass" else 0.0)
        assert by_name.loc[m, "population"] == places.set_index("municipality").loc[
            m, "population"]
    # by hand: Schaan 3.7 km -> 5.5 min > 5 (urban), Triesen 3.1 km -> 4.6 min <= 5,
    # Balzers 8.1 km -> 12.2 min > 10, Triesenberg 2.6 km -> 3.9 min <= 10
    assert by_name.loc["Schaan", "status"] == "fail"
    assert by_name.loc["Triesen", "status"] == "pass"
    assert by_name.loc["Balzers", "status"] == "fail"
    assert by_name.loc["Triesenberg", "status"] == "pass"
    assert by_name.loc["Vaduz", "facility_count"] == 1
    assert "Liechtensteinisches Landesspital" in by_name.loc["Balzers", "evidence"]
    # the urban-only reading (BZ-12 alone) leaves rural municipalities not applicable
    urban_only = TravelTimeRule(id="U", facility_types=("hospital",), minutes={"urban": 5})
    t2 = urban_only.evaluate(facilities=facilities, units=units, places=places, access=access)
    assert (t2["status"] == "not_applicable").sum() == 8


def test_travel_time_required_share_on_a_parent_level(li) -> None:
    """Two levels: the whole country as parent of the municipalities."""
    facilities, units, places = li
    country = gpd.GeoDataFrame(
        {"unit_id": ["LI"], "name": ["Liechtenstein"], "level": ["country"],
         "parent_id": [None], "population": [np.nan]},
        geometry=[units.union_all()], crs=4326,
    )  # fmt: skip
    two = pd.concat([country, units.assign(parent_id="LI")], ignore_index=True)
    access = StraightLineAccess(facilities, places, speeds_kmh={"drive": 40.0})
    hand_min = {m: d / 40 * 60 for m, d in km_to_hospital(places).items()}
    pop = places.set_index("municipality")["population"]
    covered = sum(pop[m] for m, v in hand_min.items() if v <= 10)
    rule = TravelTimeRule(id="T10", facility_types=("hospitals",), minutes=10, level="country",
                          required_share=0.7)
    table = rule.evaluate(facilities=facilities, units=two, places=places, access=access)
    assert len(table) == 1
    row = table.iloc[0]
    assert row["population"] == 37370 and row["covered_population"] == covered
    assert row["value"] == pytest.approx(covered / 37370)
    assert row["margin"] == pytest.approx(covered / 37370 - 0.7)
    assert row["status"] == ("pass" if covered / 37370 >= 0.7 else "fail")


def test_distance_rule_straight_line(li) -> None:
    facilities, units, places = li
    hand = km_to_hospital(places)
    rule = DistanceRule(id="D", facility_types=("hospital",), km=5, distance="straight_line")
    table = rule.evaluate(facilities=facilities, units=units, places=places)
    by_name = table.set_index("unit_name")
    for m, d in hand.items():
        assert abs(d - 5) > 0.1
        assert by_name.loc[m, "status"] == ("pass" if d <= 5 else "fail"), m
    # Vaduz 0.5, Triesen 3.1, Triesenberg 2.6, Schaan 3.7 km are inside 5 km; the rest outside
    assert sorted(by_name.index[by_name["status"] == "pass"]) == [
        "Schaan", "Triesen", "Triesenberg", "Vaduz"]


def test_presence_with_exemptions(li) -> None:
    facilities, units, places = li
    access = StraightLineAccess(facilities, places, speeds_kmh={"drive": 40.0})
    hospital = PresenceRule(id="P", facility_types=("hospital",), level="municipality")
    t = hospital.evaluate(facilities=facilities, units=units, places=places).set_index("unit_name")
    assert t.loc["Vaduz", "status"] == "pass" and t.loc["Vaduz", "value"] == 1
    assert (t.drop("Vaduz")["status"] == "fail").all()
    assert (t.drop("Vaduz")["needed"] == 1).all()

    # no village clinics in any municipality: exemptions decide (DDK-01 style, plus BZ-09 host
    # exemption). The file holds one clinic, outside every unit: with none at all the rule
    # could not be checked (issue 13: an absent type is cannot_check, never a fail)
    near_km = {m: d for m, d in km_to_hospital(places).items()}
    rule = PresenceRule(
        id="V", facility_types=("village_clinic",), level="municipality",
        exempt_if_hosts=("hospital",), exempt_below_population=1100,
        exempt_near=3.5, exempt_near_types=("hospital",), exempt_near_metric="length",
    )  # fmt: skip
    absent = rule.evaluate(facilities=facilities, units=units, places=places, access=access)
    assert (absent["status"] == "cannot_check").all()
    assert absent["evidence"].str.contains("no 村卫生室 (village_clinic) in", regex=False).all()
    outside = facilities.iloc[[0]].assign(facility_id="vc-far", type="village_clinic")
    outside = outside.set_geometry(gpd.points_from_xy([0.0], [0.0]), crs=4326)
    if "unit_id" in outside.columns:
        outside["unit_id"] = None
    t = rule.evaluate(facilities=pd.concat([facilities, outside], ignore_index=True),
                      units=units, places=places, access=access).set_index("unit_name")
    pop = units.set_index("name")["population"]
    for m in t.index:
        reasons = []
        if m == "Vaduz":
            reasons.append("hosts")
        if pop[m] < 1100:
            reasons.append("population")
        if near_km[m] <= 3.5:
            reasons.append("near")
        expected = "not_applicable" if reasons else "fail"
        assert t.loc[m, "status"] == expected, m
        for r in reasons:
            assert r in t.loc[m, "evidence"], (m, r)
    # by hand: Planken 424 and Schellenberg 1,053 < 1,100; Triesen 3.1 km and Triesenberg 2.6 km
    # are near; Vaduz hosts the hospital; Schaan (3.7 km, 5,963) is not exempt
    assert sorted(t.index[t["status"] == "not_applicable"]) == [
        "Planken", "Schellenberg", "Triesen", "Triesenberg", "Vaduz"]
    assert t.loc["Schaan", "status"] == "fail"

    # exactly-one rule with the hospital counted twice
    two = pd.concat([facilities, facilities.assign(facility_id="copy")], ignore_index=True)
    exact = PresenceRule(id="E", facility_types=("hospital",), level="municipality",
                         min_count=1, max_count=1)
    t = exact.evaluate(facilities=two, units=units, places=places).set_index("unit_name")
    assert t.loc["Vaduz", "status"] == "fail" and t.loc["Vaduz", "margin"] == -1


def test_population_band_needs(li) -> None:
    facilities, units, places = li
    rule = PopulationBandRule(id="B", facility_types=("hospital",), lower=1000, upper=5000,
                              level="municipality")
    t = rule.evaluate(facilities=facilities, units=units, places=places).set_index("unit_name")
    pop = units.set_index("name")["population"]
    for m in t.index:
        n = 1 if m == "Vaduz" else 0
        n_min, n_max = math.ceil(pop[m] / 5000), math.floor(pop[m] / 1000)
        assert t.loc[m, "needed"] == n_min
        if n_min > n_max:
            assert t.loc[m, "status"] == "not_applicable"
        else:
            per = pop[m] / n if n else math.inf
            assert t.loc[m, "status"] == ("pass" if 1000 <= per <= 5000 else "fail"), m
    # Vaduz: 5,425 residents for 1 hospital > 5,000: fail, needs 2; Planken 424 < 1,000: n/a
    assert t.loc["Vaduz", "status"] == "fail" and t.loc["Vaduz", "needed"] == 2
    assert t.loc["Vaduz", "value"] == 5425 and t.loc["Vaduz", "margin"] == 5000 - 5425
    assert t.loc["Planken", "status"] == "not_applicable"
    assert t.loc["Schaan", "needed"] == 2  # 5,963 / 5,000 -> 2
    # DDK-06's band (8,000-20,000): every municipality is below 8,000, so none can be checked
    # (on hospitals: a file without a single 社区卫生服务站 would make it cannot_check)
    ddk06 = PopulationBandRule(id="DDK-06", facility_types=("hospital",),
                               lower=8000, upper=20000, level="municipality")
    t = ddk06.evaluate(facilities=facilities, units=units, places=places)
    assert (t["status"] == "not_applicable").all()


def test_ratio_cannot_check_without_attribute(li) -> None:
    # issue 13: a column the data lacks is cannot_check (was not_applicable), with the reason
    facilities, units, places = li
    rule = RatioRule(id="R", attribute="beds", target=7.9, level="municipality")
    t = rule.evaluate(facilities=facilities, units=units, places=places)
    assert (t["status"] == "cannot_check").all()
    assert t["evidence"].str.contains("no 'beds' column").all()


# ------------------------------------------------------------------- Chinese tables (NBS)
def nbs_units(county_code: str) -> gpd.GeoDataFrame:
    table = pd.read_csv(NBS, dtype={"code": str, "parent": str})
    table = table[table["code"].str.startswith(county_code)]
    census = pd.read_csv(CENSUS, dtype={"区划代码": str}).set_index("区划代码")
    units = pd.DataFrame({
        "unit_id": table["code"], "name": table["name"], "level": table["level"],
        "parent_id": table["parent"].where(table["level"] != "county"), "population": np.nan,
    })  # fmt: skip
    units.loc[units["level"] == "county", "population"] = float(census.loc[county_code,
                                                                           "人口数_合计"])
    return gpd.GeoDataFrame(units, geometry=[None] * len(units), crs=4326)


def no_places() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"place_id": [], "unit_id": [], "population": []},
                            geometry=[], crs=4326)


def named_facilities(rows: list[tuple[str, str, str]]) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"facility_id": [r[0] for r in rows], "name": [r[0] for r in rows],
         "type": [r[1] for r in rows], "unit_id": [r[2] for r in rows]},
        geometry=[None] * len(rows), crs=4326,
    )  # fmt: skip


def test_presence_on_dadukou_townships_by_name_pattern() -> None:
    """DDK-05 on the NBS townships, with the CHSCs and THCs the Dadukou plan names."""
    units = nbs_units("500104")
    facilities = named_facilities([
        ("新山村街道社区卫生服务中心", "community_health_centre", "500104001000"),
        ("茄子溪街道社区卫生服务中心", "community_health_centre", "500104004000"),
        ("春晖路街道社区卫生服务中心", "community_health_centre", "500104005000"),
        ("跳磴镇卫生院", "township_health_centre", "500104103000"),
    ])  # fmt: skip
    rule = PresenceRule(id="DDK-05", facility_types=("community_health_centre",),
                        level="township", min_count=1, max_count=1, unit_name_pattern="街道$")
    t = rule.evaluate(facilities=facilities, units=units, places=no_places())
    # "township" matches the NBS level "town": 8 townships, 5 of them sub-districts (街道)
    assert t["level"].unique().tolist() == ["town"] and len(t) == 8
    s = t.set_index("unit_name")["status"]
    assert s[["新山村街道", "茄子溪街道", "春晖路街道"]].eq("pass").all()
    assert s[["跃进村街道", "九宫庙街道"]].eq("fail").all()
    assert s[["八桥镇", "建胜镇", "跳磴镇"]].eq("not_applicable").all()


def test_band_and_ratio_on_chinese_county_tables() -> None:
    """Real populations (2020 census) and Dazu's 2020 beds and staff as its plan states them."""
    dadukou = nbs_units("500104")
    chscs = named_facilities([
        ("新山村街道社区卫生服务中心", "community_health_centre", "500104001000"),
        ("茄子溪街道社区卫生服务中心", "community_health_centre", "500104004000"),
        ("春晖路街道社区卫生服务中心", "community_health_centre", "500104005000"),
    ])  # fmt: skip
    band = PopulationBandRule(id="BZ-02", facility_types=("community_health_centre",),
                              lower=20000, upper=100000, level="county")
    row = band.evaluate(facilities=chscs, units=dadukou, places=no_places()).iloc[0]
    # 421,904 residents / 3 centres = 140,635 > 100,000: needs ceil(4.21904) = 5
    assert row["population"] == 421904 and row["value"] == pytest.approx(421904 / 3)
    assert row["status"] == "fail" and row["needed"] == 5

    dazu = nbs_units("500111")
    # 「全区医疗卫生机构编制床位5134张 ... 执业（助理）医师2205人，注册护士2559人」 (seed 004)
    totals = named_facilities([("大足区医疗卫生机构合计", "other", "500111000000")])
    totals = totals.assign(beds=5134.0, doctors=2205.0, nurses=2559.0)
    pop = 834592.0
    for attribute, target, total in (("doctors", 3.0, 2205), ("nurses", 3.21, 2559),
                                     ("beds", 7.9, 5134)):
        rule = RatioRule(id=attribute, attribute=attribute, target=target)
        r = rule.evaluate(facilities=totals, units=dazu, places=no_places()).iloc[0]
        assert r["level"] == "county" and r["population"] == pop
        assert r["value"] == pytest.approx(total / pop * 1000)
        assert r["margin"] == pytest.approx(total / pop * 1000 - target)
        assert r["status"] == "fail"
    # the plan's own 2020 per-1,000 figures, from its 83.5万 denominator: 2.64 and 3.07
    assert 2205 / pop * 1000 == pytest.approx(2.64, abs=0.005)
    assert 2559 / pop * 1000 == pytest.approx(3.07, abs=0.005)


def test_unknown_level_is_an_error(li) -> None:
    facilities, units, places = li
    rule = PresenceRule(id="P", facility_types=("hospital",), level="province")
    with pytest.raises(CoverageError, match="level 'province' is not a level"):
        rule.evaluate(facilities=facilities, units=units, places=places)
