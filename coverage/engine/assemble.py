"""Assembling a :class:`~covplan.engine.road_network.RoadNetwork` from way pieces.

:func:`from_ways` turns the ways of an OSM file into pieces, directed edges and nodes (lengths,
travel times, Tobler slopes, geometries); :func:`finish` (also used for osmnx graphs) clips them
to the study area plus a buffer, keeps the largest strongly connected component, reindexes the
nodes and pairs each piece's forward and backward edge into a segment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import scipy.sparse as sp
import shapely
from covplan.engine.elevation import dem_sampler
from covplan.engine.modes import Mode, tobler_factor
from covplan.engine.osm import Ways
from covplan.engine.road_network import BuildReport, RoadNetwork
from covplan.engine.simplify import way_pieces
from covplan.errors import CoverageError
from covplan.geo import haversine_m, metric_crs, utm_crs
from pyproj import Transformer
from scipy.sparse.csgraph import connected_components
from shapely.geometry.base import BaseGeometry

__all__ = ["finish", "from_ways", "study_polygon"]


def study_polygon(study_area: Any) -> BaseGeometry | None:
    """Return the study area as one lon/lat geometry (None stays None).

    Parameters
    ----------
    study_area
        A shapely geometry in lon/lat, a GeoDataFrame/GeoSeries (reprojected to EPSG:4326 when
        it has a CRS; its shapes are unioned), or None.

    Raises
    ------
    CoverageError
        If it is of another type or empty.
    """
    if study_area is None:
        return None
    if isinstance(study_area, BaseGeometry):
        geom = study_area
    elif isinstance(study_area, gpd.GeoDataFrame | gpd.GeoSeries):
        layer = study_area if study_area.crs is None else study_area.to_crs("EPSG:4326")
        geom = layer.union_all()
    else:
        raise CoverageError(
            f"study_area must be a shapely geometry or GeoDataFrame in lon/lat, got "
            f"{type(study_area).__name__}"
        )
    if geom.is_empty:
        raise CoverageError("the study area is empty; give the district boundary polygon")
    return geom


def from_ways(
    ways: Ways,
    mode: Mode,
    *,
    source: str,
    study_area: BaseGeometry | None,
    buffer_m: float,
    dem: str | Path | None,
    simplify: bool = True,
) -> RoadNetwork:
    """Build a :class:`RoadNetwork` from the ways read from an OSM file.

    Ways are split into pieces (:func:`covplan.engine.simplify.way_pieces`); each piece gets
    its length, travel times each way (Tobler's hiking function on the DEM's slope for a
    ``tobler`` mode), its geometry and one directed edge per allowed direction; then
    :func:`finish` clips and filters.

    Parameters
    ----------
    ways
        The ways of the mode (:func:`covplan.engine.osm.read_osm`).
    mode
        The travel mode.
    source
        Label used in the build report.
    study_area, buffer_m
        Keep nodes inside this lon/lat geometry grown by ``buffer_m`` metres (None keeps all).
    dem
        Elevation model for node elevations (and slopes), or None.
    simplify
        One edge per way piece between junctions (True) or per pair of consecutive nodes.

    Raises
    ------
    CoverageError
        If no road of the mode remains.
    """
    refs = np.asarray(ways.refs, dtype=np.int64)
    lon = np.asarray(ways.lon, dtype=float)
    lat = np.asarray(ways.lat, dtype=float)
    starts = np.asarray(ways.starts, dtype=np.int64)
    n_ways = starts.shape[0] - 1
    way_of = np.repeat(np.arange(n_ways), np.diff(starts))

    # split at way ends and at nodes used more than once (junctions, loops)
    a, b = way_pieces(refs, starts, way_of, simplify=simplify)
    pw = way_of[a]
    n_pieces = a.shape[0]

    # per consecutive pair: length and times (Tobler slope when a DEM is given)
    same_way = way_of[:-1] == way_of[1:]
    dl = np.where(same_way, haversine_m(lon[:-1], lat[:-1], lon[1:], lat[1:]), 0.0)
    speed_ms = np.asarray(ways.speed, dtype=float)[way_of[:-1]] / 3.6
    elevation_refs = None
    if dem is not None:
        elevation_refs = dem_sampler(dem)(lon, lat)
    if dem is not None and mode.slope == "tobler":
        with np.errstate(invalid="ignore", divide="ignore"):
            slope = (elevation_refs[1:] - elevation_refs[:-1]) / dl
        slope = np.where(np.isfinite(slope) & (dl > 1.0), slope, 0.0)
        tf = np.where(same_way, dl / (speed_ms * tobler_factor(slope)), 0.0)
        tr = np.where(same_way, dl / (speed_ms * tobler_factor(-slope)), 0.0)
    else:
        tf = tr = np.where(same_way, dl / speed_ms, 0.0)

    def piece_sum(x: np.ndarray) -> np.ndarray:
        c = np.concatenate([[0.0], np.cumsum(x)])
        return c[b] - c[a]

    p_len, p_tf, p_tr = piece_sum(dl), piece_sum(tf), piece_sum(tr)

    # piece geometries
    npts = b - a + 1
    cstart = np.concatenate([[0], np.cumsum(npts)[:-1]])
    total = int(npts.sum())
    idx = np.arange(total) - np.repeat(cstart, npts) + np.repeat(a, npts)
    p_geom = shapely.linestrings(
        np.column_stack([lon[idx], lat[idx]]), indices=np.repeat(np.arange(n_pieces), npts)
    )

    # nodes
    end_refs = np.concatenate([refs[a], refs[b]])
    node_ids, first = np.unique(end_refs, return_index=True)
    end_pos = np.concatenate([a, b])[first]
    node_lonlat = np.column_stack([lon[end_pos], lat[end_pos]])
    node_elev = elevation_refs[end_pos] if elevation_refs is not None else None
    pu = np.searchsorted(node_ids, refs[a])
    pv = np.searchsorted(node_ids, refs[b])

    # directed edges
    wfwd = np.asarray(ways.fwd, dtype=bool)[pw]
    wrev = np.asarray(ways.rev, dtype=bool)[pw]
    fi, ri = np.flatnonzero(wfwd), np.flatnonzero(wrev)
    piece = np.concatenate([fi, ri])
    fwd_dir = np.concatenate([np.ones(fi.size, bool), np.zeros(ri.size, bool)])
    edges = {
        "piece": piece,
        "fwd": fwd_dir,
        "u": np.concatenate([pu[fi], pv[ri]]),
        "v": np.concatenate([pv[fi], pu[ri]]),
        "length_m": p_len[piece],
        "time_s": np.concatenate([p_tf[fi], p_tr[ri]]),
        "geometry": np.concatenate([p_geom[fi], shapely.reverse(p_geom[ri])]),
    }
    way_arr = pw[piece]
    edges["osmid"] = np.asarray(ways.ids, dtype=np.int64)[way_arr]
    edges["highway"] = np.asarray(ways.highway, dtype=object)[way_arr]
    edges["maxspeed"] = np.asarray(ways.maxspeed, dtype=object)[way_arr]
    edges["oneway"] = ~(wfwd & wrev)[piece]
    report = BuildReport(source=source, mode=mode.name, ways=n_ways)
    return finish(
        mode, node_ids, node_lonlat, node_elev, edges, p_geom, pu, pv,
        study_area=study_area, buffer_m=buffer_m, report=report,
    )  # fmt: skip


def finish(
    mode: Mode,
    node_ids: np.ndarray,
    node_lonlat: np.ndarray,
    node_elev: np.ndarray | None,
    edges: dict[str, np.ndarray],
    p_geom: np.ndarray,
    pu: np.ndarray,
    pv: np.ndarray,
    *,
    study_area: BaseGeometry | None,
    buffer_m: float,
    report: BuildReport,
) -> RoadNetwork:
    """Clip, keep the largest component, reindex and build segments.

    Parameters
    ----------
    mode
        The travel mode (``keep_largest_component``).
    node_ids, node_lonlat, node_elev
        OSM id, ``(n, 2)`` lon/lat and elevation (or None) of the nodes.
    edges
        Directed edge arrays: ``piece`` (index of the way piece), ``fwd`` (travels the piece
        in its direction), ``u``, ``v``, ``length_m``, ``time_s``, ``geometry``, ``osmid``,
        ``highway``, ``maxspeed``, ``oneway``.
    p_geom, pu, pv
        Geometry, start node and end node of each way piece.
    study_area, buffer_m
        Keep nodes inside this lon/lat geometry grown by ``buffer_m`` metres (None keeps all).
    report
        Filled in with what was kept and dropped.

    Raises
    ------
    CoverageError
        If no edge remains.
    """
    n = node_ids.shape[0]
    report.nodes_built, report.edges_built = n, int(edges["u"].shape[0])
    if study_area is not None:
        crs = metric_crs(study_area)
    else:
        lo, hi = node_lonlat.min(axis=0), node_lonlat.max(axis=0)
        crs = utm_crs((lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2)
    tr = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    x, y = tr.transform(node_lonlat[:, 0], node_lonlat[:, 1])
    xy = np.column_stack([x, y])

    keep_node = np.ones(n, dtype=bool)
    if study_area is not None:
        area_xy = shapely.transform(study_area, lambda c: np.column_stack(tr.transform(*c.T)))
        area_xy = shapely.buffer(area_xy, buffer_m) if buffer_m > 0 else area_xy
        shapely.prepare(area_xy)
        keep_node = shapely.contains_xy(area_xy, x, y)
    keep_edge = keep_node[edges["u"]] & keep_node[edges["v"]]
    report.nodes_outside = int((~keep_node).sum())
    report.edges_outside = int((~keep_edge).sum())

    # components among the edges kept so far
    eu, ev = edges["u"][keep_edge], edges["v"][keep_edge]
    adj = sp.csr_matrix((np.ones(eu.shape[0]), (eu, ev)), shape=(n, n))
    ncomp, labels = connected_components(adj, directed=True, connection="strong")
    has_edge = np.zeros(n, dtype=bool)
    has_edge[eu] = True
    has_edge[ev] = True
    report.components = int(np.unique(labels[has_edge]).size)
    if mode.keep_largest_component and has_edge.any():
        sizes = np.bincount(labels[has_edge], minlength=ncomp)
        in_comp = labels == int(np.argmax(sizes))
    else:
        in_comp = np.ones(n, dtype=bool)
    node_keep = keep_node & in_comp & has_edge
    edge_keep = keep_edge & node_keep[edges["u"]] & node_keep[edges["v"]]
    dropped = keep_edge & ~edge_keep
    report.nodes_dropped = int((keep_node & has_edge & ~node_keep).sum())
    report.edges_dropped = int(dropped.sum())
    report.km_dropped = float(edges["length_m"][dropped].sum() / 1000.0)
    if not edge_keep.any():
        raise CoverageError(
            f"no {mode.name} roads left inside the study area plus {buffer_m:.0f} m: check that "
            "the OSM extract covers the study area and that both are in longitude/latitude"
        )

    new_index = np.cumsum(node_keep) - 1
    e = {k: val[edge_keep] for k, val in edges.items()}
    u, v = new_index[e["u"]], new_index[e["v"]]

    # segments: one per way piece, with its forward and backward edge
    pieces, seg_of_edge = np.unique(e["piece"], return_inverse=True)
    n_seg = pieces.shape[0]
    seg_fwd = np.full(n_seg, -1, dtype=np.int64)
    seg_rev = np.full(n_seg, -1, dtype=np.int64)
    eidx = np.arange(u.shape[0])
    seg_fwd[seg_of_edge[e["fwd"]]] = eidx[e["fwd"]]
    seg_rev[seg_of_edge[~e["fwd"]]] = eidx[~e["fwd"]]

    report.nodes, report.edges = int(node_keep.sum()), int(u.shape[0])
    report.km = float(e["length_m"].sum() / 1000.0)
    return RoadNetwork(
        mode=mode,
        node_ids=node_ids[node_keep],
        lonlat=node_lonlat[node_keep],
        crs=crs,
        xy=xy[node_keep],
        u=u.astype(np.int64),
        v=v.astype(np.int64),
        length_m=e["length_m"].astype(float),
        time_s=e["time_s"].astype(float),
        highway=e["highway"],
        osmid=e["osmid"],
        oneway=e["oneway"].astype(bool),
        maxspeed=e["maxspeed"],
        geometry=e["geometry"],
        seg_fwd=seg_fwd,
        seg_rev=seg_rev,
        seg_start=new_index[pu[pieces]],
        seg_end=new_index[pv[pieces]],
        seg_geometry=p_geom[pieces],
        elevation=node_elev[node_keep] if node_elev is not None else None,
        report=report,
    )

