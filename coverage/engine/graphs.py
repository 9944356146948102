"""Road networks from osmnx-style graphs: GraphML files and osmnx downloads.

:func:`network_from_graph` converts a ``networkx.MultiDiGraph`` in osmnx's conventions (lon/lat
nodes, ``highway``/``length``/``geometry`` edges) into a
:class:`~covplan.engine.road_network.RoadNetwork`, with speeds from the mode's table;
:func:`network_from_place` and :func:`network_from_polygon` download one with osmnx first (they
need internet access). The way back, a network as an osmnx graph, is
:attr:`RoadNetwork.graph <covplan.engine.road_network.RoadNetwork.graph>`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import geopandas as gpd
import networkx as nx
import numpy as np
import shapely
from covplan.engine.assemble import finish, study_polygon
from covplan.engine.modes import Mode, get_mode
from covplan.engine.road_network import BuildReport, RoadNetwork
from covplan.errors import CoverageError
from covplan.geo import haversine_m, metric_crs
from pyproj import CRS
from shapely.geometry.base import BaseGeometry

__all__ = ["network_from_graph", "network_from_place", "network_from_polygon"]


def _first(value: Any) -> Any:
    """Return the first item of a list attribute (osmnx merges a simplified edge's values)."""
    return value[0] if isinstance(value, list) and value else value


def network_from_graph(
    graph: nx.MultiDiGraph,
    *,
    mode: str | Mode = "drive",
    study_area: Any = None,
    buffer_m: float = 5000.0,
    source: str = "graph",
) -> RoadNetwork:
    """Build a :class:`RoadNetwork` from an osmnx-style graph (GraphML or download).

    Edge speeds are recomputed from the mode's table (and ``maxspeed``); edges whose
    ``highway`` class is not in the table are dropped. Edges of a way in both directions become
    one segment; a walking mode adds missing reverse edges.

    Parameters
    ----------
    graph
        ``MultiDiGraph`` with node attributes ``x``/``y`` (lon/lat) and edge attributes
        ``highway`` and optionally ``length``, ``geometry``, ``maxspeed``, ``osmid``.
    mode
        Mode name or :class:`~covplan.engine.modes.Mode`.
    study_area, buffer_m
        Clip to this lon/lat polygon grown by ``buffer_m`` metres.
    source
        Label used in the build report.
    """
    mode = get_mode(mode)
    t0 = time.perf_counter()
    crs = graph.graph.get("crs", "EPSG:4326")
    if not CRS(crs).equals(CRS("EPSG:4326")):
        raise CoverageError(
            f"graph from {source} is projected ({crs}); give it in EPSG:4326 (osmnx's default, "
            "undo ox.project_graph)"
        )
    nodes = list(graph.nodes)
    node_ids = np.asarray(nodes, dtype=np.int64)
    order = np.argsort(node_ids)
    node_ids = node_ids[order]
    lonlat = np.asarray([(graph.nodes[k]["x"], graph.nodes[k]["y"]) for k in nodes], float)[order]
    pos = {int(k): i for i, k in enumerate(node_ids)}

    rows: dict[tuple, dict[str, Any]] = {}
    for a_id, b_id, data in graph.edges(data=True):
        hw = data.get("highway")
        hw_list = hw if isinstance(hw, list) else [hw]
        hw = next((h for h in hw_list if h in mode.speeds_kmh), None)
        if hw is None:
            continue
        ms = _first(data.get("maxspeed"))
        speed = mode.edge_speed_kmh(hw, ms)
        ia, ib = pos[int(a_id)], pos[int(b_id)]
        geom = data.get("geometry")
        if geom is None:
            geom = shapely.linestrings([lonlat[ia], lonlat[ib]])
        length = data.get("length")
        if length is None:
            c = shapely.get_coordinates(geom)
            length = float(haversine_m(c[:-1, 0], c[:-1, 1], c[1:, 0], c[1:, 1]).sum())
        osmid = int(_first(data.get("osmid", -1)))
        key = (min(ia, ib), max(ia, ib), osmid, round(float(length), 1))
        row = rows.setdefault(key, {"hw": hw, "ms": ms, "speed": speed, "len": float(length)})
        if "a" not in row:
            row.update(a=ia, b=ib, geom=geom, osmid=osmid)
        elif row.get("has_rev") is None and (ia, ib) == (row["b"], row["a"]):
            row["has_rev"] = True
    if not rows:
        raise CoverageError(f"graph from {source} has no {mode.name} roads")
    recs = list(rows.values())
    n_p = len(recs)
    pu = np.asarray([r["a"] for r in recs], dtype=np.int64)
    pv = np.asarray([r["b"] for r in recs], dtype=np.int64)
    p_geom = np.asarray([r["geom"] for r in recs], dtype=object)
    p_len = np.asarray([r["len"] for r in recs], dtype=float)
    p_speed = np.asarray([r["speed"] for r in recs], dtype=float) / 3.6
    has_rev = np.asarray([bool(r.get("has_rev")) or not mode.oneway for r in recs])
    fi, ri = np.arange(n_p), np.flatnonzero(has_rev)
    piece = np.concatenate([fi, ri])
    edges = {
        "piece": piece,
        "fwd": np.concatenate([np.ones(fi.size, bool), np.zeros(ri.size, bool)]),
        "u": np.concatenate([pu[fi], pv[ri]]),
        "v": np.concatenate([pv[fi], pu[ri]]),
        "length_m": p_len[piece],
        "time_s": (p_len / p_speed)[piece],
        "geometry": np.concatenate([p_geom[fi], shapely.reverse(p_geom[ri])]),
        "osmid": np.asarray([r["osmid"] for r in recs], dtype=np.int64)[piece],
        "highway": np.asarray([r["hw"] for r in recs], dtype=object)[piece],
        "maxspeed": np.asarray([r["ms"] for r in recs], dtype=object)[piece],
        "oneway": ~has_rev[piece],
    }
    report = BuildReport(source=source, mode=mode.name, ways=n_p)
    net = finish(
        mode, node_ids, lonlat, None, edges, p_geom, pu, pv,
        study_area=study_polygon(study_area), buffer_m=buffer_m, report=report,
    )  # fmt: skip
    net.report.seconds = time.perf_counter() - t0
    return net


def _online_graph(fetch: Callable[[], nx.MultiDiGraph], what: str) -> nx.MultiDiGraph:
    """Run an osmnx download, turning any failure into a CoverageError saying what to do."""
    try:
        return fetch()
    except Exception as exc:  # requests/urllib errors, osmnx InsufficientResponseError, ...
        raise CoverageError(
            f"could not download the road network for {what} with osmnx ({type(exc).__name__}: "
            f"{exc}). This needs internet access to the Overpass API. Offline, download an "
            "OpenStreetMap extract (.osm.pbf, e.g. from download.geofabrik.de) on a connected "
            "machine and pass its path to build_network instead."
        ) from exc


def _osmnx_network_type(mode: Mode) -> str:
    """Return the osmnx ``network_type`` to download for a mode."""
    return "walk" if mode.name == "walk" else "drive"


def network_from_place(
    place: str, *, mode: str | Mode = "drive", buffer_m: float = 5000.0
) -> RoadNetwork:
    """Download a network by place name with osmnx (needs internet).

    Raises
    ------
    CoverageError
        With a clear message when the machine is offline or the place is not found.
    """
    import osmnx as ox

    m = get_mode(mode)
    graph = _online_graph(
        lambda: ox.graph_from_place(place, network_type=_osmnx_network_type(m)), repr(place)
    )
    return network_from_graph(graph, mode=m, source=f"osmnx place {place!r}", buffer_m=buffer_m)


def network_from_polygon(
    polygon: BaseGeometry, *, mode: str | Mode = "drive", buffer_m: float = 5000.0
) -> RoadNetwork:
    """Download the network inside a lon/lat polygon grown by ``buffer_m`` with osmnx.

    Raises
    ------
    CoverageError
        With a clear message when the machine is offline.
    """
    import osmnx as ox

    m = get_mode(mode)
    crs = metric_crs(polygon)
    grown = gpd.GeoSeries([polygon], crs="EPSG:4326").to_crs(crs).buffer(buffer_m)
    grown = grown.to_crs("EPSG:4326").iloc[0]
    graph = _online_graph(
        lambda: ox.graph_from_polygon(grown, network_type=_osmnx_network_type(m)), "the polygon"
    )
    return network_from_graph(graph, mode=m, source="osmnx polygon", study_area=polygon, buffer_m=0)

