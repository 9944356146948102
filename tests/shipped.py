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
