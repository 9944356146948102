"""Paths of the real data shipped in ``data/`` (see ``data/README.md`` for sources and licences)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
SCENARIOS = DATA / "scenarios"

ANDORRA_PBF = DATA / "osm" / "andorra-2013-05-23.osm.pbf"
ANDORRA_DEM = DATA / "elevation" / "N42E001.hgt.zip"
ANDORRA_SCENARIO = SCENARIOS / "andorra.toml"
ANDORRA_PARISHES = DATA / "boundaries" / "andorra_parishes.geojson"
ANDORRA_POPULATION = DATA / "population" / "andorra_parish_population_2010.csv"
ANDORRA_PLACES = DATA / "population" / "andorra_places.geojson"
ANDORRA_FACILITIES = DATA / "facilities" / "andorra.geojson"

LIECHTENSTEIN_PBF = DATA / "osm" / "liechtenstein-2013-08-03.osm.pbf"
LIECHTENSTEIN_SCENARIO = SCENARIOS / "liechtenstein.toml"
LIECHTENSTEIN_MUNICIPALITIES = DATA / "boundaries" / "liechtenstein_municipalities.geojson"
LIECHTENSTEIN_POPULATION = DATA / "population" / "liechtenstein_municipality_population_2014.csv"
LIECHTENSTEIN_PLACES = DATA / "population" / "liechtenstein_places.geojson"
LIECHTENSTEIN_FACILITIES = DATA / "facilities" / "liechtenstein.geojson"
#: The NBS code tables and census totals, shipped inside the package (covplan.china.tables).
NBS_TABLES = ROOT / "coverage" / "china" / "tables"


def write_small_scenario(folder: Path) -> Path:
    """Write Andorra la Vella alone (the smallest parish), one drive standard, into ``folder``.

    A real scenario whose audit takes seconds: the parish, its places, the shipped facilities
    and the Andorra extract. Returns the scenario file.
    """
    import textwrap

    import geopandas as gpd

    parishes = gpd.read_file(ANDORRA_PARISHES)
    parish = parishes[parishes["unit_id"] == "AD-07"]
    parish.to_file(folder / "parish.geojson", driver="GeoJSON")
    places = gpd.read_file(ANDORRA_PLACES)
    places[places.within(parish.geometry.iloc[0])].to_file(folder / "places.geojson",
                                                          driver="GeoJSON")
    path = folder / "scenario.toml"
    path.write_text(textwrap.dedent(f"""\
        [scenario]
        name = "Andorra la Vella"
        language = "en"

        [inputs.facilities]
        path = "{ANDORRA_FACILITIES.as_posix()}"

        [inputs.boundaries]
        path = "{(folder / 'parish.geojson').as_posix()}"
        id_column = "unit_id"
        name_column = "name"
        level = "parish"
        population_column = "population"

        [inputs.population]
        kind = "points"
        path = "{(folder / 'places.geojson').as_posix()}"
        population_column = "population"
        id_column = "place_id"
        urban_rural_column = "urban_rural"

        [inputs.network]
        source = "{ANDORRA_PBF.as_posix()}"
        buffer_m = 500
        max_snap_m = 1000

        [[standards]]
        id = "DRIVE-15"
        rule = "travel_time"
        title = "Every resident within 15 minutes' drive of a medical institution"
        facility_types = ["medical_institutions"]
        mode = "drive"
        minutes = 15
        """), encoding="utf-8")
    return path
