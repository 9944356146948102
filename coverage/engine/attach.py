"""Getting on and off the network: attach points to the nearest road edge.

Every facility or population place attaches to the nearest road *segment* (a way piece between
junctions) in the network's metric CRS, at a position given as a fraction along the segment,
not just to the nearest node. The straight-line leg between the point and the road is
travelled at ``leg_speed_kmh`` (the mode's ``access_speed_kmh`` by default) and counted. A
point farther than ``max_snap_m`` from every road is reported unreachable with its distance.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from covplan.engine.network import RoadNetwork
from covplan.errors import CoverageError, InputError, Problem
from shapely.strtree import STRtree

__all__ = ["Attachment", "attach", "attach_nodes", "segment_tree"]


@dataclass(frozen=True)
class Attachment:
    """Where each point joins the network.

    Attributes
    ----------
    ids
        The index labels of the attached layer (or node positions for :func:`attach_nodes`).
    segment
        Segment index (see :class:`~covplan.engine.network.RoadNetwork`), -1 when unreachable.
    fraction
        Position along the segment in the way's direction, 0 at ``seg_start``, 1 at ``seg_end``.
    snap_m
        Straight-line distance from the point to the road, metres (also for unreachable points).
    leg_s
        Time of that straight-line leg, seconds.
    reachable
        False where ``snap_m > max_snap_m``.
    max_snap_m
        The threshold used.
    """

    ids: np.ndarray
    segment: np.ndarray
    fraction: np.ndarray
    snap_m: np.ndarray
    leg_s: np.ndarray
    reachable: np.ndarray
    max_snap_m: float

    def __len__(self) -> int:
        return int(self.segment.shape[0])

    def subset(self, mask: np.ndarray) -> Attachment:
        """Return the attachment of the points where ``mask`` is True (a boolean array)."""
        mask = np.asarray(mask, dtype=bool)
        return replace(
            self,
            ids=self.ids[mask],
            segment=self.segment[mask],
            fraction=self.fraction[mask],
            snap_m=self.snap_m[mask],
            leg_s=self.leg_s[mask],
            reachable=self.reachable[mask],
        )

    def edge(self, network: RoadNetwork) -> np.ndarray:
        """Directed edge index of each point's segment (its forward edge, else backward; -1)."""
        seg = np.where(self.reachable, self.segment, 0)
        e = np.where(network.seg_fwd[seg] >= 0, network.seg_fwd[seg], network.seg_rev[seg])
        return np.where(self.reachable, e, -1)

    def unreachable(self) -> pd.DataFrame:
        """Return the points farther than ``max_snap_m`` from any road, with their distance."""
        mask = ~self.reachable
        return pd.DataFrame(
            {"id": self.ids[mask], "distance_m": self.snap_m[mask]},
        ).reset_index(drop=True)


def segment_tree(network: RoadNetwork) -> STRtree:
    """Return (and cache on the network) the STRtree of segment geometries in metric CRS."""
    tree = network.__dict__.get("_segment_tree")
    if tree is None:
        tree = STRtree(network.seg_geometry_xy)
        network.__dict__["_segment_tree"] = tree
    return tree


def _points_xy(network: RoadNetwork, gdf: gpd.GeoDataFrame | gpd.GeoSeries) -> np.ndarray:
    geoms = gdf.geometry if isinstance(gdf, gpd.GeoDataFrame) else gdf
    if geoms.crs is not None and not geoms.crs.equals(network.crs):
        geoms = geoms.to_crs(network.crs)
    elif geoms.crs is None:  # the layer contract: lon/lat
        geoms = gpd.GeoSeries(geoms.values, index=geoms.index, crs="EPSG:4326").to_crs(network.crs)
    values = np.asarray(geoms.values, dtype=object)
    bad = shapely.is_missing(values) | shapely.is_empty(values)
    if bad.any():
        labels = list(geoms.index[bad][:10])
        raise InputError(
            [Problem(f"row {lab}", "has no geometry", "give a point or polygon") for lab in labels],
            source="points to attach",
        )
    is_point = shapely.get_type_id(values) == 0
    return np.where(is_point, values, shapely.centroid(values))


def attach(
    network: RoadNetwork,
    gdf: gpd.GeoDataFrame | gpd.GeoSeries,
    *,
    max_snap_m: float = 1000.0,
    leg_speed_kmh: float | None = None,
) -> Attachment:
    """Attach points (polygons: their centroid) to the nearest road segment.

    Parameters
    ----------
    network
        The road network.
    gdf
        Layer of points or polygons (EPSG:4326, or any CRS it carries).
    max_snap_m
        Points farther than this from every road are unreachable (reported with distance).
    leg_speed_kmh
        Speed of the straight-line leg; default the mode's ``access_speed_kmh``.

    Returns
    -------
    Attachment
        One entry per row, in the layer's order.

    Raises
    ------
    CoverageError
        If ``max_snap_m`` or ``leg_speed_kmh`` is not positive.
    InputError
        If rows have no geometry.
    """
    if not max_snap_m > 0:
        raise CoverageError(f"max_snap_m must be positive, got {max_snap_m}")
    speed = network.mode.access_speed_kmh if leg_speed_kmh is None else float(leg_speed_kmh)
    if not speed > 0:
        raise CoverageError(f"leg_speed_kmh must be positive, got {leg_speed_kmh}")
    pts = _points_xy(network, gdf)
    n = pts.shape[0]
    segment = np.full(n, -1, dtype=np.int64)
    fraction = np.zeros(n)
    snap = np.full(n, np.nan)
    if n:
        tree = segment_tree(network)
        (pi, si), dist = tree.query_nearest(pts, return_distance=True, all_matches=False)
        segment[pi] = si
        snap[pi] = dist
        fraction[pi] = shapely.line_locate_point(
            network.seg_geometry_xy[si], pts[pi], normalized=True
        )
    reachable = (segment >= 0) & (snap <= max_snap_m)
    segment = np.where(reachable, segment, -1)
    fraction = np.clip(np.nan_to_num(fraction), 0.0, 1.0)
    leg_s = np.nan_to_num(snap) / (speed / 3.6)
    ids = np.asarray(gdf.index)
    return Attachment(ids, segment, fraction, snap, leg_s, reachable, float(max_snap_m))


def attach_nodes(network: RoadNetwork, nodes: np.ndarray) -> Attachment:
    """Attach points that sit exactly on network nodes (no leg), given as node indices."""
    nodes = np.asarray(nodes, dtype=np.int64).ravel()
    if nodes.size and (nodes.min() < 0 or nodes.max() >= network.n_nodes):
        raise CoverageError(f"node indices must lie in 0..{network.n_nodes - 1}")
    n_seg = network.seg_start.shape[0]
    first_start = np.full(network.n_nodes, -1, dtype=np.int64)
    first_start[network.seg_start[::-1]] = np.arange(n_seg)[::-1]
    first_end = np.full(network.n_nodes, -1, dtype=np.int64)
    first_end[network.seg_end[::-1]] = np.arange(n_seg)[::-1]
    use_start = first_start[nodes] >= 0
    segment = np.where(use_start, first_start[nodes], first_end[nodes])
    fraction = np.where(use_start, 0.0, 1.0)
    zeros = np.zeros(nodes.size)
    return Attachment(
        nodes.copy(), segment, fraction, zeros, zeros.copy(), np.ones(nodes.size, bool), 0.0
    )
