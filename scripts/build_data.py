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
  residential-type roads, see :func:`spread_population`);
- boundaries/huangpu_townships.geojson, boundaries/xihu_box_townships.geojson: APPROXIMATE
  街道/镇 cells (近似) of 上海市黄浦区 and of a box of 杭州市西湖区 with NBS 2023 codes;
  population/huangpu_places.geojson, population/xihu_box_places.geojson: MODELLED (模型估算)
  places from the 2020 census totals; facilities/xihu_box_osm.geojson: the real OSM health
  facilities in the box; facilities/huangpu_register_illustrative.csv: an ILLUSTRATIVE (示意)
  facility register (see :func:`build_china`).

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


# ------------------------------------------------------------------------------------------
# Chinese demonstration districts: 上海市 黄浦区 (whole district) and a box of 杭州市 西湖区.
# Kept apart from build_all() so the Andorra/Liechtenstein outputs stay exactly as they were.

HUANGPU_DRIVE = "osm/huangpu_drive.osm.pbf"
HUANGPU_WALK = "osm/huangpu_walk.osm.pbf"
HUANGPU_BOUNDARY = "osm/huangpu_boundary_nominatim.json"
XIHU_DRIVE = "osm/hangzhou_xihu_drive.osm.pbf"
HANGZHOU_FACILITIES = "osm/hangzhou_osm_health_facilities_2024-08-13.geojson"
NBS_TOWNSHIPS = "china/townships_nbs2023_more.csv"
NBS_VILLAGES = "china/villages_nbs2023_more.csv"
CENSUS_COUNTIES = "china/census2020_counties_more.csv"
HUANGPU_CODE = "310101"
XIHU_CODE = "330106"
#: Marks written into the Chinese layers (every unit name, every illustrative facility name).
APPROX_MARK = "（近似）"
ILLUSTRATIVE_MARK = "（示意）"
#: What a unit polygon is, and how its population was obtained (written in every row).
BOUNDARY_METHOD_ZH = "近似：街道驻地点的泰森多边形（Voronoi）裁剪至{area}，非官方边界"
#: The place-method texts of the Chinese layers (模型估算 = modelled).
METHOD_ZH = "模型估算（modelled）：2020年人口普查总数按居住类道路长度分配到250米网格"
ROAD_NAME_SUFFIXES = ("", "路", "街", "隧道")
SEAT_NODE_FORMS = ("{stem}", "{stem}站", "地铁{stem}站")
#: Facility types recognised from a Chinese name, checked in this order (before the OSM tags).
NAME_TYPES = (
    ("社区卫生服务中心", "community_health_centre"),
    ("社区卫生服务站", "community_health_station"),
    ("急救", "emergency_station"),
    ("卫生院", "township_health_centre"),
    ("卫生室", "village_clinic"),
    ("医院", "hospital"),
    ("诊所", "clinic"),
    ("门诊部", "clinic"),
    ("药房", "pharmacy"),
    ("药店", "pharmacy"),
)


def _stem(name: str) -> str:
    """The place name a 街道/镇 is named after: the name without 街道, 镇 or 乡."""
    for suffix in ("街道", "镇", "乡"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def read_named_osm(path: Path) -> tuple[pd.DataFrame, gpd.GeoDataFrame]:
    """Named nodes (stops, stations, junctions) and named ways of an OSM road file.

    Returns
    -------
    (pandas.DataFrame, geopandas.GeoDataFrame)
        Nodes: ``osm_id``, ``name``, ``lon``, ``lat``; ways: ``osm_id``, ``name`` and their
        LineString in EPSG:4326. Both sorted by ``osm_id``.
    """
    import osmium

    nodes, ways = [], []
    for obj in osmium.FileProcessor(str(path)).with_locations():
        name = obj.tags.get("name")
        if not name:
            continue
        if obj.is_node():
            nodes.append((obj.id, name, obj.location.lon, obj.location.lat))
        elif obj.is_way():
            coords = [(n.lon, n.lat) for n in obj.nodes if n.location.valid()]
            if len(coords) >= 2:
                ways.append((obj.id, name, shapely.LineString(coords)))
    node_df = pd.DataFrame(nodes, columns=["osm_id", "name", "lon", "lat"]).sort_values("osm_id")
    way_gdf = gpd.GeoDataFrame(
        pd.DataFrame([w[:2] for w in ways], columns=["osm_id", "name"]),
        geometry=[w[2] for w in ways], crs="EPSG:4326",
    ).sort_values("osm_id")
    return node_df.reset_index(drop=True), way_gdf.reset_index(drop=True)


def place_seats(
    townships: pd.DataFrame,
    area: BaseGeometry,
    nodes: pd.DataFrame,
    ways: gpd.GeoDataFrame,
    facilities: gpd.GeoDataFrame | None = None,
) -> gpd.GeoDataFrame:
    """Place one seat (驻地点) per 街道/镇 from the OSM data itself, or none.

    In this order, using only objects inside ``area``: (1) an OSM health facility whose name
    starts with the full 街道/镇 name (its own 社区卫生服务中心, e.g. 蒋村街道社区卫生服务中心);
    (2) the mean position of the named nodes of the road file (bus/metro stops, stations)
    called exactly the place name, the name + 站 or 地铁 + name + 站 (老西门, 地铁古荡站);
    (3) the point of the ways named the place name, or it + 路/街/隧道 (半淞园路, 北山街),
    nearest the mean of their vertices. A 街道/镇 with none of these gets no seat.

    Returns
    -------
    geopandas.GeoDataFrame
        ``unit_id`` (NBS code), ``name``, ``seat_source`` (what the seat was placed on), Point.
    """
    shapely.prepare(area)
    rows = []
    for code, name in zip(townships["code"].astype(str), townships["name"], strict=True):
        stem = _stem(name)
        seat, source = None, None
        if facilities is not None:
            hit = facilities[facilities["name"].fillna("").str.startswith(name)]
            hit = hit[[area.contains(g) for g in hit.geometry]]
            if len(hit):
                first = hit.sort_values("osm_id").iloc[0]
                seat = first.geometry
                source = f"OSM 医疗机构 {first['name']}（{first['osm_type']} {first['osm_id']}）"
        if seat is None:
            forms = {f.format(stem=stem) for f in SEAT_NODE_FORMS}
            hit = nodes[nodes["name"].isin(forms)]
            hit = hit[shapely.contains_xy(area, hit["lon"], hit["lat"])]
            if len(hit):
                seat = shapely.Point(hit["lon"].mean(), hit["lat"].mean())
                source = (f"OSM 站点「{'、'.join(sorted(set(hit['name'])))}」{len(hit)} 个节点的"
                          "平均位置")
        if seat is None:
            forms = {stem + s for s in ROAD_NAME_SUFFIXES}
            hit = ways[ways["name"].isin(forms)]
            hit = hit[[area.intersects(g) for g in hit.geometry]]
            if len(hit):
                xy = np.concatenate([np.asarray(g.coords) for g in hit.geometry])
                xy = xy[shapely.contains_xy(area, xy[:, 0], xy[:, 1])]
                mean = xy.mean(axis=0)
                seat = shapely.Point(xy[np.argmin(((xy - mean) ** 2).sum(axis=1))])
                source = f"OSM 道路「{'、'.join(sorted(set(hit['name'])))}」的中部节点"
        if seat is not None:
            rows.append({"unit_id": code, "name": name, "seat_source": source, "geometry": seat})
    return gpd.GeoDataFrame(rows, geometry="geometry", crs="EPSG:4326")


def _census_total(data: Path, code: str) -> tuple[int, int]:
    """(total, rural) 2020 census population of a county from the census table."""
    census = pd.read_csv(data / CENSUS_COUNTIES, dtype={"区划代码": str})
    row = census[census["区划代码"] == code]
    if len(row) != 1:
        raise CoverageError(f"{data / CENSUS_COUNTIES}: no single row for 区划代码 {code}")
    return int(row["人口数_合计"].iloc[0]), int(row["乡村人口"].iloc[0])


def _townships(data: Path, county: str) -> pd.DataFrame:
    towns = pd.read_csv(data / NBS_TOWNSHIPS, dtype=str)
    return towns[towns["areaCode"] == county].sort_values("code").reset_index(drop=True)


def _china_units(
    seats: gpd.GeoDataFrame, area: BaseGeometry, *, county: str, area_zh: str,
    population: dict[str, float], population_method: str,
) -> gpd.GeoDataFrame:
    """Approximate 街道/镇 units: Voronoi cells of the seats clipped to ``area``."""
    from covplan.china.approximate import voronoi_units

    cells = voronoi_units(seats, area, level="township", parent_id=county)
    cells = cells.set_index("unit_id").loc[list(seats["unit_id"])].reset_index()
    crs_m = metric_crs(cells)
    names = list(seats["name"])
    units = gpd.GeoDataFrame(
        {
            "unit_id": list(seats["unit_id"]),
            "name": [n + APPROX_MARK for n in names],
            "nbs_name": names,
            "nbs_code": list(seats["unit_id"]),
            "kind": ["镇" if n.endswith("镇") else "街道" for n in names],
            "level": "township",
            "parent_id": county,
            "population": [float(population[c]) for c in seats["unit_id"]],
            "urban_rural": None,
            "approximate": True,
            "boundary_method": BOUNDARY_METHOD_ZH.format(area=area_zh),
            "seat_source": list(seats["seat_source"]),
            "seat_lon": [round(g.x, 7) for g in seats.geometry],
            "seat_lat": [round(g.y, 7) for g in seats.geometry],
            "population_method": population_method,
            "area_km2": (cells.to_crs(crs_m).area / 1e6).round(3).to_numpy(),
        },
        geometry=[_multipolygon(g, crs_m=crs_m) for g in cells.geometry],
        crs="EPSG:4326",
    )
    return units.sort_values("unit_id").reset_index(drop=True)


#: Every road class of the drive files: the weight of a unit without residential-type roads.
ALL_ROAD_HIGHWAYS = (
    *RESIDENTIAL_HIGHWAYS, "tertiary", "tertiary_link", "secondary", "secondary_link",
    "primary", "primary_link", "trunk", "trunk_link", "motorway", "motorway_link",
)
METHOD_ZH_ALL_ROADS = ("模型估算（modelled）：2020年人口普查总数按道路长度（单元内无居住类道路，"
                       "改用全部道路）分配到250米网格")


def _china_places(units: gpd.GeoDataFrame, osm: Path, *, all_urban: bool) -> gpd.GeoDataFrame:
    """Spread each unit's total over 250 m cells by residential road length (MODELLED).

    A unit with no residential-type road inside it (hills, parks) is weighted by all roads.
    """
    roads = read_residential_roads(osm, highway=RESIDENTIAL_HIGHWAYS)
    shapely.prepare(roads.geometry.values)
    bare = np.array([not roads.intersects(g).any() for g in units.geometry])
    parts = [spread_population(units[~bare], roads).assign(method=METHOD_ZH)]
    if bare.any():
        every = read_residential_roads(osm, highway=ALL_ROAD_HIGHWAYS)
        parts.append(spread_population(units[bare], every).assign(method=METHOD_ZH_ALL_ROADS))
    if bare.any():  # the urban density rule needs all units of a cell together
        places = pd.concat(parts, ignore_index=True)
        cell = places["place_id"].str.rsplit("-", n=1).str[-1]
        density = places.groupby(cell)["population"].transform("sum") / (CELL_M ** 2 / 1e6)
        places["density_km2"] = density.round(1)
        places["urban_rural"] = np.where(density >= URBAN_DENSITY_KM2, "urban", "rural")
        places = gpd.GeoDataFrame(places, geometry="geometry", crs="EPSG:4326")
        places = places.sort_values("place_id").reset_index(drop=True)
    else:
        places = parts[0]
    if all_urban:  # the census counts no rural resident: every place is urban
        places["urban_rural"] = "urban"
        places["ur_source"] = "census"
    return places


def huangpu_outline(data: Path) -> BaseGeometry:
    """The 黄浦区 polygon (OSM relation 371650) from the Nominatim response."""
    import json

    with open(data / HUANGPU_BOUNDARY, encoding="utf-8") as fh:
        hits = json.load(fh)
    hit = next(h for h in hits if h.get("osm_type") == "relation" and h["osm_id"] == 371650)
    return shapely.geometry.shape(hit["geojson"])


def xihu_box(data: Path) -> BaseGeometry:
    """The 西湖区 study box: the extent of the nodes of the box's drive road file."""
    import osmium

    lons, lats = [], []
    for obj in osmium.FileProcessor(str(data / XIHU_DRIVE), osmium.osm.NODE):
        lons.append(obj.location.lon)
        lats.append(obj.location.lat)
    return shapely.box(min(lons), min(lats), max(lons), max(lats))


def _typed_facility(props: dict) -> tuple[str, str]:
    """(facility type, how it was found) of an OSM health point: its name first, then tags."""
    from covplan.facility_types import facility_type_from_osm

    name = props.get("name") or ""
    for word, key in NAME_TYPES:
        if word in name:
            return key, f"名称含「{word}」"
    tags = {k: str(v) for k, v in props.items() if isinstance(v, str)}
    return facility_type_from_osm(tags) or "other", "OSM 标签"


def build_xihu_facilities(data: Path, box: BaseGeometry) -> gpd.GeoDataFrame:
    """The real OSM health facilities of 杭州市 inside the 西湖区 box, typed."""
    import json

    from covplan.facility_types import FACILITY_TYPES

    with open(data / HANGZHOU_FACILITIES, encoding="utf-8") as fh:
        features = json.load(fh)["features"]
    rows = []
    meta = {"in_xihu_extract_bbox", "osm_type", "osm_id", "point_from"}
    for feat in features:
        props = feat["properties"]
        point = shapely.geometry.shape(feat["geometry"])
        if not props.get("in_xihu_extract_bbox"):
            continue
        if not box.covers(point):
            raise CoverageError(f"{data / HANGZHOU_FACILITIES}: OSM {props['osm_type']} "
                                f"{props['osm_id']} is flagged inside the box but lies outside")
        kind, how = _typed_facility(props)
        rows.append({
            "facility_id": f"osm-{props['osm_type'][0]}{props['osm_id']}",
            "name": props.get("name") or f"未命名{FACILITY_TYPES[kind][0]}",
            "type": kind,
            "type_source": how,
            "source": "OpenStreetMap",
            "licence": "© OpenStreetMap contributors, ODbL 1.0（OSM 2024-08-13）",
            "osm_type": props["osm_type"],
            "osm_id": int(props["osm_id"]),
            "point_from": props.get("point_from"),
            "tags": json.dumps({k: v for k, v in props.items() if k not in meta},
                               ensure_ascii=False, sort_keys=True),
            "geometry": point,
        })
    fac = gpd.GeoDataFrame(rows, geometry="geometry", crs="EPSG:4326")
    return fac.sort_values("facility_id").reset_index(drop=True)


def build_xihu(data: Path) -> dict[str, gpd.GeoDataFrame]:
    """西湖区 box: approximate 街道/镇 cells, modelled places, the real OSM facilities.

    The 12 NBS 2023 街道/镇 get a population share of the 2020 census total in proportion to
    their number of 村/社区 (NBS 2023); those with a seat in the box (:func:`place_seats`)
    become units holding their whole share, the others are outside the box or left out
    (see data/README.md). Inside each unit the share is spread by residential road length.
    """
    box = xihu_box(data)
    towns = _townships(data, XIHU_CODE)
    villages = pd.read_csv(data / NBS_VILLAGES, dtype=str)
    counts = villages[villages["areaCode"] == XIHU_CODE].groupby("streetCode").size()
    weights = counts.reindex(towns["code"]).fillna(0).to_numpy(dtype=float)
    total, _rural = _census_total(data, XIHU_CODE)
    shares = dict(zip(towns["code"], _apportion(float(total), weights, decimals=0), strict=True))
    facilities = build_xihu_facilities(data, box)
    nodes, ways = read_named_osm(data / XIHU_DRIVE)
    seats = place_seats(towns, box, nodes, ways, facilities)
    units = _china_units(
        seats, box, county=XIHU_CODE, area_zh="西湖区研究框（非区界）", population=shares,
        population_method=("模型估算（modelled）：西湖区2020年普查常住人口1,112,992人按各街道/镇"
                           "村社区个数（统计用区划代码2023）比例分配；框内单元计其全部份额"),
    )
    places = _china_places(units, data / XIHU_DRIVE, all_urban=False)
    return {"boundaries/xihu_box_townships.geojson": units,
            "population/xihu_box_places.geojson": places,
            "facilities/xihu_box_osm.geojson": facilities}


def build_huangpu(data: Path) -> tuple[dict[str, gpd.GeoDataFrame], pd.DataFrame]:
    """黄浦区: approximate 街道 cells of the real outline, modelled places, a 示意 register.

    The 2020 census total (all urban) is shared among the 10 街道 cells in proportion to the
    length of residential-type roads (walk file) inside each, then spread inside each cell.
    """
    outline = huangpu_outline(data)
    towns = _townships(data, HUANGPU_CODE)
    nodes, ways = read_named_osm(data / HUANGPU_WALK)
    seats = place_seats(towns, outline, nodes, ways)
    if len(seats) != len(towns):
        missing = sorted(set(towns["name"]) - set(seats["name"]))
        raise CoverageError(f"黄浦区: no seat found in the OSM data for {missing}")
    total, rural = _census_total(data, HUANGPU_CODE)
    roads = read_residential_roads(data / HUANGPU_WALK, highway=RESIDENTIAL_HIGHWAYS)
    probe = _china_units(seats, outline, county=HUANGPU_CODE, area_zh="黄浦区区界（OSM）",
                         population=dict.fromkeys(seats["unit_id"], 0.0), population_method="")
    crs_m = metric_crs(probe)
    roads_m = roads.to_crs(crs_m)
    length = np.array([roads_m.intersection(g).length.sum()
                       for g in probe.to_crs(crs_m).geometry])
    shares = dict(zip(probe["unit_id"], _apportion(float(total), length, decimals=0),
                      strict=True))
    units = _china_units(
        seats, outline, county=HUANGPU_CODE, area_zh="黄浦区区界（OSM）", population=shares,
        population_method=("模型估算（modelled）：黄浦区2020年普查常住人口662,030人（全部城镇）"
                           "按各单元内居住类道路长度比例分配"),
    )
    places = _china_places(units, data / HUANGPU_WALK, all_urban=rural == 0)
    register = huangpu_register(data, units, outline)
    return ({"boundaries/huangpu_townships.geojson": units,
             "population/huangpu_places.geojson": places}, register)


def _drive_nodes(data: Path, area: BaseGeometry) -> gpd.GeoDataFrame:
    """Nodes of the largest strongly connected piece of the drive network inside ``area``."""
    from covplan.engine.network import build_network
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    net = build_network(data / HUANGPU_DRIVE, mode="drive", cache_dir=None)
    graph = coo_matrix((np.ones(len(net.u)), (net.u, net.v)), shape=(net.n_nodes,) * 2)
    _, label = connected_components(graph, directed=True, connection="strong")
    big = label == np.bincount(label).argmax()
    inside = shapely.contains_xy(area, net.lonlat[:, 0], net.lonlat[:, 1]) & big
    idx = np.flatnonzero(inside)
    return gpd.GeoDataFrame({"osm_id": net.node_ids[idx]},
                            geometry=shapely.points(net.lonlat[idx]), crs="EPSG:4326")


def huangpu_register(data: Path, units: gpd.GeoDataFrame, outline: BaseGeometry) -> pd.DataFrame:
    """An ILLUSTRATIVE (示意) facility register for 黄浦区 in the template format.

    No real facility list of 黄浦区 is available offline. Entries, all at drive-network nodes
    (largest strongly connected piece) so that they can be reached: one 社区卫生服务中心 per
    街道 at the node nearest the cell's centre; a 三级医院 at the node nearest the seat of each
    of the two most populous cells and a 二级医院 for the next two; two 急救站 at the nodes
    nearest the centres of the northern and southern five cells. Names end in （示意）.
    """
    from covplan.inputs.register import REGISTER_COLUMNS

    nodes = _drive_nodes(data, outline)
    crs_m = metric_crs(units)
    nodes_m = nodes.to_crs(crs_m)
    node_xy = np.column_stack([nodes_m.geometry.x, nodes_m.geometry.y])

    def nearest(point: BaseGeometry) -> shapely.Point:
        p = gpd.GeoSeries([point], crs="EPSG:4326").to_crs(crs_m).iloc[0]
        k = int(np.argmin((node_xy[:, 0] - p.x) ** 2 + (node_xy[:, 1] - p.y) ** 2))
        return nodes.geometry.iloc[k]

    def centre(geom: BaseGeometry) -> BaseGeometry:
        c = geom.centroid
        return c if geom.contains(c) else geom.representative_point()

    rows = []
    for i, u in enumerate(units.itertuples(), start=1):
        rows.append((f"SY-CHC-{i:02d}", f"{u.nbs_name}社区卫生服务中心", "社区卫生服务中心",
                     nearest(centre(u.geometry)), u.unit_id, ""))
    seat_of = {u: shapely.Point(x, y) for u, x, y in zip(
        units["unit_id"], units["seat_lon"], units["seat_lat"], strict=True)}
    by_pop = units.sort_values(["population", "unit_id"], ascending=[False, True])
    for j, (uid, name) in enumerate(zip(by_pop["unit_id"], by_pop["nbs_name"], strict=True)):
        if j >= 4:
            break
        kind, grade = ("三级医院", "三级甲等") if j < 2 else ("二级医院", "二级甲等")
        rows.append((f"SY-H-{j + 1:02d}", f"{name}{kind}", kind, nearest(seat_of[uid]), uid,
                     grade))
    lat = units.geometry.representative_point().y
    order = units.assign(lat=lat.to_numpy()).sort_values(["lat", "unit_id"], ascending=False)
    for j, part in enumerate((order.iloc[:5], order.iloc[5:])):
        where = "北部" if j == 0 else "南部"
        point = nearest(centre(part.union_all()))
        hit = units[units.covers(point)]
        rows.append((f"SY-EMS-{j + 1:02d}", f"黄浦区{where}急救站", "急救站", point,
                     hit["unit_id"].iloc[0], ""))
    header = {c.key: c.zh for c in REGISTER_COLUMNS}
    table = pd.DataFrame({header[k]: pd.Series(dtype=object) for k in header})
    for fid, name, kind, point, code, grade in rows:
        emergency = "是" if kind in ("三级医院", "二级医院") else "否"
        table.loc[len(table)] = {
            header["facility_id"]: fid, header["name"]: name + ILLUSTRATIVE_MARK,
            header["type"]: kind, header["lon"]: f"{point.x:.7f}", header["lat"]: f"{point.y:.7f}",
            header["crs"]: "WGS-84", header["unit_code"]: code, header["grade"]: grade,
            header["emergency_dept"]: emergency, header["status"]: "现有",
        }
    table["数据性质"] = "示意（非真实机构，位置为道路节点）"
    return table.astype(object).fillna("")


def write_csv(table: pd.DataFrame, path: Path) -> None:
    """Write a register table as UTF-8 CSV with a byte-order mark (opens in Excel)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False, encoding="utf-8-sig", lineterminator="\n")


def build_china(data: Path, out: Path) -> list[tuple[Path, int]]:
    """Derive the 黄浦区 and 西湖区 layers from ``data`` and write them under ``out``."""
    written: list[tuple[Path, int]] = []
    huangpu, register = build_huangpu(data)
    for rel, gdf in {**huangpu, **build_xihu(data)}.items():
        write_geojson(gdf, out / rel)
        written.append((out / rel, len(gdf)))
    path = out / "facilities/huangpu_register_illustrative.csv"
    write_csv(register, path)
    written.append((path, len(register)))
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
        written = build_all(args.data, out) + build_china(args.data, out)
    except CoverageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for path, n in written:
        print(f"wrote {path} ({n} rows)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
