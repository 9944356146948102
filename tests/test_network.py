"""Road networks from the real Andorra extract and a SYNTHETIC hand-made .osm file."""

from __future__ import annotations

import networkx as nx
import numpy as np
import osmnx as ox
import pytest
import shapely
from covplan.engine.modes import get_mode, tobler_factor
from covplan.engine.network import build_network, network_from_graph, network_from_place
from covplan.errors import CoverageError
from pyproj import Geod
from shipped import ANDORRA_DEM, ANDORRA_PBF, LIECHTENSTEIN_PBF

GEOD = Geod(ellps="WGS84")


def test_andorra_drive_graph_follows_osmnx_conventions(andorra_drive) -> None:
    net = andorra_drive
    g = net.graph
    assert isinstance(g, nx.MultiDiGraph) and g.graph["crs"] == "EPSG:4326"
    assert g.number_of_nodes() == net.n_nodes and g.number_of_edges() == net.n_edges
    u, v, data = next(iter(g.edges(data=True)))
    assert {"osmid", "highway", "length", "speed_kph", "travel_time", "geometry", "oneway"} <= set(
        data
    )
    assert data["travel_time"] == pytest.approx(data["length"] / (data["speed_kph"] / 3.6))
    # geometry runs from u to v
    assert data["geometry"].coords[0] == pytest.approx((g.nodes[u]["x"], g.nodes[u]["y"]))
    assert data["geometry"].coords[-1] == pytest.approx((g.nodes[v]["x"], g.nodes[v]["y"]))
    # Andorra lies in UTM 31N
    assert net.crs.to_epsg() == 32631
    # no footways, paths, steps, tracks for cars
    assert set(np.unique(net.highway)) <= set(net.mode.speeds_kmh)
    # one strongly connected component, checked with networkx
    assert nx.number_strongly_connected_components(g) == 1
    rep = net.report
    assert rep.components > 1 and rep.nodes_dropped > 0 and rep.km_dropped > 0
    assert rep.nodes == net.n_nodes and 600 < rep.km < 900
    assert "dropped outside the largest one" in rep.summary()


def test_edge_lengths_equal_geodesic_lengths_of_the_geometry(andorra_drive) -> None:
    net = andorra_drive
    rng = np.random.default_rng(1)
    for e in rng.choice(net.n_edges, 25, replace=False):
        lon, lat = np.asarray(net.geometry[e].coords).T
        geodesic = GEOD.line_length(lon, lat)  # ellipsoid, independent of our haversine
        assert net.length_m[e] == pytest.approx(geodesic, rel=3e-3)


def test_real_one_way_street_has_one_direction_only(andorra_drive) -> None:
    # way 6165450 is highway=primary + oneway=yes in the Andorra extract
    net = andorra_drive
    edges = np.flatnonzero(net.osmid == 6165450)
    assert edges.size >= 1 and net.oneway[edges].all()
    pairs = set(zip(net.u.tolist(), net.v.tolist(), strict=True))
    for e in edges:
        assert (net.u[e], net.v[e]) in pairs and (net.v[e], net.u[e]) not in pairs
    # a two-way street (oneway unset) has both
    two = np.flatnonzero(~net.oneway)[0]
    assert (net.v[two], net.u[two]) in pairs


def test_cache_second_build_is_identical(network_cache) -> None:
    a = build_network(ANDORRA_PBF, mode="drive", cache_dir=network_cache)
    b = build_network(ANDORRA_PBF, mode="drive", cache_dir=network_cache)
    assert b.report.from_cache and b.report.cache_file
    np.testing.assert_array_equal(a.u, b.u)
    np.testing.assert_array_equal(a.time_s, b.time_s)
    assert shapely.equals(a.geometry, b.geometry).all()
    # another speed table is another cache entry with other times
    faster = get_mode("drive", {"speeds_kmh": {"residential": 50}})
    c = build_network(ANDORRA_PBF, mode=faster, cache_dir=network_cache)
    assert not c.report.from_cache
    res = c.highway == "residential"
    assert c.time_s[res].sum() < a.time_s[a.highway == "residential"].sum()


def test_clip_to_study_area_plus_buffer(andorra_drive, tmp_path) -> None:
    box = shapely.box(1.50, 42.49, 1.54, 42.52)  # Andorra la Vella / Escaldes
    net = build_network(
        ANDORRA_PBF, mode="drive", study_area=box, buffer_m=1000, cache_dir=tmp_path
    )
    assert net.n_nodes < andorra_drive.n_nodes / 2
    assert net.report.nodes_outside > 0
    grown = shapely.transform(box, lambda c: np.column_stack(net.to_metric.transform(*c.T)))
    grown = grown.buffer(1000)
    assert shapely.contains_xy(grown.buffer(1e-6), net.xy[:, 0], net.xy[:, 1]).all()
    outside_box = ~shapely.contains_xy(box, net.lonlat[:, 0], net.lonlat[:, 1])
    assert outside_box.any()  # the buffer keeps roads outside the boundary


def test_synthetic_island_and_footway_dropped_for_drive(synthetic_osm) -> None:
    net = build_network(synthetic_osm, mode="drive", cache_dir=None)
    assert sorted(net.node_ids.tolist()) == [1, 2, 3, 4]  # island 5-6 dropped
    assert net.report.components == 2 and net.report.nodes_dropped == 2
    assert net.report.edges_dropped == 2  # E->F and F->E
    assert 14 not in net.osmid  # footway
    # one-way B->D only; two-way ways in both directions
    assert net.n_edges == 2 + 2 + 1 + 2  # A-B, B-C, B->D, C-D
    walk = build_network(synthetic_osm, mode="walk", cache_dir=None)
    assert 14 in walk.osmid and ((walk.osmid == 11).sum() == 2)  # walking ignores oneway


def test_graphml_round_trip(andorra_drive, tmp_path) -> None:
    path = tmp_path / "andorra_drive.graphml"
    ox.save_graphml(andorra_drive.graph, path)
    net = build_network(path, mode="drive", cache_dir=None)
    assert net.n_edges == andorra_drive.n_edges
    assert net.length_m.sum() == pytest.approx(andorra_drive.length_m.sum(), rel=1e-6)
    assert net.time_s.sum() == pytest.approx(andorra_drive.time_s.sum(), rel=1e-6)


def test_offline_download_raises_coverage_error(monkeypatch) -> None:
    def offline(*args, **kwargs):
        raise ConnectionError("Failed to resolve 'overpass-api.de'")

    monkeypatch.setattr(ox, "graph_from_place", offline)
    with pytest.raises(CoverageError, match=r"needs internet.*\.osm\.pbf"):
        network_from_place("Dadukou District, Chongqing", mode="drive")


def test_bad_inputs_raise_coverage_error(tmp_path) -> None:
    with pytest.raises(CoverageError, match="does not exist"):
        build_network(tmp_path / "missing.osm.pbf")
    bad = tmp_path / "bad.osm.pbf"
    bad.write_bytes(b"not a pbf")
    with pytest.raises(CoverageError, match="cannot read OSM file"):
        build_network(bad, cache_dir=None)
    g = nx.MultiDiGraph(crs="EPSG:32631")
    with pytest.raises(CoverageError, match="projected"):
        network_from_graph(g)


def test_walk_with_dem_uses_tobler_uphill_and_downhill(tmp_path) -> None:
    net = build_network(
        ANDORRA_PBF, mode="walk", dem=ANDORRA_DEM, simplify=False, cache_dir=tmp_path
    )
    assert net.elevation is not None
    assert np.isfinite(net.elevation).mean() > 0.9
    assert 800 < np.nanmin(net.elevation) and np.nanmax(net.elevation) < 3000
    # straight edges (2 vertices) between consecutive OSM nodes: ratio of the two directions
    # equals the ratio of Tobler factors of the slope computed here from node elevations
    checked = 0
    pairs = {(a, b): i for i, (a, b) in enumerate(zip(net.u.tolist(), net.v.tolist(), strict=True))}
    for e in np.flatnonzero(net.length_m > 30)[:2000]:
        r = pairs.get((net.v[e], net.u[e]))
        if r is None:
            continue
        slope = (net.elevation[net.v[e]] - net.elevation[net.u[e]]) / net.length_m[e]
        if not np.isfinite(slope) or abs(slope) < 0.05:  # SRTM void or flat
            continue
        expected = tobler_factor(-slope) / tobler_factor(slope)  # t_uv / t_vu
        assert net.time_s[e] / net.time_s[r] == pytest.approx(expected, rel=1e-6)
        checked += 1
    assert checked > 50


def test_cache_file_writable_by_others_is_not_unpickled(tmp_path):
    """Unpickling runs code: a cache file others could have written is rebuilt instead."""
    import os
    import pickle

    from covplan.engine.network import build_network

    pbf = LIECHTENSTEIN_PBF
    first = build_network(pbf, mode="drive", cache_dir=tmp_path)
    (cache_file,) = tmp_path.glob("*.pkl")
    # a valid network object, marked, is read back while the file is only ours ...
    first.report.cache_file = "PLANTED"
    with open(cache_file, "wb") as fh:
        pickle.dump(first, fh)
    os.chmod(cache_file, 0o644)
    assert build_network(pbf, mode="drive", cache_dir=tmp_path).report.from_cache
    # ... but not once others may write it: then it is rebuilt from the PBF
    with open(cache_file, "wb") as fh:
        pickle.dump(first, fh)
    os.chmod(cache_file, 0o666)
    again = build_network(pbf, mode="drive", cache_dir=tmp_path)
    assert not again.report.from_cache
    assert again.n_nodes == first.n_nodes
