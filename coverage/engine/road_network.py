"""The road network of one travel mode as arrays (:class:`RoadNetwork`) and its build report.

:class:`RoadNetwork` holds nodes, directed edges and the undirected road *segments* points
attach to as numpy arrays, the compressed sparse matrices the routing hot path uses and, on
first access of :attr:`RoadNetwork.graph`, an osmnx-style ``networkx.MultiDiGraph``.
:class:`BuildReport` says what a build kept and dropped. Both are re-exported by
:mod:`covplan.engine.network`, which builds them (:func:`~covplan.engine.network.build_network`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import networkx as nx
import numpy as np
import scipy.sparse as sp
import shapely
from covplan.engine.modes import Mode
from covplan.errors import CoverageError
from pyproj import CRS, Transformer

__all__ = ["BuildReport", "RoadNetwork"]

_MIN_WEIGHT = 1e-6  # csgraph needs strictly positive weights on stored edges


@dataclass
class BuildReport:
    """What a network build kept and dropped.

    Attributes count directed edges; ``*_km`` sum their lengths.
    """

    source: str
    mode: str
    ways: int = 0
    nodes_built: int = 0
    edges_built: int = 0
    nodes_outside: int = 0
    edges_outside: int = 0
    components: int = 0
    nodes_dropped: int = 0
    edges_dropped: int = 0
    km_dropped: float = 0.0
    nodes: int = 0
    edges: int = 0
    km: float = 0.0
    seconds: float = 0.0
    from_cache: bool = False
    cache_file: str = ""

    def summary(self) -> str:
        """Return a one-paragraph human summary."""
        return (
            f"{self.mode} network from {self.source}: {self.nodes} nodes, {self.edges} edges, "
            f"{self.km:.1f} km kept; {self.nodes_outside} nodes outside the study area + buffer; "
            f"{self.components} connected pieces, {self.nodes_dropped} nodes / "
            f"{self.edges_dropped} edges / {self.km_dropped:.1f} km dropped outside the largest one"
            + (" (from cache)" if self.from_cache else f" ({self.seconds:.2f} s)")
        )


@dataclass(eq=False)
class RoadNetwork:
    """The road network of one travel mode, as arrays.

    Attributes
    ----------
    mode
        The travel mode the speeds and one-way rules come from.
    node_ids
        OSM id of each node (int64, ``n``).
    lonlat
        ``(n, 2)`` longitude/latitude of nodes.
    crs
        The metric CRS (UTM zone) of ``xy`` and the metric geometries.
    xy
        ``(n, 2)`` metric coordinates of nodes.
    u, v
        Directed edges as node indices (``m``).
    length_m, time_s
        Length (metres) and travel time (seconds) of each directed edge.
    highway, osmid, oneway, maxspeed
        OSM attributes of each edge's way.
    geometry
        LineString of each edge in lon/lat, oriented from ``u`` to ``v``.
    seg_fwd, seg_rev
        For each undirected road segment (a way piece), the edge travelling it in the way's
        direction and the one travelling it backwards (-1 when one-way).
    seg_start, seg_end
        Node indices at the start and end of each segment (in the way's direction).
    seg_geometry
        Segment geometry in lon/lat, in the way's direction.
    elevation
        Node elevation in metres when a DEM was given, else None.
    report
        What the build kept and dropped.
    """

    mode: Mode
    node_ids: np.ndarray
    lonlat: np.ndarray
    crs: CRS
    xy: np.ndarray
    u: np.ndarray
    v: np.ndarray
    length_m: np.ndarray
    time_s: np.ndarray
    highway: np.ndarray
    osmid: np.ndarray
    oneway: np.ndarray
    maxspeed: np.ndarray
    geometry: np.ndarray
    seg_fwd: np.ndarray
    seg_rev: np.ndarray
    seg_start: np.ndarray
    seg_end: np.ndarray
    seg_geometry: np.ndarray
    elevation: np.ndarray | None = None
    report: BuildReport = field(default_factory=lambda: BuildReport("", ""))

    # -- sizes ---------------------------------------------------------------------------
    @property
    def n_nodes(self) -> int:
        """Number of nodes."""
        return int(self.node_ids.shape[0])

    @property
    def n_edges(self) -> int:
        """Number of directed edges."""
        return int(self.u.shape[0])

    # -- sparse matrices (built once, cached) --------------------------------------------
    def _csr(self, weights: np.ndarray) -> sp.csr_matrix:
        n = self.n_nodes
        w = np.maximum(weights, _MIN_WEIGHT)
        order = np.lexsort((w, self.v, self.u))  # parallel edges: keep the smallest weight
        uu, vv, ww = self.u[order], self.v[order], w[order]
        first = np.ones(uu.shape[0], dtype=bool)
        first[1:] = (uu[1:] != uu[:-1]) | (vv[1:] != vv[:-1])
        keep = first & (uu != vv)
        return sp.csr_matrix((ww[keep], (uu[keep], vv[keep])), shape=(n, n))

    @cached_property
    def csr_time(self) -> sp.csr_matrix:
        """Travel time in seconds, ``csr[i, j]`` for the edge i -> j (fastest parallel edge)."""
        return self._csr(self.time_s)

    @cached_property
    def csr_length(self) -> sp.csr_matrix:
        """Length in metres, ``csr[i, j]`` for the edge i -> j (shortest parallel edge)."""
        return self._csr(self.length_m)

    @cached_property
    def csr_time_reversed(self) -> sp.csr_matrix:
        """Transpose of :attr:`csr_time` (searches towards a destination)."""
        return self.csr_time.T.tocsr()

    @cached_property
    def csr_length_reversed(self) -> sp.csr_matrix:
        """Transpose of :attr:`csr_length`."""
        return self.csr_length.T.tocsr()

    # -- metric geometries ----------------------------------------------------------------
    @cached_property
    def to_metric(self) -> Transformer:
        """Transformer from lon/lat to :attr:`crs`."""
        return Transformer.from_crs("EPSG:4326", self.crs, always_xy=True)

    def _project(self, geoms: np.ndarray) -> np.ndarray:
        tr = self.to_metric

        def fn(c: np.ndarray) -> np.ndarray:
            x, y = tr.transform(c[:, 0], c[:, 1])
            return np.column_stack([x, y])

        return shapely.transform(geoms, fn)

    @cached_property
    def seg_geometry_xy(self) -> np.ndarray:
        """Segment geometries in the metric CRS."""
        return self._project(self.seg_geometry)

    @cached_property
    def geometry_xy(self) -> np.ndarray:
        """Edge geometries in the metric CRS, oriented from ``u`` to ``v``."""
        return self._project(self.geometry)

    # -- the osmnx-style graph ------------------------------------------------------------
    @cached_property
    def graph(self) -> nx.MultiDiGraph:
        """An osmnx-convention ``MultiDiGraph`` (``crs`` EPSG:4326; nodes keyed by OSM id)."""
        g = nx.MultiDiGraph(crs="EPSG:4326", mode=self.mode.name)
        ids = self.node_ids.tolist()
        lon, lat = self.lonlat[:, 0].tolist(), self.lonlat[:, 1].tolist()
        if self.elevation is not None:
            elev = self.elevation.tolist()
            g.add_nodes_from(
                (ids[i], {"x": lon[i], "y": lat[i], "elevation": elev[i]}) for i in range(len(ids))
            )
        else:
            g.add_nodes_from((ids[i], {"x": lon[i], "y": lat[i]}) for i in range(len(ids)))
        us, vs = self.u.tolist(), self.v.tolist()
        lengths, times = self.length_m.tolist(), self.time_s.tolist()
        speeds = (self.length_m / np.maximum(self.time_s, _MIN_WEIGHT) * 3.6).tolist()
        osmid, hw = self.osmid.tolist(), self.highway.tolist()
        ow, ms = self.oneway.tolist(), self.maxspeed.tolist()
        geoms = self.geometry
        for i in range(self.n_edges):
            attrs: dict[str, Any] = {
                "osmid": osmid[i],
                "highway": hw[i],
                "oneway": ow[i],
                "length": lengths[i],
                "speed_kph": speeds[i],
                "travel_time": times[i],
                "geometry": geoms[i],
            }
            if ms[i] is not None:
                attrs["maxspeed"] = ms[i]
            g.add_edge(ids[us[i]], ids[vs[i]], **attrs)
        return g

    def node_index(self, osm_ids: Any) -> np.ndarray:
        """Return node indices of OSM node ids (raises CoverageError for unknown ids)."""
        osm = np.atleast_1d(np.asarray(osm_ids, dtype=np.int64))
        order = np.argsort(self.node_ids)
        pos = np.searchsorted(self.node_ids, osm, sorter=order)
        pos = np.clip(pos, 0, self.n_nodes - 1)
        idx = order[pos]
        missing = osm[self.node_ids[idx] != osm]
        if missing.size:
            raise CoverageError(
                f"OSM node id(s) {missing[:5].tolist()} are not in the {self.mode.name} network "
                "(dropped by the mode's road classes, the study-area clip or the component filter)"
            )
        return idx

    # -- pickling (to another process only: the disk cache never pickles) -----------------
    def __getstate__(self) -> dict[str, Any]:
        state = {k: getattr(self, k) for k in self.__dataclass_fields__}
        state["crs"] = self.crs.to_wkt()
        state["geometry"] = shapely.to_wkb(self.geometry)
        state["seg_geometry"] = shapely.to_wkb(self.seg_geometry)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        state["crs"] = CRS.from_wkt(state["crs"])
        state["geometry"] = shapely.from_wkb(state["geometry"])
        state["seg_geometry"] = shapely.from_wkb(state["seg_geometry"])
        self.__dict__.update(state)


