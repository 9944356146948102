"""run_audit: per unit and rule, a summary per rule, and the uncovered places, on real inputs."""

from __future__ import annotations

import math
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
from covplan.errors import CoverageError
from covplan.inputs.urban_rural import classify_places
from covplan.standards import (
    RESULT_COLUMNS,
    PopulationBandRule,
    StraightLineAccess,
    TravelTimeRule,
    list_presets,
    load_preset,
    parse_standards,
)
from covplan.standards.audit import SUMMARY_COLUMNS, run_audit
from shipped import ANDORRA_POPULATION
from test_standards_rules import HOSPITAL, haversine_km, liechtenstein_layers

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="module")
def li() -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame, gpd.GeoDataFrame]:
    facilities, units, places = liechtenstein_layers()
    places["ur_given"] = places["municipality"].map({"Vaduz": "urban", "Schaan": "urban",
                                                     "Triesen": "urban"})
    return facilities, units, classify_places(places, column="ur_given")


def test_audit_tables_on_liechtenstein(li) -> None:
    facilities, units, places = li
    access = StraightLineAccess(facilities, places, speeds_kmh={"drive": 40.0,
                                                                "ambulance": 40.0})
    rules = [
        TravelTimeRule(id="T", title="5/10 minutes", facility_types=("hospital",),
                       minutes={"urban": 5, "rural": 10}),
        *parse_standards([{"preset": "bazhong", "only": ["BZ-12", "BZ-13", "BZ-14"]},
                          {"preset": "dadukou", "only": ["DDK-06", "DDK-10"],
                           # a municipality has no kind (社区...): judge every one
                           "override": {"DDK-06": {"unit_kinds": []}}}]),
    ]
    # the municipalities stand for every level here: said explicitly (never guessed)
    result = run_audit(rules, facilities=facilities, units=units, places=places, access=access,
                       levels={"county": "municipality", "village": "municipality"})

    assert list(result.units.columns) == ["rule_id", "rule", "title", *RESULT_COLUMNS[2:]]
    assert len(result.units) == 11 * len(rules)  # every rule is checked per municipality
    assert list(result.summary.columns) == list(SUMMARY_COLUMNS)
    assert result.summary["rule_id"].tolist() == ["T", "BZ-12", "BZ-13", "BZ-14", "DDK-06",
                                                  "DDK-10"]
    summary = result.summary.set_index("rule_id")

    # by hand: minutes at 40 km/h in a straight line, limit 5 (urban) or 10 (rural)
    pop = places.set_index("municipality")["population"]
    minutes = {m: haversine_km(g.x, g.y, *HOSPITAL) / 40 * 60
               for m, g in zip(places["municipality"], places.geometry, strict=True)}
    urban = {"Vaduz", "Schaan", "Triesen"}
    uncovered = {m for m, v in minutes.items() if v > (5 if m in urban else 10)}
    covered_pop = pop.sum() - pop[list(uncovered)].sum()
    assert summary.loc["T", "population"] == 37370
    assert summary.loc["T", "covered_population"] == covered_pop
    assert summary.loc["T", "region_value"] == pytest.approx(covered_pop / 37370)
    assert summary.loc["T", "region_status"] == "fail"
    # the uncovered places of rule T, worst first, with their nearest facility and minutes
    t_places = result.places[result.places["rule_id"] == "T"]
    assert set(t_places["unit_id"]) == set(
        units.set_index("name").loc[sorted(uncovered), "unit_id"])
    worst = t_places.iloc[0]
    assert worst["place_id"] == "node/704"  # Ruggell, 11.7 km from the hospital
    assert worst["value"] == pytest.approx(minutes["Ruggell"], rel=5e-3)
    assert worst["facility_name"] == "Liechtensteinisches Landesspital"
    assert worst["population"] == 2146 and worst.geometry.x == pytest.approx(9.5262874)
    assert result.evidence is result.places

    # BZ-12 covers urban residents only, BZ-13 rural only: their populations add up
    assert summary.loc["BZ-12", "population"] == pop[list(urban)].sum() == 16397
    assert summary.loc["BZ-13", "population"] == 37370 - 16397
    # at 40 km/h the farthest place (Ruggell, 17.6 min) is inside 30 min, urban ones inside 15
    assert summary.loc["BZ-12", "region_value"] == 1.0 and summary.loc["BZ-13",
                                                                        "region_value"] == 1.0
    # BZ-14: no emergency station in the facility file -> cannot be checked in any of the 11
    # municipalities (issue 13: an absent type is never a fail of every unit), with the reason
    assert summary.loc["BZ-14", "units_cannot_check"] == 11
    assert summary.loc["BZ-14", "region_status"] == "cannot_check"
    bz14 = result.units[result.units["rule_id"] == "BZ-14"]
    assert bz14["evidence"].str.contains("no 急救中心（站） (emergency_station)", regex=False).all()
    # DDK-06: no 社区卫生服务站 in the file (and every municipality below 8,000 residents)
    # -> nothing can be checked (issue 13: cannot_check, was not_applicable)
    assert summary.loc["DDK-06", "units_checked"] == 0
    assert summary.loc["DDK-06", "region_status"] == "cannot_check"
    # DDK-10: no beds column -> cannot be checked (was not_applicable), with the reason
    ddk10 = result.units[result.units["rule_id"] == "DDK-10"]
    assert (ddk10["status"] == "cannot_check").all()
    assert ddk10["evidence"].str.contains("no 'beds' column").all()
    assert summary.loc["DDK-10", "quote"] == "每千常住人口床位数达到7.9张"

    layer = result.unit_layer("BZ-14")
    assert isinstance(layer, gpd.GeoDataFrame) and len(layer) == 11
    assert layer.geometry.notna().all()


def test_duplicate_ids_and_missing_access_are_errors(li) -> None:
    facilities, units, places = li
    rule = TravelTimeRule(id="T", facility_types=("hospital",), minutes=15)
    with pytest.raises(CoverageError, match="repeated"):
        run_audit([rule, rule], facilities=facilities, units=units, places=places, access=None)
    with pytest.raises(CoverageError, match="no access was given"):
        run_audit([rule], facilities=facilities, units=units, places=places, access=None)


SHIPPED = {
    "andorra": ("andorra_parishes.geojson", "andorra.geojson", "andorra_places.geojson",
                "andorra_parish_population_2010.csv", "parish"),
    "liechtenstein": ("liechtenstein_municipalities.geojson", "liechtenstein.geojson",
                      "liechtenstein_places.geojson",
                      "liechtenstein_municipality_population_2014.csv", "municipality"),
}  # fmt: skip


@pytest.mark.parametrize("region", sorted(SHIPPED))
def test_every_preset_runs_on_the_demo_regions(region: str) -> None:
    """The shipped demo layers (built by the data scripts) under every preset."""
    b, f, p, official, _ = SHIPPED[region]
    paths = [DATA / "boundaries" / b, DATA / "facilities" / f, DATA / "population" / p]
    missing = [str(x) for x in paths if not x.is_file()]
    if missing:
        pytest.skip(f"demo layers not built yet: {missing}")
    units, facilities, places = (gpd.read_file(x) for x in paths)
    pop = pd.read_csv(DATA / "population" / official)
    official_total = float(pop.iloc[:, 3 if region == "andorra" else 5].sum())
    assert units["population"].sum() == official_total  # 85,015 / 37,370
    access = StraightLineAccess(facilities, places,
                                speeds_kmh={"drive": 40.0, "ambulance": 45.0, "walk": 4.5},
                                detour_factor=1.3)
    level = str(units["level"].iloc[0])  # the one level of the demo stands for all three
    for preset in list_presets():
        rules = load_preset(preset)
        result = run_audit(rules, facilities=facilities, units=units, places=places,
                           access=access, levels=dict.fromkeys(("county", "township",
                                                                 "village"), level))
        rows = {r.id: 1 if r.level == "region" else len(units) * len(getattr(r, "tiers", [0]))
                for r in rules}  # a region rule is judged once, a tiers rule per tier
        assert len(result.units) == sum(rows.values()), preset
        assert set(result.units["status"]) <= {"pass", "fail", "not_applicable",
                                               "cannot_check"}
        # a rule asking for a kind of unit (街道, 行政村...) cannot tell the kind of a parish
        by_kind = {r.id for r in rules if getattr(r, "unit_kinds", ())}
        unchecked = result.units[result.units["status"] == "cannot_check"]
        assert by_kind <= set(unchecked["rule_id"])
        # the others lack a facility type or column of the demo file, and say which
        others = unchecked[~unchecked["rule_id"].isin(by_kind)]
        assert others["evidence"].str.match(r"cannot be checked: (no |the )").all()
        checked = result.units[~result.units["status"].isin(["not_applicable",
                                                             "cannot_check"])]
        assert (checked["covered_population"].fillna(0) <= checked["population"] + 1e-6).all()
        for _, row in result.units[result.units["rule"] == "population_band"].iterrows():
            if row["status"] in ("pass", "fail"):  # needed = ceil(residents / upper)
                upper = next(r.upper for r in rules if r.id == row["rule_id"])
                assert row["needed"] == math.ceil(row["population"] / upper)
    # the unit classes that decide BZ-12 vs BZ-13 sum to all residents of the places
    result = run_audit(load_preset("bazhong"), facilities=facilities, units=units,
                       places=places, access=access, levels={"county": level})
    s = result.summary.set_index("rule_id")
    assert s.loc["BZ-12", "population"] + s.loc["BZ-13", "population"] == pytest.approx(
        places["population"].sum())


def test_band_needs_on_andorra_official_populations() -> None:
    """How many stations each parish needs for 8,000-20,000 (none exist): ceil(pop / 20,000)."""
    pop = pd.read_csv(ANDORRA_POPULATION)
    units = gpd.GeoDataFrame(
        {"unit_id": pop["iso3166_2"], "name": pop["parish"], "level": "parish",
         "parent_id": None, "population": pop["population_2010"].astype(float)},
        geometry=[None] * len(pop), crs=4326,
    )  # fmt: skip
    # one station, in no parish (an unknown unit): with none at all the file could not say
    # anything and the rule would be cannot_check (issue 13)
    empty = gpd.GeoDataFrame({"facility_id": ["s"], "type": ["community_health_station"],
                              "unit_id": ["elsewhere"]}, geometry=[None], crs=4326)
    places = gpd.GeoDataFrame({"place_id": [], "unit_id": [], "population": []}, geometry=[],
                              crs=4326)
    rule = PopulationBandRule(id="DDK-06", facility_types=("community_health_station",),
                              lower=8000, upper=20000, level="parish")
    result = run_audit([rule], facilities=empty, units=units, places=places, access=None)
    t = result.units.set_index("unit_name")
    assert t.loc["Andorra la Vella", "needed"] == 2  # 23,505 / 20,000 -> 2
    for parish in ("Encamp", "Escaldes-Engordany", "La Massana", "Sant Julià de Lòria"):
        assert t.loc[parish, "needed"] == 1 and t.loc[parish, "status"] == "fail"
    for parish in ("Canillo", "Ordino"):  # 6,194 and 4,396 < 8,000
        assert t.loc[parish, "status"] == "not_applicable"
    assert result.summary.iloc[0]["total_needed"] == 6
