"""Read features from an OpenStreetMap file (.osm.pbf or .osm) with pyosmium.

Four readers, each returning a GeoDataFrame in EPSG:4326:

- :func:`read_admin_boundaries`: administrative boundary relations as (multi)polygons;
- :func:`read_health_facilities`: health facilities in the canonical facilities schema;
- :func:`read_places`: ``place=*`` nodes with their ``population`` tag;
- :func:`read_residential_roads`: road ways of chosen ``highway`` classes as lines.

Relations are assembled from their member ways here rather than by osmium's area assembler,
because an extract cut at a bounding box leaves boundary relations incomplete (the assembler
then drops them). The assembly is *clip-safe*: member ways and nodes missing from the file are
skipped, the remaining ways are merged into chains, and chains that do not close are joined to
the nearest open chain end with a straight segment. Every gap closed this way is reported with
an :class:`~covplan.errors.InputWarning` naming the relation and the gap length.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Collection, Iterable, Iterator
from pathlib import Path

import geopandas as gpd
import osmium
import pandas as pd
import shapely
from covplan.errors import CoverageError, InputWarning
from covplan.facility_types import facility_type_from_osm
from covplan.geo import haversine_m
from shapely.geometry import LineString, MultiPolygon, Point, Polygon
from shapely.geometry.base import BaseGeometry
from shapely.ops import linemerge, unary_union

__all__ = [
    "RESIDENTIAL_HIGHWAYS",
    "read_admin_boundaries",
    "read_health_facilities",
    "read_places",
    "read_residential_roads",
]

#: Highway classes counted as streets people live on, the default of
#: :func:`read_residential_roads`: residential streets, living streets, pedestrian streets and
#: unclassified minor roads (in the demo valleys these link hamlets and the upper parts of
#: villages, and several villages have few ways tagged ``residential``). ``service`` ways are
#: left out (driveways, car parks, ski-area and farm access), and so are trunk to tertiary
#: roads (through traffic), tracks and paths.
RESIDENTIAL_HIGHWAYS: tuple[str, ...] = (
    "residential",
    "living_street",
    "pedestrian",
    "unclassified",
)

_OSM_TYPE = {"n": "node", "w": "way", "r": "relation"}
Coords = list[tuple[float, float]]


def _check_path(path: str | Path) -> Path:
    p = Path(path)
    if not p.is_file():
        raise CoverageError(
            f"OpenStreetMap file not found: {p} (give the path of an existing .osm.pbf or "
            ".osm file, for example data/osm/andorra-2013-05-23.osm.pbf)"
        )
    return p


def _processor(
    path: Path, *, locations: bool, entities: osmium.osm.osm_entity_bits
) -> Iterator[osmium.osm.OSMObject]:
    """Iterate over the file's objects, turning read errors into a CoverageError."""
    try:
        fp = osmium.FileProcessor(str(path), entities)
        yield from (fp.with_locations() if locations else fp)
    except (RuntimeError, ValueError) as exc:  # pyosmium's errors on unreadable files
        raise CoverageError(
            f"cannot read OpenStreetMap file {path}: {exc} (is it a valid .osm.pbf or .osm "
            "file? re-download the extract)"
        ) from exc


def _way_coords(way: osmium.osm.Way) -> Coords:
    """Coordinates of a way's nodes whose location is in the file (clipped nodes skipped)."""
    out: Coords = []
    for n in way.nodes:
        loc = n.location
        if loc.valid():
            out.append((loc.lon, loc.lat))
    return out


def _gap_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    return float(haversine_m(a[0], a[1], b[0], b[1]))


def _close_chains(lines: list[Coords]) -> tuple[list[Coords], list[float]]:
    """Turn merged chains into closed rings, joining open ends with straight segments.

    Returns the rings and the length in metres of every gap closed.
    """
    rings: list[Coords] = []
    open_chains: list[Coords] = []
    for line in lines:
        if len(line) >= 2 and line[0] == line[-1]:
            rings.append(line)
        elif len(line) >= 2:
            open_chains.append(line)
    gaps: list[float] = []
    while open_chains:
        cur = list(open_chains.pop(0))
        while True:
            end = cur[-1]
            best_d = _gap_m(end, cur[0])
            best: tuple[int, bool] | None = None  # (index, reversed)
            for i, other in enumerate(open_chains):
                for rev, pt in ((False, other[0]), (True, other[-1])):
                    d = _gap_m(end, pt)
                    if d < best_d:
                        best_d, best = d, (i, rev)
            gaps.append(best_d)
            if best is None:
                cur.append(cur[0])
                rings.append(cur)
                break
            other = open_chains.pop(best[0])
            cur.extend(reversed(other) if best[1] else other)
    return rings, [g for g in gaps if g > 0.0]


def _rings_to_polygon(chains: list[Coords]) -> tuple[BaseGeometry, list[float]]:
    if not chains:
        return Polygon(), []
    merged = linemerge([LineString(c) for c in chains if len(c) >= 2])
    parts = list(getattr(merged, "geoms", [merged]))
    rings, gaps = _close_chains([list(p.coords) for p in parts if not p.is_empty])
    polys = [shapely.make_valid(Polygon(r)) for r in rings if len(r) >= 4]
    polys = [p for p in polys if not p.is_empty]
    return (unary_union(polys) if polys else Polygon()), gaps


def _as_multipolygon(geom: BaseGeometry) -> MultiPolygon | None:
    """Keep the polygonal part of a geometry, as a MultiPolygon (None when there is none)."""
    if geom.is_empty:
        return None
    if isinstance(geom, Polygon):
        return MultiPolygon([geom])
    if isinstance(geom, MultiPolygon):
        return geom
    polys: list[Polygon] = []
    for part in getattr(geom, "geoms", []):
        sub = _as_multipolygon(part)
        if sub is not None:
            polys.extend(sub.geoms)
    return MultiPolygon(polys) if polys else None


def _assemble_relation(
    rel_id: int, members: list[tuple[int, str]], ways: dict[int, Coords]
) -> tuple[MultiPolygon | None, list[float], int]:
    """Assemble a relation from its way members: union(outer rings) minus union(inner rings).

    Returns the geometry (None if nothing could be built), the gaps closed (m) and the number
    of member ways missing from the file.
    """
    outer: list[Coords] = []
    inner: list[Coords] = []
    missing = 0
    for ref, role in members:
        coords = ways.get(ref)
        if coords is None or len(coords) < 2:
            missing += 1
            continue
        (inner if role == "inner" else outer).append(coords)
    outer_geom, gaps_o = _rings_to_polygon(outer)
    inner_geom, gaps_i = _rings_to_polygon(inner)
    geom = outer_geom.difference(inner_geom) if not inner_geom.is_empty else outer_geom
    return _as_multipolygon(geom), gaps_o + gaps_i, missing


def _read_relations(
    path: Path, keep: Callable[[int, dict[str, str]], bool]
) -> dict[int, tuple[dict[str, str], list[tuple[int, str]]]]:
    """Relations for which ``keep(tags)`` is true: id -> (tags, [(way id, role)])."""
    out: dict[int, tuple[dict[str, str], list[tuple[int, str]]]] = {}
    for rel in _processor(path, locations=False, entities=osmium.osm.RELATION):
        tags = dict(rel.tags)
        if keep(rel.id, tags):
            members = [(m.ref, m.role) for m in rel.members if m.type == "w"]
            out[rel.id] = (tags, members)
    return out


def _read_way_coords(path: Path, way_ids: set[int]) -> dict[int, Coords]:
    ways: dict[int, Coords] = {}
    if not way_ids:
        return ways
    for obj in _processor(path, locations=True, entities=osmium.osm.NODE | osmium.osm.WAY):
        if obj.is_way() and obj.id in way_ids:
            ways[obj.id] = _way_coords(obj)
    return ways


def _warn_incomplete(rel_id: int, name: str, gaps: list[float], missing: int) -> None:
    if gaps or missing:
        longest = f", longest {max(gaps):,.0f} m" if gaps else ""
        warnings.warn(
            f"relation {rel_id} ({name!r}) is incomplete in the extract: {missing} member "
            f"way(s) missing, {len(gaps)} gap(s) closed with straight lines{longest}; its "
            "polygon is approximate there (use a larger extract for the exact boundary)",
            InputWarning,
            stacklevel=3,
        )


def read_admin_boundaries(
    path: str | Path,
    *,
    admin_level: int | Iterable[int] | None = None,
    relation_ids: Collection[int] | None = None,
) -> gpd.GeoDataFrame:
    """Read ``boundary=administrative`` relations as MultiPolygons.

    Parameters
    ----------
    path
        An OSM file (.osm.pbf or .osm).
    admin_level
        Keep only relations with this ``admin_level`` (or one of these levels).
    relation_ids
        Keep only these relation ids; every one must be present in the file.

    Returns
    -------
    geopandas.GeoDataFrame
        Columns ``osm_id`` (int, relation id), ``name``, ``admin_level`` (int, -1 when the tag
        is missing or not a number), ``geometry`` (MultiPolygon), EPSG:4326, sorted by
        ``osm_id``. Relations without any usable member way are left out with a warning.
        Only way members are used (``outer``/empty role as outer, ``inner`` as holes);
        node and sub-relation members are ignored.

    Raises
    ------
    CoverageError
        If the file cannot be read or a requested relation id is not an administrative
        boundary relation in it.

    Warns
    -----
    InputWarning
        For each relation cut by the extract edge (missing ways, gaps closed by straight lines).
    """
    p = _check_path(path)
    levels: set[str] | None = None
    if admin_level is not None:
        vals = [admin_level] if isinstance(admin_level, int | str) else list(admin_level)
        levels = {str(v) for v in vals}
    ids = None if relation_ids is None else {int(r) for r in relation_ids}

    def keep(rid: int, tags: dict[str, str]) -> bool:
        if tags.get("boundary") != "administrative":
            return False
        if tags.get("type") not in ("boundary", "multipolygon"):
            return False
        if levels is not None and tags.get("admin_level") not in levels:
            return False
        return ids is None or rid in ids

    rels = _read_relations(p, keep)
    if ids is not None and ids - rels.keys():
        raise CoverageError(
            f"{p}: administrative boundary relation(s) {sorted(ids - rels.keys())} not found"
            f"{' at admin_level ' + '/'.join(sorted(levels)) if levels else ''} (check the "
            "relation ids on openstreetmap.org and that the extract covers them)"
        )
    ways = _read_way_coords(p, {ref for _, members in rels.values() for ref, _ in members})
    rows = []
    for rid in sorted(rels):
        tags, members = rels[rid]
        name = tags.get("name", "")
        geom, gaps, missing = _assemble_relation(rid, members, ways)
        if geom is None:
            warnings.warn(
                f"relation {rid} ({name!r}) has no usable member way in {p}: left out",
                InputWarning,
                stacklevel=2,
            )
            continue
        _warn_incomplete(rid, name, gaps, missing)
        level = tags.get("admin_level", "")
        rows.append(
            {
                "osm_id": rid,
                "name": name,
                "admin_level": int(level) if level.strip().lstrip("-").isdigit() else -1,
                "geometry": geom,
            }
        )
    return _frame(rows, ["osm_id", "name", "admin_level"])


def _frame(rows: list[dict], columns: list[str]) -> gpd.GeoDataFrame:
    if not rows:
        return gpd.GeoDataFrame(
            {c: pd.Series([], dtype=object) for c in columns},
            geometry=gpd.GeoSeries([], crs="EPSG:4326"),
            crs="EPSG:4326",
        )
    return gpd.GeoDataFrame(rows, columns=[*columns, "geometry"], crs="EPSG:4326")


def _centroid(coords: Coords, *, closed: bool) -> Point | None:
    if not coords:
        return None
    if len(coords) == 1:
        return Point(coords[0])
    if closed and len(coords) >= 4:
        poly = shapely.make_valid(Polygon(coords))
        if not poly.is_empty and poly.area > 0:
            return poly.centroid
    return LineString(coords).centroid


def read_health_facilities(
    path: str | Path, *, area: BaseGeometry | None = None
) -> gpd.GeoDataFrame:
    """Read health facilities (nodes, ways and multipolygon relations) as points.

    An OSM object is a health facility when
    :func:`covplan.facility_types.facility_type_from_osm` gives it a type (hospitals, clinics,
    doctors, pharmacies, ambulance stations, other ``healthcare=*``). Ways and relations are
    placed at the centroid of their area (of their line when the way is not closed).

    Parameters
    ----------
    path
        An OSM file (.osm.pbf or .osm).
    area
        If given, keep only facilities inside or on the edge of this lon/lat (multi)polygon.

    Returns
    -------
    geopandas.GeoDataFrame
        The canonical facilities schema: ``facility_id`` ("osm-n522787974", "osm-w..." or
        "osm-r..."), ``name`` (the ``name`` tag, else "unnamed <type>"), ``type``, ``source``
        ("OpenStreetMap"), ``osm_type`` ("node"/"way"/"relation"), ``osm_id`` (int), ``tags``
        (all tags as a JSON object string, keys sorted), Point geometry in EPSG:4326, sorted by
        ``facility_id``.

    Raises
    ------
    CoverageError
        If the file cannot be read.
    """
    p = _check_path(path)

    def keep_rel(_rid: int, tags: dict[str, str]) -> bool:
        return tags.get("type") == "multipolygon" and facility_type_from_osm(tags) is not None

    rels = _read_relations(p, keep_rel)
    member_ways = {ref for _, members in rels.values() for ref, _ in members}
    found: list[tuple[str, int, dict[str, str], Point | None]] = []
    ways: dict[int, Coords] = {}
    for obj in _processor(p, locations=True, entities=osmium.osm.NODE | osmium.osm.WAY):
        if obj.is_way() and obj.id in member_ways:
            ways[obj.id] = _way_coords(obj)
        if not len(obj.tags):
            continue
        tags = dict(obj.tags)
        if facility_type_from_osm(tags) is None:
            continue
        if obj.is_node():
            pt = Point(obj.location.lon, obj.location.lat) if obj.location.valid() else None
            found.append(("n", obj.id, tags, pt))
        else:
            coords = _way_coords(obj)
            found.append(("w", obj.id, tags, _centroid(coords, closed=obj.is_closed())))
    for rid, (tags, members) in rels.items():
        geom, _gaps, _missing = _assemble_relation(rid, members, ways)
        found.append(("r", rid, tags, geom.centroid if geom is not None else None))

    rows = []
    for kind, oid, tags, pt in found:
        if pt is None or pt.is_empty:
            continue
        ftype = facility_type_from_osm(tags)
        name = tags.get("name", "").strip() or f"unnamed {ftype}"
        rows.append(
            {
                "facility_id": f"osm-{kind}{oid}",
                "name": name,
                "type": ftype,
                "source": "OpenStreetMap",
                "osm_type": _OSM_TYPE[kind],
                "osm_id": oid,
                "tags": json.dumps(tags, ensure_ascii=False, sort_keys=True),
                "geometry": pt,
            }
        )
    cols = ["facility_id", "name", "type", "source", "osm_type", "osm_id", "tags"]
    gdf = _frame(rows, cols)
    if area is not None and len(gdf):
        gdf = gdf[shapely.covers(area, gdf.geometry.values)]
    return gdf.sort_values("facility_id").reset_index(drop=True)


def _parse_population(text: str | None) -> float:
    if not text:
        return math.nan
    cleaned = text.replace(" ", "").replace(",", "").replace("'", "")
    try:
        value = float(cleaned)
    except ValueError:
        return math.nan
    return value if value >= 0 else math.nan


def read_places(path: str | Path) -> gpd.GeoDataFrame:
    """Read ``place=*`` nodes (towns, villages, hamlets, ...).

    Parameters
    ----------
    path
        An OSM file (.osm.pbf or .osm).

    Returns
    -------
    geopandas.GeoDataFrame
        Columns ``osm_id`` (int), ``name``, ``place`` (the tag value), ``population`` (float
        from the ``population`` tag, NaN when missing or not a number), Point geometry,
        EPSG:4326, sorted by ``osm_id``.
    """
    p = _check_path(path)
    rows = []
    for node in _processor(p, locations=False, entities=osmium.osm.NODE):
        place = node.tags.get("place")
        if place is None or not node.location.valid():
            continue
        rows.append(
            {
                "osm_id": node.id,
                "name": node.tags.get("name", ""),
                "place": place,
                "population": _parse_population(node.tags.get("population")),
                "geometry": Point(node.location.lon, node.location.lat),
            }
        )
    gdf = _frame(rows, ["osm_id", "name", "place", "population"])
    return gdf.sort_values("osm_id").reset_index(drop=True)


def read_residential_roads(
    path: str | Path, *, highway: Collection[str] = RESIDENTIAL_HIGHWAYS
) -> gpd.GeoDataFrame:
    """Read road ways of the given ``highway`` classes as lines (for dasymetric weighting).

    Parameters
    ----------
    path
        An OSM file (.osm.pbf or .osm).
    highway
        The ``highway`` tag values to keep; default :data:`RESIDENTIAL_HIGHWAYS`.

    Returns
    -------
    geopandas.GeoDataFrame
        Columns ``osm_id`` (int, way id), ``highway``, ``name``, LineString geometry,
        EPSG:4326, sorted by ``osm_id``. Ways with fewer than two nodes in the file are
        left out.
    """
    p = _check_path(path)
    wanted = set(highway)
    rows = []
    for obj in _processor(p, locations=True, entities=osmium.osm.NODE | osmium.osm.WAY):
        if not obj.is_way():
            continue
        hw = obj.tags.get("highway")
        if hw not in wanted:
            continue
        coords = _way_coords(obj)
        if len(coords) < 2:
            continue
        rows.append(
            {
                "osm_id": obj.id,
                "highway": hw,
                "name": obj.tags.get("name", ""),
                "geometry": LineString(coords),
            }
        )
    gdf = _frame(rows, ["osm_id", "highway", "name"])
    return gdf.sort_values("osm_id").reset_index(drop=True)

