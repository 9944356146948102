"""A unit set whose population exceeds its county's 2020 census total by more than 10 % warns.

The totals are read here straight from the shipped census table (pandas, not covplan.china),
the township codes from the shipped NBS table; units are matched by an ``nbs_code`` column or
by NBS codes as unit ids. Each case checks the warning's where/what/fix and that the loader
wrote nothing.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
import shapely
from checks import snapshot
from covplan.errors import InputWarning
from covplan.inputs.loaders import (
    CENSUS_MARGIN,
    load_boundaries,
    load_population,
    warn_above_census,
)

TABLES = Path(__file__).resolve().parents[1] / "coverage" / "china" / "tables"
COUNTY = "500106"  # 沙坪坝区


def _census_total(code: str) -> int:
    table = pd.read_csv(TABLES / "census2020_counties.csv", dtype={"区划代码": str})
    return int(table.loc[table["区划代码"] == code, "人口数_合计"].iloc[0])


def _townships(code: str) -> list[str]:
    table = pd.read_csv(TABLES / "townships_nbs2023.csv", dtype=str)
    column = next(c for c in table.columns if "code" in c.lower() or "代码" in c)
    codes = sorted(c for c in table[column] if str(c).startswith(code) and len(str(c)) == 9)
    assert len(codes) > 5
    return codes


def _units_file(folder: Path, codes: list[str], total: float, *, id_as_code: bool,
                name: str = "units.geojson") -> Path:
    """Square units, one per code, whose populations sum to ``total``."""
    n = len(codes)
    frame = gpd.GeoDataFrame({
        "unit_id": codes if id_as_code else [f"U{i}" for i in range(n)],
        "name": [f"镇{i}" for i in range(n)],
        "population": [total / n] * n,
    }, geometry=[shapely.box(106.4 + i * 0.01, 29.5, 106.405 + i * 0.01, 29.505)
                 for i in range(n)], crs="EPSG:4326")
    if not id_as_code:
        frame["nbs_code"] = codes
    path = folder / name
    frame.to_file(path, driver="GeoJSON")
    return path


def _load(path: Path) -> tuple[gpd.GeoDataFrame, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        units = load_boundaries(path, id_column="unit_id", name_column="name",
                                level="township", population_column="population")
    return units, [str(w.message) for w in caught if issubclass(w.category, InputWarning)
                   and "census" in str(w.message)]


@pytest.mark.parametrize("id_as_code", [True, False], ids=["unit_id", "nbs_code"])
def test_population_above_the_census_total_warns(tmp_path: Path, id_as_code: bool) -> None:
    total = _census_total(COUNTY)
    codes = _townships(COUNTY)
    summed = round(total * 1.25)
    path = _units_file(tmp_path, codes, summed, id_as_code=id_as_code)
    before = snapshot(tmp_path)
    units, messages = _load(path)
    assert snapshot(tmp_path) == before  # a warning, nothing written
    assert len(units) == len(codes)
    assert len(messages) == 1, messages
    message = messages[0]
    assert f"units.geojson: the {len(codes)} unit(s) of 沙坪坝区 ({COUNTY})" in message
    assert f"sums to {summed:,.0f}, 25% above the 2020 census total of {total:,}" in message
    assert "check the population column" in message


def test_within_the_margin_or_without_codes_no_warning(tmp_path: Path) -> None:
    total = _census_total(COUNTY)
    codes = _townships(COUNTY)
    _, messages = _load(_units_file(tmp_path, codes, total * (1 + CENSUS_MARGIN) - 100,
                                    id_as_code=True, name="near.geojson"))
    assert messages == []
    plain = _units_file(tmp_path, [f"X{c}" for c in codes], total * 3, id_as_code=True,
                        name="plain.geojson")
    _, messages = _load(plain)  # ids that are not NBS codes: no county, no check
    assert messages == []


def test_counties_are_checked_separately_and_twelve_digit_codes_count(tmp_path: Path) -> None:
    other = "500104"  # 大渡口区
    big, small = _census_total(COUNTY), _census_total(other)
    frame = gpd.GeoDataFrame({
        "unit_id": [f"{COUNTY}001000", f"{COUNTY}002000", f"{other}001000", "X"],
        "population": [big * 0.6, big * 0.6, small * 0.5, 1e7],
    }, geometry=[shapely.Point(0, 0)] * 4, crs="EPSG:4326")
    with pytest.warns(InputWarning) as record:
        problems = warn_above_census(frame, frame["population"], source="t.csv")
    assert [p.where for p in problems] == [f"t.csv: the 2 unit(s) of 沙坪坝区 ({COUNTY})"]
    assert f"{big * 1.2:,.0f}, 20% above" in problems[0].what
    assert [str(r.message) for r in record] == [str(problems[0])]


def test_population_points_above_the_census_total_warn(tmp_path: Path) -> None:
    total = _census_total(COUNTY)
    codes = _townships(COUNTY)[:3]
    units_path = _units_file(tmp_path, codes, 0, id_as_code=True)
    units, _ = _load(units_path)
    # two villages in each township, holding 1.5 times the county's census total together
    centres = units.geometry.representative_point()
    places = gpd.GeoDataFrame({
        "place_id": [f"p{i}" for i in range(6)],
        "population": [total * 1.5 / 6] * 6,
    }, geometry=[c for c in centres for _ in range(2)], crs="EPSG:4326")
    points = tmp_path / "villages.geojson"
    places.to_file(points, driver="GeoJSON")
    before = snapshot(tmp_path)
    with pytest.warns(InputWarning, match="census") as record:
        loaded = load_population(points, kind="points", units=units,
                                 population_column="population", id_column="place_id")
    assert snapshot(tmp_path) == before
    assert loaded["population"].sum() == pytest.approx(total * 1.5)
    texts = [str(r.message) for r in record if "census" in str(r.message)]
    assert texts == [
        f"villages.geojson: the 3 unit(s) of 沙坪坝区 ({COUNTY}): the population of the places "
        f"in them sums to {total * 1.5:,.0f}, 50% above the 2020 census total of {total:,} "
        f"(more than 10% above it) (check the population column and its unit (persons, not "
        f"10,000 persons), rows counted twice, and overlapping units)"
    ]
