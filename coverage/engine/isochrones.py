"""Isochrone polygons for display, built from the reached road edges.

The area reached within T minutes is the union of the reached edge geometry (whole edges, and
the reached part of partly reached edges) buffered by a few tens of metres, never a convex
hull of nodes, so it does not cover unreachable land across a river or a valley. Areas are
nested by construction (each larger area includes every smaller one). Coverage statistics are
computed on population places with :mod:`covplan.engine.routing`, never by intersecting these.
"""

from __future__ import annotations

from collections.abc import Sequence

import geopandas as gpd
import numpy as np
import shapely
from covplan.engine.attach import Attachment
from covplan.engine.network import RoadNetwork
from covplan.engine.routing import _as_attachment, _check, _ends, _source_offsets, nearest
from covplan.errors import CoverageError
from shapely.ops import substring

__all__ = ["isochrones", "reached_lines"]


def _parts(geoms: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> list[shapely.Geometry]:
    """Return the pieces ``[lo, hi]`` (fractions) of lines; whole lines are passed through."""
    out: list[shapely.Geometry] = []
    whole = (lo <= 0) & (hi >= 1)
    out.extend(geoms[whole].tolist())
    for g, a, b in zip(geoms[~whole], lo[~whole], hi[~whole], strict=True):
        if b > a:
            out.append(substring(g, float(a), float(b), normalized=True))
    return out


def reached_lines(
    network: RoadNetwork,
    sources: Attachment | np.ndarray,
    minutes: float,
    *,
    direction: str | None = None,
    turnout_minutes: float | np.ndarray | None = None,
) -> np.ndarray:
    """Return the road geometry (metric CRS) reached within ``minutes`` of the nearest source.

    Includes partly reached edges (cut where the time runs out) and the reached part of each
    source's own segment (the straight-line leg to the road is not drawn).
    """
    direction = _check(network, "time", direction)
    src = _as_attachment(network, sources)
    res = nearest(network, src, metric="time", direction=direction, turnout_minutes=turnout_minutes)
    d = res.node_value * 60.0
    limit = float(minutes) * 60.0
    t = np.maximum(network.time_s, 1e-9)
    geoms = network.geometry_xy
    if direction == "from_facility":  # reached from u onwards
        reach = d[network.u] < limit
        lo = np.zeros(reach.sum())
        hi = np.minimum(1.0, (limit - d[network.u][reach]) / t[reach])
    else:  # reaches the facility through v
        reach = d[network.v] < limit
        hi = np.ones(reach.sum())
        lo = np.maximum(0.0, 1.0 - (limit - d[network.v][reach]) / t[reach])
    lines = _parts(geoms[reach], lo, hi)

    # the sources' own segments and legs
    e = _ends(network, src, "time")
    offsets = _source_offsets(network, src, "time", turnout_minutes)
    rem = limit - e["leg"] - offsets
    ok = src.reachable & (rem > 0)
    seg_geoms = network.seg_geometry_xy
    f = src.fraction
    # fwd edge runs f -> 1 when leaving; arriving uses the same geometry in the other sense
    w_away_end = e["wf"] if direction == "from_facility" else e["wr"]
    w_away_start = e["wr"] if direction == "from_facility" else e["wf"]
    with np.errstate(divide="ignore", invalid="ignore"):
        hi_s = np.minimum(1.0, f + rem / w_away_end)
        lo_s = np.maximum(0.0, f - rem / w_away_start)
    idx = np.flatnonzero(ok)
    segs = seg_geoms[np.where(ok, src.segment, 0)]
    lines.extend(_parts(segs[idx], f[idx], np.nan_to_num(hi_s[idx], nan=0.0)))
    lines.extend(_parts(segs[idx], np.nan_to_num(lo_s[idx], nan=1.0), f[idx]))
    return np.asarray([g for g in lines if g is not None and not g.is_empty], dtype=object)


def isochrones(
    network: RoadNetwork,
    sources: Attachment | np.ndarray,
    *,
    minutes: Sequence[float] = (15.0, 30.0),
    direction: str | None = None,
    buffer_m: float = 60.0,
    turnout_minutes: float | np.ndarray | None = None,
) -> gpd.GeoDataFrame:
    """Isochrone polygons (nearest-facility travel time) for display.

    Parameters
    ----------
    network
        The road network.
    sources
        Facilities (Attachment or node indices).
    minutes
        Travel-time thresholds; one polygon each.
    direction
        ``to_facility`` or ``from_facility``; default the mode's.
    buffer_m
        Half-width of the band drawn around reached roads, metres.
    turnout_minutes
        As in :func:`covplan.engine.routing.nearest`.

    Returns
    -------
    geopandas.GeoDataFrame
        Columns ``minutes``, ``area_km2``, geometry in EPSG:4326, ascending ``minutes``; each
        polygon contains every smaller one.
    """
    if not minutes:
        raise CoverageError("give at least one isochrone threshold in minutes")
    if not buffer_m > 0:
        raise CoverageError(f"buffer_m must be positive, got {buffer_m}")
    levels = sorted(float(m) for m in minutes)
    if levels[0] <= 0:
        raise CoverageError(f"isochrone minutes must be positive, got {levels[0]}")
    polys = []
    previous = shapely.Polygon()
    for level in levels:
        lines = reached_lines(
            network, sources, level, direction=direction, turnout_minutes=turnout_minutes
        )
        if lines.size:  # simplifying by a tenth of the band width halves the union time
            bands = shapely.buffer(shapely.simplify(lines, buffer_m / 10.0), buffer_m)
            area = shapely.union_all(bands)
        else:
            area = previous
        area = shapely.union(area, previous)  # nesting holds even with rounding
        polys.append(area)
        previous = area
    gdf = gpd.GeoDataFrame(
        {"minutes": levels, "area_km2": [p.area / 1e6 for p in polys]},
        geometry=polys,
        crs=network.crs,
    )
    return gdf.to_crs("EPSG:4326")
