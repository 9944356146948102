"""Road networks from OSM extracts, GraphML files or osmnx downloads, as arrays plus a graph.

A :class:`RoadNetwork` holds the network of one travel mode as numpy arrays (nodes, directed
edges, the undirected road *segments* points attach to) and the compressed sparse matrices the
routing hot path uses. The osmnx-style ``networkx.MultiDiGraph`` is built on first access of
:attr:`RoadNetwork.graph` for users who want osmnx functions.

Building from ``.osm.pbf``/``.osm`` reads the file once with pyosmium, keeps the ways the mode
travels on, splits them at intersections (an osmnx-style simplified graph: one edge per way
piece between junctions, with the full geometry), clips to the study area plus a buffer, and
keeps the largest strongly connected component. The result is cached on disk
(:mod:`covplan.engine.cache`: arrays, WKB geometries and a checksummed JSON header, never a
pickle), keyed by the package version, the sha256 of the source file, the mode table and every
other setting that changes it, in the ``networks`` folder of the cache folder
(:func:`covplan.settings.network_cache_dir`, ``COVPLAN_CACHE_DIR``) unless ``cache_dir`` says
otherwise.
"""

from __future__ import annotations

import enum
import time
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import geopandas as gpd
import networkx as nx
import numpy as np
import scipy.sparse as sp
import shapely
from covplan import settings
from covplan.engine import cache
from covplan.engine.modes import Mode, get_mode, tobler_factor
from covplan.errors import CoverageError
from covplan.geo import haversine_m, metric_crs, utm_crs
from pyproj import CRS, Transformer
from scipy.sparse.csgraph import connected_components
from shapely.geometry.base import BaseGeometry

__all__ = [
    "SETTINGS_CACHE_DIR",
    "BuildReport",
    "RoadNetwork",
    "build_network",
    "network_from_graph",
    "network_from_place",
    "network_from_polygon",
]



class _CacheDefault(enum.Enum):
    SETTINGS = "the settings' network cache folder"


#: ``build_network(cache_dir=...)``'s default: :func:`covplan.settings.network_cache_dir`, read
#: at each call (so ``COVPLAN_CACHE_DIR`` set after import counts).
SETTINGS_CACHE_DIR = _CacheDefault.SETTINGS
#: Arrays of the cache file kept as WKB; the fields of the header.
_CACHE_GEOMETRY = ("geometry", "seg_geometry")
_CACHE_HEADER_FIELDS = ("mode", "crs", "report")
_MIN_WEIGHT = 1e-6  # csgraph needs strictly positive weights on stored edges
_ONEWAY_YES = ("yes", "true", "1")
_ONEWAY_REV = ("-1", "reverse")
_MOTOR_OK = ("yes", "destination", "designated", "permissive", "delivery")
_FOOT_OK = ("yes", "designated", "permissive", "destination")
_SERVICE_NO_CAR = ("parking_aisle", "parking", "driveway", "private", "emergency_access")


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


# ---------------------------------------------------------------------------------------------
# reading OSM files
# ---------------------------------------------------------------------------------------------
@dataclass
class _Ways:
    """Kept ways: per-way attributes and their node refs concatenated."""

    ids: list[int] = field(default_factory=list)
    highway: list[str] = field(default_factory=list)
    maxspeed: list[str | None] = field(default_factory=list)
    fwd: list[bool] = field(default_factory=list)
    rev: list[bool] = field(default_factory=list)
    speed: list[float] = field(default_factory=list)
    refs: list[int] = field(default_factory=list)
    lon: list[float] = field(default_factory=list)
    lat: list[float] = field(default_factory=list)
    starts: list[int] = field(default_factory=lambda: [0])


def _way_allowed(mode: Mode, tags: Any, highway: str) -> bool:
    if tags.get("area") == "yes":
        return False
    access = tags.get("access")
    if mode.name == "walk":
        foot = tags.get("foot")
        if foot == "no":
            return False
        return not (access in ("no", "private") and foot not in _FOOT_OK)
    motor = tags.get("motor_vehicle") or tags.get("motorcar")
    if motor == "no":
        return False
    if access in ("no", "private") and motor not in _MOTOR_OK:
        return False
    service = tags.get("service")
    if highway == "service" and service in _SERVICE_NO_CAR:
        return mode.name == "ambulance" and service == "emergency_access"
    return True


def _directions(mode: Mode, tags: Any, highway: str) -> tuple[bool, bool]:
    """Return (forward allowed, backward allowed) of a way for the mode."""
    if not mode.oneway:
        return True, True
    oneway = (tags.get("oneway") or "").lower()
    if oneway in _ONEWAY_YES:
        return True, False
    if oneway in _ONEWAY_REV:
        return False, True
    if oneway == "no":
        return True, True
    if tags.get("junction") in ("roundabout", "circular") or highway == "motorway":
        return True, False
    return True, True


def _read_osm(path: Path, mode: Mode) -> _Ways:
    import osmium

    ways = _Ways()
    try:
        processor = (
            osmium.FileProcessor(str(path), osmium.osm.NODE | osmium.osm.WAY)
            .with_locations()
            .with_filter(osmium.filter.EntityFilter(osmium.osm.WAY))
            .with_filter(osmium.filter.KeyFilter("highway"))
        )
        for w in processor:
            tags = w.tags
            highway = tags.get("highway")
            speed = mode.edge_speed_kmh(highway, tags.get("maxspeed"))
            if speed is None or not _way_allowed(mode, tags, highway):
                continue
            pts = [(n.ref, n.lon, n.lat) for n in w.nodes if n.location.valid()]
            # drop repeated consecutive refs (zero-length pieces)
            pts = [p for i, p in enumerate(pts) if i == 0 or p[0] != pts[i - 1][0]]
            if len(pts) < 2:
                continue
            fwd, rev = _directions(mode, tags, highway)
            ways.ids.append(w.id)
            ways.highway.append(highway)
            ways.maxspeed.append(tags.get("maxspeed"))
            ways.fwd.append(fwd)
            ways.rev.append(rev)
            ways.speed.append(speed)
            for ref, lon, lat in pts:
                ways.refs.append(ref)
                ways.lon.append(lon)
                ways.lat.append(lat)
            ways.starts.append(len(ways.refs))
    except RuntimeError as exc:  # osmium reports unreadable files as RuntimeError
        raise CoverageError(
            f"cannot read OSM file {path}: {exc}; give an .osm.pbf or .osm XML extract "
            "(for example from download.geofabrik.de)"
        ) from exc
    if not ways.ids:
        raise CoverageError(
            f"no {mode.name} roads in {path}: none of its ways has a highway class in the "
            f"{mode.name} speed table ({', '.join(mode.speeds_kmh)})"
        )
    return ways


# ---------------------------------------------------------------------------------------------
# elevation
# ---------------------------------------------------------------------------------------------
def _dem_uri(dem: str | Path) -> str:
    text = str(dem)
    if text.startswith("zip://") or "!" in text or not text.lower().endswith(".zip"):
        return text
    with zipfile.ZipFile(text) as zf:
        inner = [n for n in zf.namelist() if n.lower().endswith((".hgt", ".tif", ".tiff"))]
    if not inner:
        raise CoverageError(f"no .hgt or .tif elevation raster inside {text}")
    return f"zip://{Path(text).resolve()}!{inner[0]}"


def _dem_sampler(dem: str | Path) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """Return a bilinear sampler ``(lon, lat) -> elevation`` (NaN outside / no data)."""
    import rasterio

    uri = _dem_uri(dem)
    try:
        with rasterio.open(uri) as src:
            band = src.read(1).astype(float)
            t = src.transform
            if src.nodata is not None:
                band[band == src.nodata] = np.nan
            if src.crs is not None and not CRS(src.crs).is_geographic:
                raise CoverageError(f"elevation model {dem} must be in longitude/latitude")
    except rasterio.errors.RasterioIOError as exc:
        raise CoverageError(f"cannot open elevation model {dem}: {exc}") from exc
    band[band < -1000] = np.nan  # SRTM voids

    def sample(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        # north-up raster: column/row from the affine coefficients, relative to pixel centres
        col = (np.asarray(lon, dtype=float) - t.c) / t.a - 0.5
        row = (np.asarray(lat, dtype=float) - t.f) / t.e - 0.5
        c0, r0 = np.floor(col).astype(int), np.floor(row).astype(int)
        fc, fr = col - c0, row - r0
        h, w = band.shape
        ok = (c0 >= 0) & (r0 >= 0) & (c0 + 1 < w) & (r0 + 1 < h)
        c0, r0 = np.where(ok, c0, 0), np.where(ok, r0, 0)
        z = (
            band[r0, c0] * (1 - fc) * (1 - fr)
            + band[r0, c0 + 1] * fc * (1 - fr)
            + band[r0 + 1, c0] * (1 - fc) * fr
            + band[r0 + 1, c0 + 1] * fc * fr
        )
        return np.where(ok, z, np.nan)

    return sample


# ---------------------------------------------------------------------------------------------
# assembling pieces -> network
# ---------------------------------------------------------------------------------------------
def _study_polygon(study_area: Any) -> BaseGeometry | None:
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


def _from_ways(
    ways: _Ways,
    mode: Mode,
    *,
    source: str,
    study_area: BaseGeometry | None,
    buffer_m: float,
    dem: str | Path | None,
    simplify: bool = True,
) -> RoadNetwork:
    refs = np.asarray(ways.refs, dtype=np.int64)
    lon = np.asarray(ways.lon, dtype=float)
    lat = np.asarray(ways.lat, dtype=float)
    starts = np.asarray(ways.starts, dtype=np.int64)
    n_ways = starts.shape[0] - 1
    way_of = np.repeat(np.arange(n_ways), np.diff(starts))
    n_refs = refs.shape[0]

    # split at way ends and at nodes used more than once (junctions, loops)
    split = np.zeros(n_refs, dtype=bool)
    split[starts[:-1]] = True
    split[starts[1:] - 1] = True
    _, inv, counts = np.unique(refs, return_inverse=True, return_counts=True)
    split |= counts[inv] > 1
    if not simplify:
        split[:] = True
    spos = np.flatnonzero(split)
    same = way_of[spos[:-1]] == way_of[spos[1:]]
    a, b = spos[:-1][same], spos[1:][same]
    pw = way_of[a]
    n_pieces = a.shape[0]

    # per consecutive pair: length and times (Tobler slope when a DEM is given)
    same_way = way_of[:-1] == way_of[1:]
    dl = np.where(same_way, haversine_m(lon[:-1], lat[:-1], lon[1:], lat[1:]), 0.0)
    speed_ms = np.asarray(ways.speed, dtype=float)[way_of[:-1]] / 3.6
    elevation_refs = None
    if dem is not None:
        elevation_refs = _dem_sampler(dem)(lon, lat)
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
    return _finish(
        mode, node_ids, node_lonlat, node_elev, edges, p_geom, pu, pv,
        study_area=study_area, buffer_m=buffer_m, report=report,
    )  # fmt: skip


def _finish(
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
    """Clip, keep the largest component, reindex and build segments."""
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


# ---------------------------------------------------------------------------------------------
# osmnx graphs (GraphML, downloads)
# ---------------------------------------------------------------------------------------------
def _first(value: Any) -> Any:
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
    net = _finish(
        mode, node_ids, lonlat, None, edges, p_geom, pu, pv,
        study_area=_study_polygon(study_area), buffer_m=buffer_m, report=report,
    )  # fmt: skip
    net.report.seconds = time.perf_counter() - t0
    return net


def _online_graph(fetch: Callable[[], nx.MultiDiGraph], what: str) -> nx.MultiDiGraph:
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


# ---------------------------------------------------------------------------------------------
# the entry point with the cache
# ---------------------------------------------------------------------------------------------
def build_network(
    source: str | Path,
    *,
    mode: str | Mode = "drive",
    study_area: Any = None,
    buffer_m: float = 5000.0,
    dem: str | Path | None = None,
    simplify: bool = True,
    cache_dir: str | Path | None | _CacheDefault = SETTINGS_CACHE_DIR,
) -> RoadNetwork:
    """Build (or load from the cache) the road network of a mode from a file.

    Parameters
    ----------
    source
        ``.osm.pbf``, ``.osm`` (also ``.osm.bz2``/``.osm.gz``) or ``.graphml`` file.
    mode
        ``walk``, ``drive``, ``ambulance`` or a :class:`~covplan.engine.modes.Mode` with overrides.
    study_area
        Study-area polygon(s) in lon/lat (shapely geometry or GeoDataFrame); None keeps all.
    buffer_m
        Roads within this many metres outside the study area are kept, so trips that leave
        the boundary and come back are counted.
    dem
        Elevation model (GeoTIFF, ``.hgt``, or a ``.zip`` holding one) for slope-aware
        walking; node elevations are stored for every mode (OSM files only).
    simplify
        True (osmnx's default): one edge per way piece between junctions, with its full
        geometry. False: one edge per pair of consecutive OSM nodes.
    cache_dir
        Directory of the on-disk cache; None disables caching. Default: the ``networks``
        folder of the cache folder (:func:`covplan.settings.network_cache_dir`). A damaged or
        unreadable cache file gives an :class:`~covplan.errors.InputWarning` naming it and is
        rebuilt and overwritten.

    Returns
    -------
    RoadNetwork
        With ``report`` saying what was kept, dropped and whether it came from the cache.

    Raises
    ------
    CoverageError
        If the file is missing or unreadable, or no road of the mode remains.
    """
    t0 = time.perf_counter()
    path = Path(source).expanduser()
    if not path.is_file():
        raise CoverageError(
            f"road network file {path} does not exist; give the path of an .osm.pbf extract "
            "(e.g. data/osm/andorra-2013-05-23.osm.pbf) or a .graphml file"
        )
    from covplan.inputs._io import check_size

    if check_size(path, role="road network", kind="network") == 0:
        raise CoverageError(
            f"road network file {path} is empty (0 bytes); the download or copy was probably "
            "interrupted: fetch the .osm.pbf extract again"
        )
    m = get_mode(mode)
    area = _study_polygon(study_area)
    cache_file = key = None
    if cache_dir is SETTINGS_CACHE_DIR:
        cache_dir = settings.network_cache_dir()
    if cache_dir is not None:
        key = cache.cache_key(
            path, m, buffer_m=buffer_m, simplify=simplify, study_area=area, dem=dem
        )
        cache_file = Path(cache_dir).expanduser() / f"{path.name}.{m.name}.{key}{cache.SUFFIX}"
        net = _read_cache(cache_file, key=key, mode=m)
        if net is not None:
            net.report.from_cache = True
            net.report.seconds = time.perf_counter() - t0
            net.report.cache_file = str(cache_file)
            return net
    if path.suffix.lower() == ".graphml":
        import osmnx as ox

        fix = ("save the graph with osmnx.save_graphml (nodes with x/y longitude/latitude, "
               "edges with highway), or give an .osm.pbf extract")
        try:
            graph = ox.load_graphml(path)
        except Exception as exc:  # XML, attribute-conversion and osmnx errors alike
            raise CoverageError(f"cannot read GraphML file {path}: {exc}; {fix}") from exc
        bad = [n for n, d in graph.nodes(data=True)
               if not all(isinstance(d.get(k), (int, float)) for k in ("x", "y"))]
        if bad or graph.number_of_edges() == 0:
            what = (f"{len(bad)} node(s) lack numeric x/y coordinates (e.g. {bad[0]!r})"
                    if bad else "it has no edges")
            raise CoverageError(f"GraphML file {path} is not an osmnx road graph: {what}; {fix}")
        net = network_from_graph(
            graph, mode=m, study_area=area, buffer_m=buffer_m, source=str(path)
        )
    else:
        ways = _read_osm(path, m)
        net = _from_ways(
            ways, m, source=str(path), study_area=area, buffer_m=buffer_m, dem=dem,
            simplify=simplify,
        )  # fmt: skip
    net.report.seconds = time.perf_counter() - t0
    if cache_file is not None and key is not None:
        try:
            _write_cache(cache_file, net, key=key)
            net.report.cache_file = str(cache_file)
        except OSError:
            pass  # a read-only cache directory only costs a rebuild next time
    return net


def _write_cache(path: Path, net: RoadNetwork, *, key: str) -> None:
    """Write a network to a cache file (:func:`covplan.engine.cache.write_arrays`)."""
    arrays = {
        name: getattr(net, name)
        for name in net.__dataclass_fields__
        if name not in _CACHE_HEADER_FIELDS and getattr(net, name) is not None
    }
    header = {
        "crs": net.crs.to_wkt(),
        "mode": cache.mode_table(net.mode),
        "report": asdict(net.report),
    }
    cache.write_arrays(path, arrays, header, key=key, geometry=_CACHE_GEOMETRY)


def _read_cache(path: Path, *, key: str, mode: Mode) -> RoadNetwork | None:
    """Return the network of a cache file, None if missing or unusable (then warn)."""
    if not path.is_file():
        return None
    try:
        arrays, header = cache.read_arrays(path, key=key)
        return _network_from_cache(arrays, header, mode)
    except (cache.CacheFileError, OSError) as exc:
        cache.warn_unusable(path, exc)
        return None


def _network_from_cache(
    arrays: dict[str, np.ndarray], header: dict[str, Any], mode: Mode
) -> RoadNetwork:
    """Assemble and check a :class:`RoadNetwork` from a cache file's arrays and header.

    Raises
    ------
    covplan.engine.cache.CacheFileError
        If anything is missing, of another mode table, or of inconsistent sizes.
    """
    if header.get("mode") != cache.mode_table(mode):
        raise cache.CacheFileError("it was built with another mode table")
    try:
        crs = CRS.from_wkt(header["crs"])
        report = BuildReport(**header["report"])
        net = RoadNetwork(mode=mode, crs=crs, report=report, **arrays)
    except Exception as exc:  # missing/extra fields (TypeError, KeyError), bad CRS text
        raise cache.CacheFileError(
            f"its contents are incomplete ({type(exc).__name__}: {exc})"
        ) from exc
    n, m, s = net.n_nodes, net.n_edges, int(net.seg_fwd.shape[0])
    shapes = {
        "lonlat": (n, 2), "xy": (n, 2), "u": (m,), "v": (m,), "length_m": (m,), "time_s": (m,),
        "highway": (m,), "osmid": (m,), "oneway": (m,), "maxspeed": (m,), "geometry": (m,),
        "seg_rev": (s,), "seg_start": (s,), "seg_end": (s,), "seg_geometry": (s,),
    }  # fmt: skip
    if net.elevation is not None:
        shapes["elevation"] = (n,)
    wrong = [name for name, shape in shapes.items() if getattr(net, name).shape != shape]
    in_range = all(
        idx.size == 0 or (idx.min() >= low and idx.max() < high)
        for idx, low, high in ((net.u, 0, n), (net.v, 0, n), (net.seg_start, 0, n),
                               (net.seg_end, 0, n), (net.seg_fwd, -1, m), (net.seg_rev, -1, m))
    )  # fmt: skip
    if wrong or not in_range:
        raise cache.CacheFileError(
            f"its arrays do not fit together ({', '.join(wrong) or 'node or edge indices'})"
        )
    return net
