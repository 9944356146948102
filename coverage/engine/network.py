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

This module is the build entry and the public face; the pieces live one topic a module, as in
osmnx: :mod:`~covplan.engine.road_network` (:class:`RoadNetwork`, :class:`BuildReport`),
:mod:`~covplan.engine.osm` (reading ways and their tags), :mod:`~covplan.engine.elevation`
(DEM sampling), :mod:`~covplan.engine.simplify` (way pieces between junctions),
:mod:`~covplan.engine.assemble` (pieces to arrays: clip, largest component, segments),
:mod:`~covplan.engine.graphs` (osmnx graphs, GraphML and downloads) and
:mod:`~covplan.engine.cache` (the cache file).
"""

from __future__ import annotations

import enum
import time
from pathlib import Path
from typing import Any

from covplan import settings
from covplan.engine import cache
from covplan.engine.assemble import from_ways, study_polygon
from covplan.engine.graphs import network_from_graph, network_from_place, network_from_polygon
from covplan.engine.modes import Mode, get_mode
from covplan.engine.osm import read_osm
from covplan.engine.road_network import BuildReport, RoadNetwork
from covplan.errors import CoverageError

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
    area = study_polygon(study_area)
    cache_file = key = None
    if cache_dir is SETTINGS_CACHE_DIR:
        cache_dir = settings.network_cache_dir()
    if cache_dir is not None:
        key = cache.cache_key(
            path, m, buffer_m=buffer_m, simplify=simplify, study_area=area, dem=dem
        )
        cache_file = Path(cache_dir).expanduser() / f"{path.name}.{m.name}.{key}{cache.SUFFIX}"
        net = cache.read_network(cache_file, key=key, mode=m)
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
        ways = read_osm(path, m)
        net = from_ways(
            ways, m, source=str(path), study_area=area, buffer_m=buffer_m, dem=dem,
            simplify=simplify,
        )  # fmt: skip
    net.report.seconds = time.perf_counter() - t0
    if cache_file is not None and key is not None:
        try:
            cache.write_network(cache_file, net, key=key)
            net.report.cache_file = str(cache_file)
        except OSError:
            pass  # a read-only cache directory only costs a rebuild next time
    return net

