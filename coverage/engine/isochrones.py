"""Isochrone polygons for display, built from the reached road edges.

The area reached within T minutes is the union of the reached road geometry (whole segments,
and the reached part of partly reached ones) buffered by a few tens of metres, never a convex
hull of nodes, so it does not cover unreachable land across a river or a valley. Coverage
statistics are computed on population places with :mod:`covplan.engine.routing`, never by
intersecting these.

How it is built (fast enough to redo on every audit, and cached):

- one nearest-source search serves every level (the node times do not depend on the limit);
- each road segment is drawn once, not once per direction: the parts reached through its two
  directed edges are merged in the segment's own fractions;
- levels are built incrementally: the smallest area first, then for each larger limit only the
  *ring* of road newly reached between the two limits is buffered and unioned onto the previous
  area, so areas are nested by construction and no road is buffered twice;
- everything is vectorised (shapely 2 array functions; substrings of lines are cut with numpy);
- results are kept in memory and on disk (``isochrones`` in :func:`covplan.settings.cache_dir`),
  keyed on a digest of the network arrays, the mode, the sources, the limits and the settings.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final

import numpy as np
import shapely
from covplan.engine.attach import Attachment
from covplan.engine.network import RoadNetwork
from covplan.engine.routing import _as_attachment, _check, _ends, _source_offsets, nearest
from covplan.errors import CoverageError

if TYPE_CHECKING:
    import geopandas as gpd

__all__ = ["isochrones", "reached_lines", "ring_pieces"]

#: Bumped whenever the polygons this module draws change (part of the cache key).
ALGORITHM: Final = "incremental-segments-1"
#: Cache file suffix (in ``isochrones`` of the cache folder).
SUFFIX: Final = ".coviso"
_MEMORY_ENTRIES: Final = 16


class _Default:
    """Marker of ``cache_dir``'s default: the settings' cache folder."""

    def __repr__(self) -> str:
        return "SETTINGS_CACHE_DIR"


#: ``isochrones(cache_dir=...)``'s default: ``isochrones`` in :func:`covplan.settings.cache_dir`.
SETTINGS_CACHE_DIR: Final = _Default()

_memory: OrderedDict[str, tuple[list[float], list[shapely.Geometry], list[float]]] = OrderedDict()


# ---------------------------------------------------------------------------------------------
# vectorised substrings
# ---------------------------------------------------------------------------------------------
def _substrings(geoms: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Return the pieces ``[lo, hi]`` (fractions of length) of lines, all at once.

    Whole lines (``lo <= 0`` and ``hi >= 1``) are passed through; the others are cut with
    numpy (the same answer as :func:`shapely.ops.substring` with ``normalized=True``).
    """
    lo = np.clip(np.asarray(lo, dtype=float), 0.0, 1.0)
    hi = np.clip(np.asarray(hi, dtype=float), 0.0, 1.0)
    out = np.array(geoms, dtype=object, copy=True)
    part = ~((lo <= 0.0) & (hi >= 1.0))
    if not part.any():
        return out
    g = geoms[part]
    n = g.shape[0]
    coords, idx = shapely.get_coordinates(g, return_index=True)
    step = np.hypot(*np.diff(coords, axis=0).T) if len(coords) > 1 else np.zeros(0)
    step = np.where(idx[1:] == idx[:-1], step, 0.0)
    cum = np.concatenate([[0.0], np.cumsum(step)])
    first = np.searchsorted(idx, np.arange(n))
    along = cum - cum[first][idx]  # distance of each vertex from its line's start
    length = shapely.length(g)
    a, b = lo[part] * length, hi[part] * length
    keep = (along > a[idx]) & (along < b[idx])
    start = shapely.get_coordinates(shapely.line_interpolate_point(g, a))
    end = shapely.get_coordinates(shapely.line_interpolate_point(g, b))
    ids = np.concatenate([np.arange(n), idx[keep], np.arange(n)])
    rank = np.concatenate([np.zeros(n), np.ones(int(keep.sum())), np.full(n, 2.0)])
    order = np.lexsort((np.arange(ids.size), rank, ids))
    xy = np.concatenate([start, coords[keep], end])[order]
    out[part] = shapely.linestrings(xy, indices=ids[order])
    return out


# ---------------------------------------------------------------------------------------------
# what is reached between two limits
# ---------------------------------------------------------------------------------------------
class _Reach:
    """Node times and source offsets of one search, shared by every level."""

    def __init__(
        self,
        network: RoadNetwork,
        sources: Attachment | np.ndarray,
        direction: str | None,
        turnout_minutes: float | np.ndarray | None,
    ) -> None:
        self.network = network
        self.direction = _check(network, "time", direction)
        self.src = _as_attachment(network, sources)
        res = nearest(
            network, self.src, metric="time", direction=self.direction,
            turnout_minutes=turnout_minutes,
        )
        self.d = np.asarray(res.node_value, dtype=float) * 60.0
        self.offsets = _source_offsets(network, self.src, "time", turnout_minutes)
        self.ends = _ends(network, self.src, "time")
        m = network.u.shape[0]
        seg_of = np.full(m, -1, dtype=np.int64)
        forward = np.zeros(m, dtype=bool)
        fwd, rev = network.seg_fwd, network.seg_rev
        seg_of[fwd[fwd >= 0]] = np.flatnonzero(fwd >= 0)
        forward[fwd[fwd >= 0]] = True
        seg_of[rev[rev >= 0]] = np.flatnonzero(rev >= 0)
        self.seg_of, self.forward = seg_of, forward

    def _edge_fraction(self, limit: float) -> np.ndarray:
        """Per directed edge, the reached fraction: from its start (from_facility) or end."""
        net = self.network
        t = np.maximum(net.time_s, 1e-9)
        node = net.u if self.direction == "from_facility" else net.v
        with np.errstate(invalid="ignore"):
            frac = np.clip((limit - self.d[node]) / t, 0.0, 1.0)
        return np.nan_to_num(frac, nan=0.0)

    def ring(self, previous_s: float, limit_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Segment pieces newly reached between two limits (seconds): segment, lo, hi.

        Each segment yields at most two pieces from its directed edges (merged into one where
        they overlap), plus the pieces of the sources' own segments.
        """
        new, old = self._edge_fraction(limit_s), self._edge_fraction(previous_s)
        grew = (new > old) & (self.seg_of >= 0)
        e = np.flatnonzero(grew)
        seg = self.seg_of[e]
        # in the edge's own sense the ring runs [old, new] from its start (from_facility) or
        # [1 - new, 1 - old] towards its end (to_facility); a backward edge flips the sense
        if self.direction == "from_facility":
            lo_e, hi_e = old[e], new[e]
        else:
            lo_e, hi_e = 1.0 - new[e], 1.0 - old[e]
        fwd = self.forward[e]
        lo = np.where(fwd, lo_e, 1.0 - hi_e)
        hi = np.where(fwd, hi_e, 1.0 - lo_e)
        seg, lo, hi = _merge_pairs(seg, lo, hi)

        # the sources' own segments
        src, ends = self.src, self.ends
        rem_new = limit_s - ends["leg"] - self.offsets
        rem_old = np.maximum(previous_s - ends["leg"] - self.offsets, 0.0)
        ok = src.reachable & (rem_new > rem_old)
        away_end = ends["wf"] if self.direction == "from_facility" else ends["wr"]
        away_start = ends["wr"] if self.direction == "from_facility" else ends["wf"]
        f = src.fraction
        with np.errstate(divide="ignore", invalid="ignore"):
            up_new = np.nan_to_num(rem_new / away_end, nan=0.0, posinf=2.0)
            up_old = np.nan_to_num(rem_old / away_end, nan=0.0, posinf=2.0)
            dn_new = np.nan_to_num(rem_new / away_start, nan=0.0, posinf=2.0)
            dn_old = np.nan_to_num(rem_old / away_start, nan=0.0, posinf=2.0)
        idx = np.flatnonzero(ok)
        s_seg = src.segment[idx]
        s_lo = np.concatenate([np.minimum(1.0, f + up_old)[idx], np.maximum(0.0, f - dn_new)[idx]])
        s_hi = np.concatenate([np.minimum(1.0, f + up_new)[idx], np.maximum(0.0, f - dn_old)[idx]])
        seg = np.concatenate([seg, s_seg, s_seg])
        lo = np.concatenate([lo, s_lo])
        hi = np.concatenate([hi, s_hi])
        keep = hi > lo
        return seg[keep], lo[keep], hi[keep]


def _merge_pairs(
    seg: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge the (at most two) pieces of each segment where they overlap or touch."""
    if seg.size == 0:
        return seg, lo, hi
    order = np.lexsort((lo, seg))
    seg, lo, hi = seg[order], lo[order], hi[order]
    second = np.zeros(seg.size, dtype=bool)
    second[1:] = seg[1:] == seg[:-1]
    overlap = second.copy()
    overlap[1:] &= lo[1:] <= hi[:-1]
    # a second piece overlapping the first: extend the first, drop the second
    j = np.flatnonzero(overlap)
    hi[j - 1] = np.maximum(hi[j - 1], hi[j])
    keep = ~overlap
    return seg[keep], lo[keep], hi[keep]


def ring_pieces(
    network: RoadNetwork,
    sources: Attachment | np.ndarray,
    previous_minutes: float,
    minutes: float,
    *,
    direction: str | None = None,
    turnout_minutes: float | np.ndarray | None = None,
) -> np.ndarray:
    """Return the road geometry (metric CRS) newly reached between two limits.

    Parameters
    ----------
    network
        The road network.
    sources
        Facilities (Attachment or node indices).
    previous_minutes, minutes
        The ring runs from ``previous_minutes`` (0 for the whole area) to ``minutes``.
    direction, turnout_minutes
        As in :func:`isochrones`.

    Returns
    -------
    numpy.ndarray
        LineStrings: the pieces of road segments reached within ``minutes`` but not within
        ``previous_minutes`` (each segment piece once, whatever direction reached it).
    """
    reach = _Reach(network, sources, direction, turnout_minutes)
    seg, lo, hi = reach.ring(float(previous_minutes) * 60.0, float(minutes) * 60.0)
    return _substrings(network.seg_geometry_xy[seg], lo, hi)


def reached_lines(
    network: RoadNetwork,
    sources: Attachment | np.ndarray,
    minutes: float,
    *,
    direction: str | None = None,
    turnout_minutes: float | np.ndarray | None = None,
) -> np.ndarray:
    """Return the road geometry (metric CRS) reached within ``minutes`` of the nearest source.

    Includes partly reached segments (cut where the time runs out) and the reached part of
    each source's own segment (the straight-line leg to the road is not drawn).
    """
    return ring_pieces(
        network, sources, 0.0, minutes, direction=direction, turnout_minutes=turnout_minutes
    )


# ---------------------------------------------------------------------------------------------
# the cache
# ---------------------------------------------------------------------------------------------
def _digest(parts: Sequence[object]) -> str:
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            arr = np.ascontiguousarray(part)
            h.update(f"{arr.dtype.str}{arr.shape}".encode())
            h.update(arr.tobytes())
        else:
            h.update(json.dumps(part, sort_keys=True, default=str).encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()[:32]


def network_digest(network: RoadNetwork) -> str:
    """Return a digest of everything of a network that an isochrone depends on (32 hex).

    The projection enters through the nodes' metric coordinates (to the millimetre), not the
    CRS's text, which differs between a built network and the same network read from cache.
    """
    return _digest([
        network.mode.name, np.round(np.asarray(network.xy, dtype=float), 3),
        network.u, network.v, network.time_s,
        network.seg_fwd, network.seg_rev, network.seg_start, network.seg_end,
        shapely.get_coordinates(network.seg_geometry),
    ])


def _cache_key(
    network: RoadNetwork,
    src: Attachment,
    levels: list[float],
    direction: str,
    buffer_m: float,
    turnout_minutes: float | np.ndarray | None,
) -> str:
    offsets = _source_offsets(network, src, "time", turnout_minutes)
    return _digest([
        ALGORITHM, network_digest(network), levels, direction, float(buffer_m),
        src.segment, src.fraction, src.leg_s, src.reachable, offsets,
    ])


def _cache_file(cache_dir: str | Path | _Default | None, mode: str, key: str) -> Path | None:
    if cache_dir is None:
        return None
    if isinstance(cache_dir, _Default):
        from covplan import settings

        folder = settings.cache_dir() / "isochrones"
    else:
        folder = Path(cache_dir).expanduser()
    return folder / f"{mode}.{key}{SUFFIX}"


def _read_cached(path: Path | None, key: str) -> tuple[list[shapely.Geometry], list[float]] | None:
    if path is None or not path.is_file():
        return None
    from covplan.engine import cache

    try:
        arrays, _ = cache.read_arrays(path, key=key)
        return list(arrays["geometry"]), [float(a) for a in arrays["area_km2"]]
    except (OSError, KeyError, cache.CacheFileError):
        return None  # a damaged or foreign file: computed again and overwritten


def _write_cached(
    path: Path | None, key: str, levels: list[float], polys: list[shapely.Geometry],
    areas: list[float],
) -> None:
    if path is None:
        return
    from covplan.engine import cache

    try:
        cache.write_arrays(
            path,
            {"minutes": np.asarray(levels), "area_km2": np.asarray(areas),
             "geometry": np.asarray(polys, dtype=object)},
            {"kind": "isochrones", "algorithm": ALGORITHM},
            key=key, geometry=["geometry"],
        )
    except OSError:  # a read-only cache folder costs speed, never the answer
        pass


# ---------------------------------------------------------------------------------------------
# the polygons
# ---------------------------------------------------------------------------------------------
def _band(lines: np.ndarray, buffer_m: float) -> shapely.Geometry:
    """Return the union of the lines buffered by ``buffer_m`` (simplified by a tenth first)."""
    lines = lines[~shapely.is_empty(lines)]
    if lines.size == 0:
        return shapely.Polygon()
    return shapely.union_all(shapely.buffer(shapely.simplify(lines, buffer_m / 10.0), buffer_m))


def isochrones(
    network: RoadNetwork,
    sources: Attachment | np.ndarray,
    *,
    minutes: Sequence[float] = (15.0, 30.0),
    direction: str | None = None,
    buffer_m: float = 60.0,
    turnout_minutes: float | np.ndarray | None = None,
    cache_dir: str | Path | _Default | None = SETTINGS_CACHE_DIR,
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
    cache_dir
        Folder of the cached polygons; default ``isochrones`` in
        :func:`covplan.settings.cache_dir` (``COVPLAN_CACHE_DIR``); None keeps them in memory
        only. A damaged cache file is computed again and overwritten.

    Returns
    -------
    geopandas.GeoDataFrame
        Columns ``minutes``, ``area_km2``, geometry in EPSG:4326, ascending ``minutes``; each
        polygon contains every smaller one.

    Raises
    ------
    CoverageError
        For no threshold, a threshold <= 0 or a band width <= 0.
    """
    import geopandas as gpd

    if not minutes:
        raise CoverageError("give at least one isochrone threshold in minutes, e.g. (15, 30)")
    if not buffer_m > 0:
        raise CoverageError(f"buffer_m must be a positive number of metres, got {buffer_m}")
    levels = sorted(float(m) for m in minutes)
    if levels[0] <= 0:
        raise CoverageError(f"isochrone minutes must be positive, got {levels[0]}")
    direction = _check(network, "time", direction)
    src = _as_attachment(network, sources)
    key = _cache_key(network, src, levels, direction, buffer_m, turnout_minutes)
    path = _cache_file(cache_dir, network.mode.name, key)
    hit = _memory.get(key)
    found = (hit[1], hit[2]) if hit is not None else _read_cached(path, key)
    if found is None:
        polys, areas = _compute(network, src, levels, direction, buffer_m, turnout_minutes)
        _write_cached(path, key, levels, polys, areas)
    else:
        polys, areas = found
    _memory[key] = (levels, polys, areas)
    _memory.move_to_end(key)
    while len(_memory) > _MEMORY_ENTRIES:
        _memory.popitem(last=False)
    return gpd.GeoDataFrame(
        {"minutes": levels, "area_km2": areas}, geometry=list(polys), crs="EPSG:4326"
    )


def _compute(
    network: RoadNetwork,
    src: Attachment,
    levels: list[float],
    direction: str,
    buffer_m: float,
    turnout_minutes: float | np.ndarray | None,
) -> tuple[list[shapely.Geometry], list[float]]:
    """Build the polygons level by level; return them in EPSG:4326 with their areas (km²)."""
    from pyproj import Transformer

    reach = _Reach(network, src, direction, turnout_minutes)
    geoms = network.seg_geometry_xy
    metric: list[shapely.Geometry] = []
    previous: shapely.Geometry = shapely.Polygon()
    previous_s = 0.0
    for level in levels:
        seg, lo, hi = reach.ring(previous_s, level * 60.0)
        ring = _band(_substrings(geoms[seg], lo, hi), buffer_m)
        area = shapely.union(previous, ring) if not previous.is_empty else ring
        metric.append(area)
        previous, previous_s = area, level * 60.0
    to_lonlat = Transformer.from_crs(network.crs, "EPSG:4326", always_xy=True)
    polys = [
        shapely.transform(p, lambda xy: np.column_stack(to_lonlat.transform(xy[:, 0], xy[:, 1])))
        for p in metric
    ]
    return polys, [float(p.area) / 1e6 for p in metric]
