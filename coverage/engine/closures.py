"""Roads that close: remove or slow edges, and find the road segments whose loss hurts most.

:func:`close_roads` returns a new :class:`~covplan.engine.road_network.RoadNetwork` without
(or with slower) the edges that cross hazard polygons, belong to given OSM ways or to given
road classes; the original is unchanged. Road pieces left with no edge are dropped, so points
re-attach to the nearest open road.

:func:`single_points_of_failure` ranks the road segments (way pieces between junctions) by
the residents that closing each one alone drops out of a travel-time circle (for example the
emergency circle, 城区15分钟、农村30分钟). Points keep their attachment: a place whose own
road piece is closed counts as cut off unless it sits at one of its ends. It runs one
multi-source Dijkstra, keeps its shortest-path forest, and for a segment only repairs the
subtree below the forest edges that segment carries (a bounded Dijkstra on those nodes from
their unchanged neighbours), skipping at once every segment that carries no covered place's
path. :func:`single_points_of_failure_bruteforce` is the reference: it removes each segment in
turn and reruns :func:`covplan.engine.routing.nearest`.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Sequence
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import scipy.sparse as sp
import shapely
from covplan.engine.attach import Attachment
from covplan.engine.road_network import RoadNetwork
from covplan.engine.routing import (
    _along,
    _augmented,
    _check,
    _ends,
    _source_offsets,
    _target_costs,
    nearest,
)
from covplan.errors import CoverageError
from scipy.sparse.csgraph import dijkstra
from shapely.geometry.base import BaseGeometry

__all__ = [
    "SPOF_COLUMNS",
    "close_roads",
    "closed_edges",
    "remove_segments",
    "single_points_of_failure",
    "single_points_of_failure_bruteforce",
]

#: Columns of the single-points-of-failure table.
SPOF_COLUMNS = ("segment", "osm_way_id", "highway", "length_m", "residents_lost", "places_lost")
_SMALL = 400  # repairs of at most this many nodes run on Python lists
_EPS = 1e-9  # the audit's tolerance on a threshold (minutes)


def _polygon_union(polygons: Any) -> BaseGeometry:
    if isinstance(polygons, gpd.GeoDataFrame | gpd.GeoSeries):
        layer = polygons if polygons.crs is None else polygons.to_crs("EPSG:4326")
        geom = layer.union_all()
    elif isinstance(polygons, BaseGeometry):
        geom = polygons
    elif isinstance(polygons, Iterable):
        geom = shapely.union_all(np.asarray(list(polygons), dtype=object))
    else:
        raise CoverageError(
            f"closure polygons must be a shapely geometry, a GeoDataFrame/GeoSeries or a list "
            f"of geometries in longitude/latitude, got {type(polygons).__name__}"
        )
    if geom is None or geom.is_empty:
        raise CoverageError("the closure polygons are empty; give at least one polygon")
    return geom


def closed_edges(
    network: RoadNetwork,
    *,
    polygons: Any = None,
    way_ids: Sequence[int] = (),
    highway: Sequence[str] = (),
) -> np.ndarray:
    """Return a boolean mask of the directed edges a closure selects.

    Every criterion given must hold (they narrow each other): the edge's geometry crosses
    (intersects) the polygons, its OSM way id is in ``way_ids``, its road class is in
    ``highway``.

    Raises
    ------
    CoverageError
        If no criterion is given.
    """
    if polygons is None and not len(way_ids) and not len(highway):
        raise CoverageError(
            "a road closure needs hazard polygons, OSM way ids or road classes (highway=...); "
            "give at least one"
        )
    mask = np.ones(network.n_edges, dtype=bool)
    if polygons is not None:
        geom = _polygon_union(polygons)
        shapely.prepare(geom)
        mask &= shapely.intersects(geom, network.geometry)
    if len(way_ids):
        mask &= np.isin(network.osmid.astype(np.int64), np.asarray(list(way_ids), dtype=np.int64))
    if len(highway):
        mask &= np.isin(network.highway.astype(str), np.asarray(list(highway), dtype=str))
    return mask


def remove_segments(
    network: RoadNetwork, edge_mask: np.ndarray, *, drop_empty_segments: bool = True
) -> RoadNetwork:
    """Return a copy of ``network`` without the directed edges where ``edge_mask`` is True.

    Parameters
    ----------
    network
        The network (unchanged).
    edge_mask
        One boolean per directed edge.
    drop_empty_segments
        Drop road pieces left with no edge (points then attach to open roads); False keeps
        them (attachments made on ``network`` stay valid; points on them are cut off).
    """
    keep = ~np.asarray(edge_mask, dtype=bool)
    if not keep.any():
        raise CoverageError(
            f"the closure removes every {network.mode.name} road; close a smaller area"
        )
    new_index = np.cumsum(keep) - 1

    def remap(seg_edges: np.ndarray) -> np.ndarray:
        ok = seg_edges >= 0
        ok[ok] = keep[seg_edges[ok]]
        return np.where(ok, new_index[np.maximum(seg_edges, 0)], -1)

    fwd, rev = remap(network.seg_fwd), remap(network.seg_rev)
    seg_keep = (fwd >= 0) | (rev >= 0) if drop_empty_segments else np.ones(fwd.shape, bool)
    return replace(
        network,
        u=network.u[keep], v=network.v[keep], length_m=network.length_m[keep],
        time_s=network.time_s[keep], highway=network.highway[keep], osmid=network.osmid[keep],
        oneway=network.oneway[keep], maxspeed=network.maxspeed[keep],
        geometry=network.geometry[keep], seg_fwd=fwd[seg_keep], seg_rev=rev[seg_keep],
        seg_start=network.seg_start[seg_keep], seg_end=network.seg_end[seg_keep],
        seg_geometry=network.seg_geometry[seg_keep], report=replace(network.report),
    )  # fmt: skip


def close_roads(
    network: RoadNetwork,
    *,
    polygons: Any = None,
    way_ids: Sequence[int] = (),
    highway: Sequence[str] = (),
    factor: float | None = None,
) -> RoadNetwork:
    """Return a new network with the selected roads removed or slowed; ``network`` unchanged.

    Parameters
    ----------
    network
        The road network of one mode.
    polygons
        Hazard areas (flood, landslide) in longitude/latitude: a shapely geometry, a
        GeoDataFrame/GeoSeries (reprojected) or a list of geometries. Edges whose geometry
        crosses them are selected.
    way_ids
        OSM way ids to select.
    highway
        Road classes (OSM ``highway`` values) to select.
    factor
        None or 0: selected edges are removed. A number in (0, 1]: their speed is multiplied
        by it (travel time divided by it).

    Raises
    ------
    CoverageError
        If no criterion is given, ``factor`` is outside [0, 1], or nothing would remain.
    """
    if factor is not None and not (np.isfinite(factor) and 0 <= factor <= 1):
        raise CoverageError(
            f"closure factor must be 0 (road removed) or a speed factor in (0, 1], got {factor}"
        )
    mask = closed_edges(network, polygons=polygons, way_ids=way_ids, highway=highway)
    if not factor:
        return remove_segments(network, mask)
    time_s = network.time_s.copy()
    time_s[mask] = time_s[mask] / float(factor)
    return replace(network, time_s=time_s, report=replace(network.report))


# ------------------------------------------------------------------ single points of failure
def _segment_table(network: RoadNetwork, lost_pop: np.ndarray, lost_n: np.ndarray,
                   top: int | None) -> pd.DataFrame:
    seg = np.flatnonzero(lost_n > 0)
    first = np.where(network.seg_fwd[seg] >= 0, network.seg_fwd[seg], network.seg_rev[seg])
    table = pd.DataFrame({
        "segment": seg.astype(np.int64),
        "osm_way_id": network.osmid[first].astype(np.int64),
        "highway": network.highway[first].astype(str),
        "length_m": network.length_m[first].astype(float),
        "residents_lost": lost_pop[seg].astype(float),
        "places_lost": lost_n[seg].astype(np.int64),
    }, columns=list(SPOF_COLUMNS))  # fmt: skip
    table = table.sort_values(["residents_lost", "segment"], ascending=[False, True],
                              kind="stable").reset_index(drop=True)
    return table.head(top) if top is not None else table


def _inputs(limit_minutes: Any, weights: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    limit = np.broadcast_to(np.asarray(limit_minutes, dtype=float), (n,)).astype(float)
    w = np.broadcast_to(np.asarray(weights, dtype=float), (n,)).astype(float)
    return limit, w


def single_points_of_failure_bruteforce(
    network: RoadNetwork,
    sources: Attachment,
    targets: Attachment,
    *,
    limit_minutes: Any,
    weights: Any = 1.0,
    direction: str | None = None,
    turnout_minutes: Any = None,
    top: int | None = None,
) -> pd.DataFrame:
    """Close every segment in turn and rerun :func:`~covplan.engine.routing.nearest` (reference).

    Same parameters and result as :func:`single_points_of_failure`.
    """
    limit, w = _inputs(limit_minutes, weights, len(targets))
    kw = {"metric": "time", "direction": direction, "turnout_minutes": turnout_minutes}
    before = nearest(network, sources, targets, **kw).value <= limit + _EPS
    n_seg = network.seg_fwd.shape[0]
    lost_pop, lost_n = np.zeros(n_seg), np.zeros(n_seg, dtype=np.int64)
    for s in range(n_seg):
        mask = np.zeros(network.n_edges, dtype=bool)
        for e in (network.seg_fwd[s], network.seg_rev[s]):
            if e >= 0:
                mask[e] = True
        closed = remove_segments(network, mask, drop_empty_segments=False)
        after = nearest(closed, sources, targets, **kw).value <= limit + _EPS
        lost = before & ~after
        lost_pop[s], lost_n[s] = w[lost].sum(), lost.sum()
    return _segment_table(network, lost_pop, lost_n, top)


def _euler(pred: np.ndarray, n_total: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the DFS order of the shortest-path forest and each node's [tin, tout) range."""
    has = pred >= 0
    child = np.flatnonzero(has)
    parent = pred[has]
    order_c = np.argsort(parent, kind="stable")
    kids = child[order_c]
    start = np.searchsorted(parent[order_c], np.arange(n_total))
    stop = np.searchsorted(parent[order_c], np.arange(n_total), side="right")
    tin = np.full(n_total, -1, dtype=np.int64)
    tout = np.full(n_total, -1, dtype=np.int64)
    order: list[int] = []
    for root in np.flatnonzero(~has).tolist():
        stack = [(root, False)]
        while stack:
            node, done = stack.pop()
            if done:
                tout[node] = len(order)
                continue
            tin[node] = len(order)
            order.append(node)
            stack.append((node, True))
            stack.extend((int(c), False) for c in kids[start[node]:stop[node]])
    return np.asarray(order, dtype=np.int64), tin, tout


def single_points_of_failure(
    network: RoadNetwork,
    sources: Attachment,
    targets: Attachment,
    *,
    limit_minutes: Any,
    weights: Any = 1.0,
    direction: str | None = None,
    turnout_minutes: Any = None,
    top: int | None = None,
) -> pd.DataFrame:
    """Rank road segments by the residents their closure alone drops out of a travel circle.

    Parameters
    ----------
    network
        The road network.
    sources
        Facilities (attached to ``network``).
    targets
        Population places (attached to ``network``).
    limit_minutes
        Threshold per target (or one number); a target is covered when its travel time to
        (from) the nearest source is at most this. NaN: the target never counts.
    weights
        Residents per target (or one number).
    direction, turnout_minutes
        As in :func:`covplan.engine.routing.nearest` (time metric).
    top
        Keep the first ``top`` rows; None keeps every segment with a loss.

    Returns
    -------
    pandas.DataFrame
        :data:`SPOF_COLUMNS`, one row per segment whose closure loses residents, most first
        (ties by segment index).
    """
    direction = _check(network, "time", direction)
    limit, w = _inputs(limit_minutes, weights, len(targets))
    offsets = _source_offsets(network, sources, "time", turnout_minutes)
    graph, virtual, _ = _augmented(network, sources, "time", direction, offsets)
    n_total = graph.shape[0]
    dist, pred, _ = dijkstra(graph, directed=True, indices=virtual, min_only=True,
                             return_predecessors=True)
    # targets: costs from their segment's ends, and with their own segment closed
    te = _ends(network, targets, "time")
    cs, ce = _target_costs(te, direction)
    view = SimpleNamespace(
        seg_fwd=np.full_like(network.seg_fwd, -1), seg_rev=np.full_like(network.seg_rev, -1),
        seg_start=network.seg_start, seg_end=network.seg_end, time_s=network.time_s,
    )
    te_x = _ends(view, targets, "time")  # type: ignore[arg-type]
    cs_x, ce_x = _target_costs(te_x, direction)
    se_x = _ends(view, sources, "time")  # type: ignore[arg-type]
    extra = se_x["leg"] + offsets
    if direction == "from_facility":
        vs_x, ve_x = se_x["out_s"] + extra, se_x["out_e"] + extra
    else:
        vs_x, ve_x = se_x["in_s"] + extra, se_x["in_e"] + extra
    same, same_x = _same_segment_costs(network, sources, targets, te, offsets, direction)
    value = np.minimum(np.minimum(dist[te["start"]] + cs, dist[te["end"]] + ce), same) / 60.0
    covered = targets.reachable & (value <= limit + _EPS)
    cov = np.flatnonzero(covered)
    t_start, t_end, t_seg = te["start"], te["end"], targets.segment

    # the forest, its DFS ranges, and the covered targets' end nodes counted per subtree
    order, tin, tout = _euler(pred, n_total)
    # the end node(s) a covered target's value comes through (a tie counts both)
    tol = 1e-9 * np.maximum(1.0, value * 60.0)
    use_s = covered & (dist[t_start] + cs <= value * 60.0 + tol)
    use_e = covered & (dist[t_end] + ce <= value * 60.0 + tol)
    hits = np.bincount(np.concatenate([t_start[use_s], t_end[use_e]]), minlength=n_total)
    prefix = np.concatenate([[0], np.cumsum(hits[order])])
    slack = (limit - value) * 60.0 - 1e-6  # seconds a covered target can lose and stay in
    node_slack = np.full(n_total, np.inf)
    np.minimum.at(node_slack, t_start[use_s], slack[use_s])
    np.minimum.at(node_slack, t_end[use_e], slack[use_e])
    slack_ord = node_slack[order]
    rev = graph.T.tocsr()
    # directed edge -> search-graph pair and its weight; parallel pairs
    eu, ev = (network.u, network.v) if direction == "from_facility" else (network.v, network.u)
    pair_w: dict[tuple[int, int], list[tuple[float, int]]] = {}
    tw = np.maximum(network.time_s, 1e-6)
    for e in range(network.n_edges):
        pair_w.setdefault((int(eu[e]), int(ev[e])), []).append((float(tw[e]), e))
    src_on: dict[int, list[int]] = {}
    for j in np.flatnonzero(sources.reachable).tolist():
        src_on.setdefault(int(sources.segment[j]), []).append(j)
    tgt_on: dict[int, list[int]] = {}
    for t in cov.tolist():
        tgt_on.setdefault(int(t_seg[t]), []).append(t)

    lists = (graph.indptr.tolist(), graph.indices.tolist(), graph.data.tolist(),
             rev.indptr.tolist(), rev.indices.tolist(), rev.data.tolist())
    dist_l = dist.tolist()
    # the loop below runs on Python lists and dicts: most segments touch a few nodes only
    old_w = {key: min(wt for wt, _ in group) for key, group in pair_w.items()}
    g_ptr, g_ind, g_dat = lists[0], lists[1], lists[2]
    for vj in virtual.tolist():
        for i in range(g_ptr[vj], g_ptr[vj + 1]):
            old_w[(vj, g_ind[i])] = g_dat[i]
    node_targets: dict[int, list[int]] = {}
    for t in np.flatnonzero(use_s).tolist():
        node_targets.setdefault(int(t_start[t]), []).append(t)
    for t in np.flatnonzero(use_e).tolist():
        node_targets.setdefault(int(t_end[t]), []).append(t)
    fwd_l, rev_l = network.seg_fwd.tolist(), network.seg_rev.tolist()
    start_l, end_l = network.seg_start.tolist(), network.seg_end.tolist()
    eu_l, ev_l, virtual_l = eu.tolist(), ev.tolist(), virtual.tolist()
    pred_l, tin_l, tout_l = pred.tolist(), tin.tolist(), tout.tolist()
    prefix_l, order_l = prefix.tolist(), order.tolist()
    vs_l, ve_l = vs_x.tolist(), ve_x.tolist()
    ts_l, tend_l, tseg_l = t_start.tolist(), t_end.tolist(), t_seg.tolist()
    cs_l, ce_l, csx_l, cex_l = cs.tolist(), ce.tolist(), cs_x.tolist(), ce_x.tolist()
    same_l, samex_l, limit_l = same.tolist(), same_x.tolist(), limit.tolist()
    inf = math.inf
    n_seg = network.seg_fwd.shape[0]
    lost_pop, lost_n = np.zeros(n_seg), np.zeros(n_seg, dtype=np.int64)
    in_d = np.zeros(n_total, dtype=bool)
    for s in range(n_seg):
        closed = [e for e in (fwd_l[s], rev_l[s]) if e >= 0]
        mods: dict[tuple[int, int], float] = {}
        for e in closed:
            key = (eu_l[e], ev_l[e])
            rest = [wt for wt, x in pair_w[key] if x not in closed]
            mods[key] = min(rest) if rest else inf
        for j in src_on.get(s, ()):
            mods[(virtual_l[j], start_l[s])] = vs_l[j]
            mods[(virtual_l[j], end_l[s])] = ve_l[j]
        roots = [b for (a, b), wt in mods.items()
                 if pred_l[b] == a and wt > old_w.get((a, b), inf) + 1e-12
                 and prefix_l[tout_l[b]] > prefix_l[tin_l[b]]]
        on_s = tgt_on.get(s, [])
        if not roots and not on_s:
            continue
        if not on_s and len(roots) == 1:
            # upper bound: every node below the root can still be reached through the root's
            # best entry from outside, so it gets later by at most that entry's delay
            b = roots[0]
            delay = _entry(lists, dist_l, tin_l, tout_l, b, mods) - dist_l[b]
            if delay < float(slack_ord[tin_l[b]:tout_l[b]].min()):
                continue
        if len(roots) == 1:
            d_list = order_l[tin_l[roots[0]]:tout_l[roots[0]]]
        else:
            d_list = sorted({x for b in roots for x in order_l[tin_l[b]:tout_l[b]]})
        d_set = set(d_list)
        affected = set(on_s)
        for x in d_list:
            hit = node_targets.get(x)
            if hit:
                affected.update(hit)
        if not affected:
            continue
        lim = max(limit_l[t] for t in affected) * 60.0 + 1e-6
        keep = [x for x in d_list if dist_l[x] <= lim]  # beyond the limit before: and after
        new: dict[int, float] = {}
        if len(keep) > _SMALL:
            nodes = np.asarray(keep, dtype=np.int64)
            in_d[nodes] = True
            new = dict(zip(keep, _repair(graph, rev, dist, nodes, in_d, mods, lim).tolist(),
                           strict=True))
            in_d[nodes] = False
        elif keep:
            new = _repair_small(lists, dist_l, keep, mods, lim)
        lost_t: list[int] = []
        for t in affected:
            a, b = ts_l[t], tend_l[t]
            da = new.get(a, inf) if a in d_set else dist_l[a]
            db = new.get(b, inf) if b in d_set else dist_l[b]
            if tseg_l[t] == s:
                v = min(da + csx_l[t], db + cex_l[t], samex_l[t]) / 60.0
            else:
                v = min(da + cs_l[t], db + ce_l[t], same_l[t]) / 60.0
            if not v <= limit_l[t] + _EPS:
                lost_t.append(t)
        if lost_t:  # summed in index order, as a mask over all targets would
            lost_pop[s], lost_n[s] = w[np.sort(np.asarray(lost_t))].sum(), len(lost_t)
    return _segment_table(network, lost_pop, lost_n, top)


def _repair_small(lists: tuple[list, ...], dist: list[float], nodes: list[int],
                  mods: dict[tuple[int, int], float], limit: float) -> dict[int, float]:
    """:func:`_repair` for a few nodes, with a heap on Python lists (no matrix to build)."""
    g_ptr, g_ind, g_dat, r_ptr, r_ind, r_dat = lists
    inside = set(nodes)
    heads = {b for _, b in mods}
    best: dict[int, float] = {}
    for x in nodes:
        b = math.inf
        changed = x in heads
        for i in range(r_ptr[x], r_ptr[x + 1]):
            y = r_ind[i]
            if y in inside:
                continue
            c = dist[y] + (mods.get((y, x), r_dat[i]) if changed else r_dat[i])
            if c < b:
                b = c
        best[x] = b
    heap = [(b, x) for x, b in best.items() if b <= limit]
    heapq.heapify(heap)
    done: set[int] = set()
    while heap:
        d, x = heapq.heappop(heap)
        if x in done:
            continue
        done.add(x)
        for i in range(g_ptr[x], g_ptr[x + 1]):
            y = g_ind[i]
            if y not in inside or y in done:
                continue
            c = d + (mods.get((x, y), g_dat[i]) if y in heads else g_dat[i])
            if c < best[y] and c <= limit:
                best[y] = c
                heapq.heappush(heap, (c, y))
    return {x: best[x] for x in done}


def _entry(lists: tuple[list, ...], dist: list[float], tin: list[int], tout: list[int],
           b: int, mods: dict[tuple[int, int], float]) -> float:
    """Best distance into node ``b`` from outside its subtree, edge changes applied."""
    _, _, _, r_ptr, r_ind, r_dat = lists
    lo, hi = tin[b], tout[b]
    best = math.inf
    for i in range(r_ptr[b], r_ptr[b + 1]):
        y = r_ind[i]
        if lo <= tin[y] < hi:
            continue
        c = dist[y] + mods.get((y, b), r_dat[i])
        if c < best:
            best = c
    return best


def _repair(graph: sp.csr_matrix, rev: sp.csr_matrix, dist: np.ndarray, d_nodes: np.ndarray,
            in_d: np.ndarray, mods: dict[tuple[int, int], float], limit: float) -> np.ndarray:
    """Return the new distances of ``d_nodes`` (a union of subtrees) after the edge changes.

    Nodes outside keep their distance; each node inside starts from its best edge from
    outside, then a Dijkstra bounded by ``limit`` runs on the edges among them.
    """
    lengths = rev.indptr[d_nodes + 1] - rev.indptr[d_nodes]
    starts = np.repeat(rev.indptr[d_nodes], lengths)
    idx = starts + np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    x_local = np.repeat(np.arange(d_nodes.size), lengths)
    y = rev.indices[idx]
    wt = rev.data[idx].astype(float)
    x_global = d_nodes[x_local]
    for (a, b), new in mods.items():
        if in_d[b]:
            wt[(y == a) & (x_global == b)] = new
    ok = np.isfinite(wt)
    inside = in_d[y] & ok
    outside = ~in_d[y] & ok
    m = d_nodes.size
    init = np.full(m, np.inf)
    np.minimum.at(init, x_local[outside], dist[y[outside]] + wt[outside])
    local = np.full(in_d.shape[0], -1, dtype=np.int64)
    local[d_nodes] = np.arange(m)
    has = np.isfinite(init)
    rows = np.concatenate([local[y[inside]], np.full(int(has.sum()), m)])
    cols = np.concatenate([x_local[inside], np.flatnonzero(has)])
    vals = np.concatenate([wt[inside], init[has]])
    sub = sp.csr_matrix((vals, (rows, cols)), shape=(m + 1, m + 1))
    out = dijkstra(sub, directed=True, indices=m, limit=limit)
    return out[:m]


def _same_segment_costs(
    network: RoadNetwork, sources: Attachment, targets: Attachment, te: dict[str, np.ndarray],
    offsets: np.ndarray, direction: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Best cost (s) from a source on each target's own segment: open, and with it closed."""
    same = np.full(len(targets), np.inf)
    same_x = np.full(len(targets), np.inf)
    src_ok = np.flatnonzero(sources.reachable)
    by_seg: dict[int, list[int]] = {}
    for j in src_ok.tolist():
        by_seg.setdefault(int(sources.segment[j]), []).append(j)
    leg_src = sources.leg_s
    for t in np.flatnonzero(targets.reachable).tolist():
        for j in by_seg.get(int(targets.segment[t]), []):
            fa, fb = ((sources.fraction[j], targets.fraction[t]) if direction == "from_facility"
                      else (targets.fraction[t], sources.fraction[j]))
            base = te["leg"][t] + leg_src[j] + offsets[j]
            along = float(_along(np.asarray(fa), np.asarray(fb), te["wf"][t], te["wr"][t]))
            along_x = float(_along(np.asarray(fa), np.asarray(fb), np.inf, np.inf))
            same[t] = min(same[t], along + base)
            same_x[t] = min(same_x[t], along_x + base)
    return same, same_x
