"""Candidate sites for new facilities: user points, a road-node grid, village/township seats.

Every candidate is snapped to the nearest road node so that the engine can route from it. Road
nodes come in as plain coordinate arrays in a metric CRS (``RoadNetwork.xy`` of the engine), so
this module does not depend on the engine's classes. Exclusions drop candidates outside the study
area and those closer than a given distance to an existing facility.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import shapely
from covplan.errors import CoverageError
from scipy.spatial import cKDTree

__all__ = [
    "Candidates",
    "combine",
    "exclude",
    "grid_candidates",
    "point_candidates",
    "seat_candidates",
    "snap_to_nodes",
]


@dataclass(frozen=True)
class Candidates:
    """Candidate sites, one per road node.

    Attributes
    ----------
    node
        Index into the road-node arrays of the snapped node (the matrix row builder routes from
        it).
    x, y
        Coordinates of that node (metric CRS).
    snap_m
        Distance from the original point to the node, metres.
    source
        ``"user"``, ``"grid"`` or ``"seat"``.
    label
        Name or id of the original point (the grid gives ``"grid_<i>"``).
    excluded
        Counts of candidates dropped so far, by reason.
    """

    node: np.ndarray
    x: np.ndarray
    y: np.ndarray
    snap_m: np.ndarray
    source: np.ndarray
    label: np.ndarray
    excluded: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.node.size)

    def subset(self, keep: npt.NDArray[np.bool_], *, reason: str | None = None) -> Candidates:
        """Keep the candidates where ``keep`` is True, counting the others under ``reason``."""
        excluded = dict(self.excluded)
        dropped = int((~keep).sum())
        if reason is not None and dropped:
            excluded[reason] = excluded.get(reason, 0) + dropped
        return Candidates(self.node[keep], self.x[keep], self.y[keep], self.snap_m[keep],
                          self.source[keep], self.label[keep], excluded)

    def to_geodataframe(self, crs: str | int) -> gpd.GeoDataFrame:
        """Return the candidates as points in the metric ``crs`` they were built in."""
        return gpd.GeoDataFrame(
            {"node": self.node, "snap_m": self.snap_m, "source": self.source,
             "label": self.label},
            geometry=gpd.points_from_xy(self.x, self.y), crs=crs,
        )


def snap_to_nodes(
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    *,
    node_x: npt.ArrayLike,
    node_y: npt.ArrayLike,
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest road node of each point (ties: the lower node index).

    Parameters
    ----------
    x, y
        Point coordinates, metric CRS.
    node_x, node_y
        Road-node coordinates in the same CRS.

    Returns
    -------
    index, distance
        Node index and distance in metres per point.
    """
    nx_ = np.asarray(node_x, dtype=float)
    ny_ = np.asarray(node_y, dtype=float)
    if nx_.size == 0:
        raise CoverageError("no road nodes to snap candidates to: build the network first")
    tree = cKDTree(np.column_stack([nx_, ny_]))
    dist, idx = tree.query(np.column_stack([np.asarray(x, float), np.asarray(y, float)]))
    return np.asarray(idx, dtype=np.int64), np.asarray(dist, dtype=float)


def _make(
    x: np.ndarray, y: np.ndarray, labels: Sequence[str] | np.ndarray, source: str,
    node_x: np.ndarray, node_y: np.ndarray, max_snap_m: float | None,
) -> Candidates:
    idx, dist = snap_to_nodes(x, y, node_x=node_x, node_y=node_y)
    nx_ = np.asarray(node_x, dtype=float)
    ny_ = np.asarray(node_y, dtype=float)
    cand = Candidates(
        node=idx, x=nx_[idx], y=ny_[idx], snap_m=dist,
        source=np.full(idx.size, source, dtype=object),
        label=np.asarray(labels, dtype=object),
    )
    if max_snap_m is not None:
        cand = cand.subset(dist <= max_snap_m, reason=f"farther than {max_snap_m:g} m from a road")
    return _dedupe(cand)


def _dedupe(cand: Candidates) -> Candidates:
    """Keep the first candidate per road node."""
    _, first = np.unique(cand.node, return_index=True)
    keep = np.zeros(len(cand), dtype=bool)
    keep[first] = True
    return cand.subset(keep, reason="same road node as an earlier candidate")


def point_candidates(
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    *,
    node_x: npt.ArrayLike,
    node_y: npt.ArrayLike,
    labels: Sequence[str] | None = None,
    source: str = "user",
    max_snap_m: float | None = None,
) -> Candidates:
    """Candidates from given points (a planner's list, or seats), snapped to road nodes.

    Parameters
    ----------
    x, y
        Point coordinates, metric CRS.
    node_x, node_y
        Road-node coordinates, same CRS.
    labels
        Names of the points (default their position).
    source
        Recorded in ``Candidates.source``.
    max_snap_m
        Drop points farther than this from any road node.

    Returns
    -------
    Candidates
    """
    xa = np.asarray(x, dtype=float).ravel()
    ya = np.asarray(y, dtype=float).ravel()
    if xa.shape != ya.shape:
        raise CoverageError(f"candidate x and y differ in length ({xa.size} vs {ya.size})")
    lab = np.arange(xa.size).astype(str) if labels is None else np.asarray(labels, dtype=object)
    if lab.size != xa.size:
        raise CoverageError(f"{lab.size} candidate labels for {xa.size} points")
    return _make(xa, ya, lab, source, np.asarray(node_x, float), np.asarray(node_y, float),
                 max_snap_m)


def grid_candidates(
    area: shapely.Geometry,
    *,
    spacing_m: float,
    node_x: npt.ArrayLike,
    node_y: npt.ArrayLike,
    max_snap_m: float | None = None,
) -> Candidates:
    """Road nodes nearest to a square grid of ``spacing_m`` inside the study area.

    Parameters
    ----------
    area
        Study-area polygon in the metric CRS of the nodes.
    spacing_m
        Grid spacing in metres.
    node_x, node_y
        Road-node coordinates.
    max_snap_m
        Drop grid points farther than this from a road (default ``spacing_m``: a grid point
        with no road within one spacing is in empty country).

    Returns
    -------
    Candidates
        One per distinct snapped node whose node also lies inside ``area``.
    """
    if spacing_m <= 0:
        raise CoverageError(f"grid spacing must be > 0 m, got {spacing_m}")
    if area is None or area.is_empty:
        raise CoverageError("grid candidates need a non-empty study-area polygon")
    minx, miny, maxx, maxy = area.bounds
    xs = np.arange(minx + spacing_m / 2, maxx, spacing_m)
    ys = np.arange(miny + spacing_m / 2, maxy, spacing_m)
    if xs.size * ys.size > 5_000_000:
        raise CoverageError(
            f"grid of {xs.size * ys.size:,} points at {spacing_m:g} m is too fine for this area; "
            "increase spacing_m (the area bounds are in metres?)"
        )
    gx, gy = (a.ravel() for a in np.meshgrid(xs, ys))
    inside = shapely.contains_xy(area, gx, gy)
    gx, gy = gx[inside], gy[inside]
    labels = np.array([f"grid_{i}" for i in range(gx.size)], dtype=object)
    cand = _make(gx, gy, labels, "grid", np.asarray(node_x, float), np.asarray(node_y, float),
                 spacing_m if max_snap_m is None else max_snap_m)
    return cand.subset(shapely.contains_xy(area, cand.x, cand.y), reason="outside the boundary")


def seat_candidates(
    seats: gpd.GeoDataFrame,
    *,
    crs: str | int,
    node_x: npt.ArrayLike,
    node_y: npt.ArrayLike,
    name_column: str = "name",
    max_snap_m: float | None = None,
) -> Candidates:
    """Village / township seats (points, any CRS) as candidates, snapped to road nodes.

    Parameters
    ----------
    seats
        Points of the seats, for example OSM ``place=village|town`` nodes or the village
        committees' locations.
    crs
        The metric CRS of the road nodes.
    node_x, node_y
        Road-node coordinates.
    name_column
        Column of seat names used as labels.
    max_snap_m
        Drop seats farther than this from a road.

    Returns
    -------
    Candidates
    """
    if seats.crs is None:
        raise CoverageError("seat layer has no CRS: set it (EPSG:4326 for lon/lat)")
    if not seats.geom_type.isin(["Point"]).all():
        raise CoverageError("seat layer must hold Point geometries (one per seat)")
    pts = seats.to_crs(crs)
    labels = (pts[name_column].astype(str).to_numpy(dtype=object) if name_column in pts
              else np.arange(len(pts)).astype(str))
    return point_candidates(pts.geometry.x.to_numpy(), pts.geometry.y.to_numpy(), node_x=node_x,
                            node_y=node_y, labels=labels, source="seat", max_snap_m=max_snap_m)


def exclude(
    candidates: Candidates,
    *,
    area: shapely.Geometry | None = None,
    facilities_x: npt.ArrayLike | None = None,
    facilities_y: npt.ArrayLike | None = None,
    min_distance_m: float = 0.0,
) -> Candidates:
    """Drop candidates outside ``area`` or closer than ``min_distance_m`` to a facility.

    Parameters
    ----------
    candidates
        The candidates.
    area
        Study-area polygon (metric CRS); None keeps all.
    facilities_x, facilities_y
        Existing facilities (metric CRS).
    min_distance_m
        Straight-line distance under which a candidate counts as too close.

    Returns
    -------
    Candidates
        With the drop counts in ``excluded``.
    """
    out = candidates
    if area is not None:
        out = out.subset(shapely.contains_xy(area, out.x, out.y), reason="outside the boundary")
    if facilities_x is not None and min_distance_m > 0 and len(out):
        fx = np.asarray(facilities_x, dtype=float)
        fy = np.asarray(facilities_y, dtype=float)
        if fx.size:
            dist, _ = cKDTree(np.column_stack([fx, fy])).query(np.column_stack([out.x, out.y]))
            out = out.subset(dist >= min_distance_m,
                             reason=f"closer than {min_distance_m:g} m to an existing facility")
    return out


def combine(*parts: Candidates) -> Candidates:
    """Concatenate candidate sets, keeping the first candidate per road node."""
    if not parts:
        raise CoverageError("combine() needs at least one candidate set")
    excluded: dict[str, int] = {}
    for part in parts:
        for k, v in part.excluded.items():
            excluded[k] = excluded.get(k, 0) + v
    cand = Candidates(
        node=np.concatenate([p.node for p in parts]),
        x=np.concatenate([p.x for p in parts]),
        y=np.concatenate([p.y for p in parts]),
        snap_m=np.concatenate([p.snap_m for p in parts]),
        source=np.concatenate([p.source for p in parts]),
        label=np.concatenate([p.label for p in parts]),
        excluded=excluded,
    )
    return _dedupe(cand)
