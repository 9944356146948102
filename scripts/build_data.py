"""Rebuild every derived data layer from data/osm and data/population.

Usage::

    python scripts/build_data.py                 # rewrite the shipped files in data/
    python scripts/build_data.py --out /tmp/x    # write them elsewhere (same relative paths)

Writes (relative to the output folder):

- boundaries/andorra_parishes.geojson, boundaries/liechtenstein_municipalities.geojson:
  OSM admin relations joined to the official populations;
- facilities/andorra.geojson, facilities/liechtenstein.geojson: OSM health facilities inside
  each country;
- population/andorra_places.geojson, population/liechtenstein_places.geojson: MODELLED
  population points (each unit's official total spread over 250 m cells by the length of
  residential-type roads, see :func:`spread_population`).

The output is deterministic: running it twice writes identical files. Geometry coordinates
are snapped to a 1e-7 degree grid (about 1 cm) so the files stay small and stable.
"""

from __future__ import annotations

import argparse
import math
import sys
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # allow running the script from a source checkout
    sys.path.insert(0, str(REPO))

from covplan.errors import CoverageError, InputWarning  # noqa: E402
from covplan.geo import metric_crs  # noqa: E402
from covplan.inputs.osm_features import (  # noqa: E402
    RESIDENTIAL_HIGHWAYS,
    read_admin_boundaries,
    read_health_facilities,
    read_residential_roads,
)

ANDORRA_OSM = "osm/andorra-2013-05-23.osm.pbf"
LIECHTENSTEIN_OSM = "osm/liechtenstein-2013-08-03.osm.pbf"
ANDORRA_POP = "population/andorra_parish_population_2010.csv"
LIECHTENSTEIN_POP = "population/liechtenstein_municipality_population_2014.csv"

ANDORRA_COUNTRY_RELATION = 9407
ANDORRA_PARISH_RELATIONS = tuple(range(2804753, 2804760))
CANILLO_RELATION = 2804754
LIECHTENSTEIN_COUNTRY_RELATION = 47

#: Side of the square cells population is spread over, metres (in the country's UTM zone).
CELL_M = 250.0
#: A cell whose modelled density is at least this many people per km² is urban.
URBAN_DENSITY_KM2 = 1500.0
#: Parts of a rebuilt polygon smaller than this (m²) are slivers and dropped.
SLIVER_M2 = 1000.0
METHOD = "modelled: official total spread by residential road length"
UNIT_COLUMNS = [
    "unit_id",
    "name",
    "level",
    "parent_id",
    "population",
    "urban_rural",
    "area_km2",
    "osm_id",
]
COORD_GRID = 1e-7


def _multipolygon(geom: BaseGeometry, *, crs_m: object | None = None) -> MultiPolygon:
    """Polygonal parts of ``geom`` as a MultiPolygon, dropping slivers when ``crs_m`` is given."""
    parts: list[Polygon] = []
    stack = [geom]
    while stack:
        g = stack.pop()
        if isinstance(g, Polygon):
            if not g.is_empty:
                parts.append(g)
        elif hasattr(g, "geoms"):
            stack.extend(g.geoms)
    if crs_m is not None and parts:
        areas = gpd.GeoSeries(parts, crs="EPSG:4326").to_crs(crs_m).area.to_numpy()
        parts = [p for p, a in zip(parts, areas, strict=True) if a >= SLIVER_M2]
    if not parts:
        raise CoverageError("a derived unit polygon came out empty (check the OSM relations)")
    parts.sort(key=lambda p: (-p.area, p.bounds))
    return MultiPolygon(parts)


def build_andorra_parishes(data: Path) -> tuple[gpd.GeoDataFrame, BaseGeometry]:
    """Andorra's 7 parishes with official 2010 populations, and the country polygon.

    Canillo's relation is cut at the extract edge, so Canillo is rebuilt as the country
    (relation 9407, its own small gap closed by a straight line) minus the other six parishes.
    """
    with warnings.catch_warnings():
        # Canillo and the country are cut at the extract edge; both are handled below.
        warnings.simplefilter("ignore", InputWarning)
        rel = read_admin_boundaries(
            data / ANDORRA_OSM,
            relation_ids=(ANDORRA_COUNTRY_RELATION, *ANDORRA_PARISH_RELATIONS),
        )
    country = rel.loc[rel.osm_id == ANDORRA_COUNTRY_RELATION, "geometry"].iloc[0]
    parishes = rel[rel.osm_id.isin(ANDORRA_PARISH_RELATIONS)].copy()
    crs_m = metric_crs(parishes)
    others = parishes.loc[parishes.osm_id != CANILLO_RELATION, "geometry"].union_all()
    canillo = _multipolygon(country.difference(others), crs_m=crs_m)
    parishes.loc[parishes.osm_id == CANILLO_RELATION, "geometry"] = gpd.GeoSeries(
        [canillo], index=parishes.index[parishes.osm_id == CANILLO_RELATION], crs="EPSG:4326"
    )
    pop = pd.read_csv(data / ANDORRA_POP)
    merged = parishes.merge(pop, left_on="osm_id", right_on="osm_relation_id", how="inner")
    if len(merged) != len(ANDORRA_PARISH_RELATIONS):
        raise CoverageError(
            f"{data / ANDORRA_POP}: expected {len(ANDORRA_PARISH_RELATIONS)} parishes joined by "
            f"osm_relation_id, got {len(merged)} (check the osm_relation_id column)"
        )
    units = _units_layer(merged, name_column="parish", level="parish",
                         population_column="population_2010")
    return units, country


def build_liechtenstein_municipalities(data: Path) -> tuple[gpd.GeoDataFrame, BaseGeometry]:
    """Liechtenstein's 11 municipalities with official 2014 populations, and the country.

    The extract also holds Austrian and Swiss admin_level=8 relations; a municipality is kept
    when at least half of its area lies inside Liechtenstein (relation 47).
    """
    with warnings.catch_warnings():
        # Neighbouring Austrian/Swiss units are cut at the extract edge; they are dropped.
        warnings.simplefilter("ignore", InputWarning)
        country_gdf = read_admin_boundaries(
            data / LIECHTENSTEIN_OSM, relation_ids=(LIECHTENSTEIN_COUNTRY_RELATION,)
        )
        rel = read_admin_boundaries(data / LIECHTENSTEIN_OSM, admin_level=8)
    country = country_gdf.geometry.iloc[0]
    inside = np.array([g.intersection(country).area / g.area >= 0.5 for g in rel.geometry])
    rel = rel[inside]
    pop = pd.read_csv(data / LIECHTENSTEIN_POP)
    merged = rel.merge(pop, left_on="name", right_on="municipality", how="inner")
    if len(merged) != len(pop) or len(rel) != len(pop):
        raise CoverageError(
            f"{data / LIECHTENSTEIN_POP}: joined {len(merged)} of {len(pop)} municipalities "
            f"by name with {len(rel)} OSM municipalities inside Liechtenstein (check names)"
        )
    units = _units_layer(merged, name_column="municipality", level="municipality",
                         population_column="population_2014_12_31")
    return units, country


def _units_layer(
    merged: gpd.GeoDataFrame, *, name_column: str, level: str, population_column: str
) -> gpd.GeoDataFrame:
    """The canonical units layer from OSM boundaries joined to an official population table."""
    units = gpd.GeoDataFrame(
        {
            "unit_id": merged["iso3166_2"].astype(str),
            "name": merged[name_column].astype(str),
            "level": level,
            "parent_id": None,
            "population": merged[population_column].astype(float),
            "urban_rural": None,
            "area_km2": merged["area_km2"].astype(float),
            "osm_id": merged["osm_id"].astype(int),
        },
        geometry=[_multipolygon(g) for g in merged.geometry],
        crs="EPSG:4326",
    )
    return units.sort_values("unit_id").reset_index(drop=True)


def _apportion(total: float, weights: np.ndarray, *, decimals: int = 3) -> np.ndarray:
    """Split ``total`` in proportion to ``weights`` into values with ``decimals`` decimals.

    Largest-remainder rounding on the 10^-decimals grid, so the parts add up to the total
    (ties go to the earlier part).
    """
    scale = 10**decimals
    units_total = round(total * scale)
    raw = units_total * weights / weights.sum()
    base = np.floor(raw).astype(np.int64)
    short = int(units_total - base.sum())
    order = np.lexsort((np.arange(len(raw)), -(raw - base)))
    base[order[:short]] += 1
    return base / scale


def spread_population(
    units: gpd.GeoDataFrame,
    roads: gpd.GeoDataFrame,
    *,
    cell_m: float = CELL_M,
    urban_density_km2: float = URBAN_DENSITY_KM2,
) -> gpd.GeoDataFrame:
    """Spread each unit's official population over road-weighted grid cells (MODELLED).

    A square grid of ``cell_m`` cells, aligned on multiples of ``cell_m`` in the UTM zone of
    the units, is cut by each unit polygon. Every (cell, unit) piece is weighted by the length
    of ``roads`` inside it; pieces of zero weight are dropped and the unit total is shared
    among the rest in proportion to the weight (to 0.001 person, summing exactly to the
    total). The place point is the cell centre when it lies inside the unit, else a point
    inside the piece. A place is "urban" when its whole cell (all units together) holds at
    least ``urban_density_km2`` people per km² of cell area, else "rural" (``ur_source`` is
    "density").

    Returns
    -------
    geopandas.GeoDataFrame
        ``place_id`` ("<unit_id>-<col>_<row>", the cell's UTM grid index), ``unit_id``,
        ``population``, ``urban_rural``, ``ur_source``, ``method``, ``road_m`` (weighting road
        length in the piece), ``density_km2`` (the cell's modelled density), Point geometry in
        EPSG:4326.
    """
    crs_m = metric_crs(units)
    units_m = units.to_crs(crs_m)
    roads_m = np.asarray(roads.to_crs(crs_m).geometry.values, dtype=object)
    rows = []
    for unit_id, total, geom in zip(
        units_m["unit_id"], units_m["population"], units_m.geometry, strict=True
    ):
        minx, miny, maxx, maxy = geom.bounds
        cols = np.arange(math.floor(minx / cell_m), math.ceil(maxx / cell_m))
        rws = np.arange(math.floor(miny / cell_m), math.ceil(maxy / cell_m))
        cc, rr = (a.ravel() for a in np.meshgrid(cols, rws))
        cells = shapely.box(cc * cell_m, rr * cell_m, (cc + 1) * cell_m, (rr + 1) * cell_m)
        shapely.prepare(geom)
        hit = shapely.intersects(geom, cells)
        cc, rr, cells = cc[hit], rr[hit], cells[hit]
        near = roads_m[shapely.intersects(geom, roads_m)]
        clipped = shapely.intersection(near, geom)
        tree = shapely.STRtree(cells)
        ri, ci = tree.query(clipped, predicate="intersects")
        lengths = shapely.length(shapely.intersection(clipped[ri], cells[ci]))
        weight = np.bincount(ci, weights=lengths, minlength=len(cells))
        keep = weight > 0
        if not keep.any():
            raise CoverageError(
                f"unit {unit_id}: no road of the weighting classes inside it, cannot spread "
                "its population (add more highway classes)"
            )
        cc, rr, cells, weight = cc[keep], rr[keep], cells[keep], weight[keep]
        pop = _apportion(float(total), weight)
        centres = shapely.points(
            (cc + 0.5) * cell_m, (rr + 0.5) * cell_m
        )
        inside = shapely.contains(geom, centres)
        pts = [
            c if ok else shapely.intersection(cell, geom).representative_point()
            for c, ok, cell in zip(centres, inside, cells, strict=True)
        ]
        for c, r, p, w, pt in zip(cc, rr, pop, weight, pts, strict=True):
            rows.append(
                {
                    "place_id": f"{unit_id}-{int(c)}_{int(r)}",
                    "unit_id": unit_id,
                    "population": float(p),
                    "road_m": round(float(w), 1),
                    "cell": (int(c), int(r)),
                    "geometry": pt,
                }
            )
    places = gpd.GeoDataFrame(rows, geometry="geometry", crs=crs_m)
    cell_pop = places.groupby("cell")["population"].transform("sum")
    density = cell_pop / (cell_m * cell_m / 1e6)
    places["density_km2"] = density.round(1)
    places["urban_rural"] = np.where(density >= urban_density_km2, "urban", "rural")
    places["ur_source"] = "density"
    places["method"] = METHOD
    places = places.drop(columns="cell").to_crs("EPSG:4326")
    cols = [
        "place_id",
        "unit_id",
        "population",
        "urban_rural",
        "ur_source",
        "method",
        "road_m",
        "density_km2",
    ]
    return places[[*cols, "geometry"]].sort_values("place_id").reset_index(drop=True)


def _snap(geom: BaseGeometry) -> BaseGeometry:
    snapped = shapely.set_precision(geom, COORD_GRID)
    if isinstance(geom, MultiPolygon) and not isinstance(snapped, MultiPolygon):
        return _multipolygon(snapped)
    return snapped


def write_geojson(gdf: gpd.GeoDataFrame, path: Path) -> None:
    """Write a layer as GeoJSON with coordinates snapped to 1e-7 degrees (about 1 cm)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    out = gdf.copy()
    out["geometry"] = [_snap(g) for g in out.geometry]
    if path.exists():
        path.unlink()
    out.to_file(
        path,
        driver="GeoJSON",
        engine="pyogrio",
        COORDINATE_PRECISION=7,
        AUTODETECT_JSON_STRINGS="NO",
    )


def build_all(data: Path, out: Path) -> list[tuple[Path, int]]:
    """Derive every layer from ``data`` and write it under ``out``; return (path, rows)."""
    written: list[tuple[Path, int]] = []

    def emit(gdf: gpd.GeoDataFrame, rel: str) -> None:
        path = out / rel
        write_geojson(gdf, path)
        written.append((path, len(gdf)))

    countries = {
        "andorra": (build_andorra_parishes, ANDORRA_OSM, "andorra_parishes"),
        "liechtenstein": (
            build_liechtenstein_municipalities,
            LIECHTENSTEIN_OSM,
            "liechtenstein_municipalities",
        ),
    }
    for country_name, (build_units, osm, units_name) in countries.items():
        units, country = build_units(data)
        emit(units, f"boundaries/{units_name}.geojson")
        facilities = read_health_facilities(data / osm, area=country)
        emit(facilities, f"facilities/{country_name}.geojson")
        roads = read_residential_roads(data / osm, highway=RESIDENTIAL_HIGHWAYS)
        emit(spread_population(units, roads), f"population/{country_name}_places.geojson")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO / "data", help="input data folder")
    parser.add_argument(
        "--out", type=Path, default=None, help="output folder (default: the data folder)"
    )
    args = parser.parse_args(argv)
    out = args.out if args.out is not None else args.data
    try:
        written = build_all(args.data, out)
    except CoverageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for path, n in written:
        print(f"wrote {path} ({n} rows)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
