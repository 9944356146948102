"""Which source decides urban or rural, through a whole scenario: the user's column first, then
the NBS urban-rural code of the village (the density threshold comes after both)."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pandas as pd
from covplan.pipeline import load_inputs
from covplan.scenario import load_scenario
from shapely.geometry import box
from shipped import ANDORRA_PBF, NBS_TABLES

REPO = Path(__file__).resolve().parents[1]
# Real NBS 2016 village codes of 巴州区 (511902) with their real urban-rural class codes, read
# from the shipped NBS table in the test; the point positions are made up (the
# NBS tables have no coordinates) and only serve to put the villages inside one box.
CODES = ["511902001001", "511902001200", "511902100001", "511902202001"]


def _scenario(tmp_path: Path, *, user_column: bool) -> Path:
    villages = pd.DataFrame(
        {
            "id": ["v1", "v2", "v3", "v4"],
            "lon": [106.75, 106.76, 106.77, 106.78],
            "lat": [31.86, 31.86, 31.86, 31.86],
            "population": [1000.0, 50.0, 800.0, 300.0],
            "code": CODES,
            "ur": ["rural", "", "", ""],
        }
    )
    villages.to_csv(tmp_path / "villages.csv", index=False)
    gpd.GeoDataFrame(
        {"unit_id": ["511902"], "name": ["巴州区"], "population": [1]},
        geometry=[box(106.7, 31.8, 106.8, 31.9)], crs="EPSG:4326",
    ).to_file(tmp_path / "county.geojson", driver="GeoJSON")
    pd.DataFrame({"id": ["f1"], "name": ["巴州区人民医院"], "type": ["hospital"],
                  "lon": [106.76], "lat": [31.85]}).to_csv(tmp_path / "f.csv", index=False)
    network = ANDORRA_PBF.as_posix()
    extra = 'urban_rural_column = "ur"\n' if user_column else ""
    text = f"""
[scenario]
name = "Bazhou"
[inputs.facilities]
path = "f.csv"
[inputs.boundaries]
path = "county.geojson"
level = "county"
[inputs.population]
kind = "points"
path = "villages.csv"
id_column = "id"
population_column = "population"
nbs_code_column = "code"
{extra}
[inputs.network]
source = "{network}"
"""
    path = tmp_path / "s.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _nbs_classes() -> dict[str, str]:
    table = pd.read_csv(NBS_TABLES / "admin_units_nbs2016.csv", dtype=str)
    table = table[table["code"].isin(CODES)]
    pairs = zip(table["code"], table["ur_code"], strict=True)
    return {c: ("urban" if u.startswith("1") else "rural") for c, u in pairs}


def test_nbs_code_decides_where_the_user_gave_no_class(tmp_path: Path) -> None:
    places = load_inputs(load_scenario(_scenario(tmp_path, user_column=True))).places
    places = places.set_index("place_id")
    classes = _nbs_classes()
    # v1: the user's column says rural although its NBS code (111 主城区) says urban
    assert places.loc["v1", ["urban_rural", "ur_source"]].tolist() == ["rural", "column"]
    for pid, code in zip(["v2", "v3", "v4"], CODES[1:], strict=True):
        assert places.loc[pid, "ur_source"] == "nbs"
        assert places.loc[pid, "urban_rural"] == classes[code]
    assert classes[CODES[1]] == "rural" and classes[CODES[2]] == "urban"


def test_without_column_every_village_takes_its_nbs_class(tmp_path: Path) -> None:
    places = load_inputs(load_scenario(_scenario(tmp_path, user_column=False))).places
    classes = _nbs_classes()
    assert set(places["ur_source"]) == {"nbs"}
    assert dict(zip(places["code"], places["urban_rural"], strict=True)) == classes
