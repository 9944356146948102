"""Approximate township polygons when the real ones are not mapped.

Township (乡镇/街道) boundaries are often missing from OpenStreetMap in Chongqing and Sichuan,
while the township seats (镇/乡 centres) are mapped as place nodes. Each township is then
approximated by the Voronoi cell of its seat (the area closer to it than to any other seat),
computed in metres and clipped to the district. Every such polygon carries
``approximate = True`` so that tables and maps can say so.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import shapely
from covplan.errors import CoverageError
from covplan.geo import metric_crs
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

__all__ = ["voronoi_units"]


def _as_multi(geom: BaseGeometry) -> MultiPolygon:
    if isinstance(geom, MultiPolygon):
        return geom
    if isinstance(geom, Polygon):
        return MultiPolygon([geom])
    polys = [g for g in getattr(geom, "geoms", []) if isinstance(g, Polygon) and not g.is_empty]
    for g in getattr(geom, "geoms", []):
        if isinstance(g, MultiPolygon):
            polys.extend(g.geoms)
    return MultiPolygon(polys)


def voronoi_units(
    seats: gpd.GeoDataFrame,
    district: BaseGeometry,
    *,
    id_column: str = "unit_id",
    name_column: str = "name",
    level: str = "township",
    parent_id: str | None = None,
) -> gpd.GeoDataFrame:
    """Build one approximate polygon per seat: its Voronoi cell clipped to the district.

    Parameters
    ----------
    seats
        Points (EPSG:4326 or any CRS) of the township seats, one per township; seats outside
        the district are used to shape the cells but their cells are dropped when nothing of
        them is left inside.
    district
        The district outline in lon/lat.
    id_column, name_column
        Columns of ``seats`` giving each unit's id and name.
    level
        The ``level`` written to the units.
    parent_id
        The ``parent_id`` written to the units (the district's id).

    Returns
    -------
    geopandas.GeoDataFrame
        The canonical units schema (``unit_id``, ``name``, ``level``, ``parent_id``,
        ``population`` NaN, ``urban_rural`` None) plus ``approximate`` (True) and ``method``
        (``"voronoi"``), MultiPolygon geometry in EPSG:4326. The cells tile the district.

    Raises
    ------
    CoverageError
        When there is no seat, ids repeat, or two seats share a position.
    """
    if len(seats) == 0:
        raise CoverageError(
            "cannot build approximate township polygons: no township seat points; map the "
            "township seats (place=town) or give township boundaries"
        )
    for col in (id_column, name_column):
        if col not in seats.columns:
            raise CoverageError(f"seat layer has no column {col!r}: columns {list(seats.columns)}")
    if seats[id_column].duplicated().any():
        dup = seats.loc[seats[id_column].duplicated(), id_column].tolist()
        raise CoverageError(f"township seat ids repeat: {dup}")
    pts = seats.to_crs("EPSG:4326") if seats.crs is not None else seats.set_crs("EPSG:4326")
    crs = metric_crs(district)
    outline = gpd.GeoSeries([district], crs="EPSG:4326").to_crs(crs).iloc[0]
    xy = pts.to_crs(crs).geometry
    coords = np.column_stack([xy.x.to_numpy(), xy.y.to_numpy()])
    _, first = np.unique(np.round(coords, 3), axis=0, return_index=True)
    if len(first) < len(coords):
        raise CoverageError(
            "two township seats share a position: "
            + ", ".join(str(v) for v in pts[id_column].drop(pts.index[first]))
        )
    if len(coords) == 1:
        cells = [outline]
    else:
        frame = outline.envelope.buffer(outline.length + 1.0)
        regions = shapely.voronoi_polygons(shapely.MultiPoint(coords), extend_to=frame)
        polys = list(regions.geoms)
        owner = [int(np.argmax(shapely.contains_xy(p, coords[:, 0], coords[:, 1])))
                 if shapely.contains_xy(p, coords[:, 0], coords[:, 1]).any() else -1
                 for p in polys]
        cells = [shapely.Polygon()] * len(coords)
        for p, k in zip(polys, owner, strict=True):
            if k >= 0:
                cells[k] = p.intersection(outline)
    keep = [i for i, c in enumerate(cells) if not c.is_empty and c.area > 0]
    geoms = gpd.GeoSeries([_as_multi(cells[i]) for i in keep], crs=crs).to_crs("EPSG:4326")
    out = gpd.GeoDataFrame(
        {
            "unit_id": [str(v) for v in pts[id_column].iloc[keep]],
            "name": [str(v) for v in pts[name_column].iloc[keep]],
            "level": level,
            "parent_id": parent_id,
            "population": np.nan,
            "urban_rural": None,
            "approximate": True,
            "method": "voronoi",
        },
        geometry=list(geoms),
        crs="EPSG:4326",
    )
    return out
