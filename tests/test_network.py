"""Road networks from the real Andorra extract and a SYNTHETIC hand-made .osm file."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import pickle
import re
import struct
import warnings
from dataclasses import asdict
from pathlib import Path

import networkx as nx
import numpy as np
import osmnx as ox
import pytest
import shapely
from covplan.engine import cache
from covplan.engine.modes import get_mode, tobler_factor
from covplan.engine.network import (
    RoadNetwork,
    build_network,
    network_from_graph,
    network_from_place,
)
from covplan.errors import CoverageError, InputWarning
from pyproj import Geod
from shipped import ANDORRA_DEM, ANDORRA_PBF

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


# --- the disk cache: arrays + WKB + a checksummed JSON header, never a pickle (issue 19) --------
FIELDS = tuple(RoadNetwork.__dataclass_fields__)
REPORT_RUN_FIELDS = {"from_cache", "seconds", "cache_file"}  # how this build ran, not its result


def assert_same_network(got: RoadNetwork, want: RoadNetwork) -> None:
    """Every field equal, arrays with their dtypes, geometries byte for byte (WKB)."""
    for name in FIELDS:
        a, b = getattr(got, name), getattr(want, name)
        if name == "crs":
            assert a == b and a.to_wkt() == b.to_wkt()
        elif name == "report":
            da, db = asdict(a), asdict(b)
            for key in REPORT_RUN_FIELDS:
                da.pop(key), db.pop(key)
            assert da == db
        elif name == "mode":
            assert a == b
        elif b is None:
            assert a is None, name
        elif name in ("geometry", "seg_geometry"):
            assert a.dtype == b.dtype == object
            assert shapely.to_wkb(a).tolist() == shapely.to_wkb(b).tolist(), name
        else:
            assert a.dtype == b.dtype and a.shape == b.shape, name
            if a.dtype == object:
                assert a.tolist() == b.tolist(), name
                assert [type(x) for x in a] == [type(x) for x in b], name
            else:
                np.testing.assert_array_equal(a, b, err_msg=name)


def graph_as_plain_data(g: nx.MultiDiGraph) -> tuple:
    nodes = sorted(g.nodes(data=True))
    edges = sorted(
        (u, v, k, sorted((a, shapely.to_wkb(x) if a == "geometry" else x) for a, x in d.items()))
        for u, v, k, d in g.edges(keys=True, data=True)
    )
    return g.graph, nodes, edges


def split_cache_file(data: bytes) -> tuple[dict, bytes]:
    """The JSON header and the payload of a cache file (as covplan.engine.cache lays it out)."""
    assert data.startswith(cache.MAGIC)
    start = len(cache.MAGIC) + 8
    (n,) = struct.unpack_from("<Q", data, len(cache.MAGIC))
    return json.loads(data[start:start + n]), data[start + n:]


def only_cache_file(folder: Path) -> Path:
    (found,) = folder.glob(f"*{cache.SUFFIX}")
    return found


@pytest.mark.parametrize(
    "build",
    [
        {"mode": "drive"},
        {"mode": "walk", "dem": ANDORRA_DEM, "study_area": shapely.box(1.50, 42.49, 1.54, 42.52),
         "buffer_m": 500},
    ],
    ids=["drive", "walk-dem"],
)
def test_cached_network_round_trips_exactly(tmp_path, build) -> None:
    fresh = build_network(ANDORRA_PBF, cache_dir=None, **build)
    written = build_network(ANDORRA_PBF, cache_dir=tmp_path, **build)
    cached = build_network(ANDORRA_PBF, cache_dir=tmp_path, **build)
    assert not written.report.from_cache and cached.report.from_cache
    assert cached.report.cache_file == str(only_cache_file(tmp_path))
    assert (cached.elevation is not None) == ("dem" in build)
    assert_same_network(written, fresh)
    assert_same_network(cached, fresh)
    assert graph_as_plain_data(cached.graph) == graph_as_plain_data(fresh.graph)
    # the routing matrices built from the cached arrays are the fresh ones
    assert (cached.csr_time != fresh.csr_time).nnz == 0
    # the file is no pickle: a JSON header with the payload's checksum, the payload an npz
    # that loads without pickle
    header, payload = split_cache_file(only_cache_file(tmp_path).read_bytes())
    assert header["payload_sha256"] == hashlib.sha256(payload).hexdigest()
    assert header["covplan"] == cache.package_version() and header["mode"]["name"] == build["mode"]
    with np.load(io.BytesIO(payload), allow_pickle=False) as npz:
        np.testing.assert_array_equal(npz["u"], fresh.u)
        assert {"geometry.wkb", "highway.json", "maxspeed.json"} <= set(npz.files)


def test_damaged_cache_file_warns_rebuilds_and_is_overwritten(tmp_path) -> None:
    fresh = build_network(ANDORRA_PBF, mode="drive", cache_dir=None)
    build_network(ANDORRA_PBF, mode="drive", cache_dir=tmp_path)
    path = only_cache_file(tmp_path)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    assert len(data) > 4 * 4096
    data[middle:middle + 4096] = bytes(4096)
    path.write_bytes(bytes(data))
    with pytest.warns(InputWarning, match=re.escape(str(path))) as caught:
        again = build_network(ANDORRA_PBF, mode="drive", cache_dir=tmp_path)
    assert "checksum" in str(caught[0].message)
    assert not again.report.from_cache
    assert_same_network(again, fresh)
    assert path.read_bytes() != bytes(data)  # overwritten with a good file ...
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        third = build_network(ANDORRA_PBF, mode="drive", cache_dir=tmp_path)
    assert third.report.from_cache  # ... that is read back without a warning
    assert_same_network(third, fresh)


class _WritesMarker:
    """Unpickling this object writes a marker file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').write('unpickled')",)


def _cache_file_bytes(key: str, payload: bytes, **header) -> bytes:
    """A cache file laid out as covplan.engine.cache documents, with a correct checksum."""
    head = {"format": cache.FORMAT, "key": key, "payload_bytes": len(payload),
            "payload_sha256": hashlib.sha256(payload).hexdigest(), **header}
    text = json.dumps(head).encode()
    return cache.MAGIC + struct.pack("<Q", len(text)) + text + payload


def test_a_pickle_in_the_cache_is_never_unpickled(tmp_path, synthetic_osm) -> None:
    control = tmp_path / "control-marker"
    pickle.loads(pickle.dumps(_WritesMarker(control)))
    assert control.read_text() == "unpickled"  # the payload does run code when unpickled

    folder = tmp_path / "cache"
    fresh = build_network(synthetic_osm, mode="drive", cache_dir=None)
    build_network(synthetic_osm, mode="drive", cache_dir=folder)
    path = only_cache_file(folder)
    key = path.name.split(".")[-2]
    marker = tmp_path / "marker"
    evil = _WritesMarker(marker)
    # a whole-file pickle, an .npz holding a pickled object array behind a valid header and
    # checksum, and a bare .npy of pickled objects behind a valid header
    npz, npy = io.BytesIO(), io.BytesIO()
    np.savez(npz, node_ids=np.array([evil, evil], dtype=object))
    np.save(npy, np.array([evil], dtype=object), allow_pickle=True)
    header, _ = split_cache_file(path.read_bytes())
    variants = {
        "pickle": pickle.dumps(evil),
        "npz": _cache_file_bytes(key, npz.getvalue(), crs=header["crs"], mode=header["mode"],
                                 report=header["report"]),
        "npy": _cache_file_bytes(key, npy.getvalue(), crs=header["crs"], mode=header["mode"],
                                 report=header["report"]),
    }
    why = {"pickle": "not a covplan network cache", "npz": "allow_pickle", "npy": "allow_pickle"}
    for name, data in variants.items():
        path.write_bytes(data)
        with pytest.warns(InputWarning, match=re.escape(str(path))) as caught:
            net = build_network(synthetic_osm, mode="drive", cache_dir=folder)
        assert why[name] in str(caught[0].message), name
        assert not marker.exists(), f"the {name} cache file was unpickled"
        assert not net.report.from_cache, name
        assert_same_network(net, fresh)
        assert path.read_bytes().startswith(cache.MAGIC)  # rebuilt and overwritten


def test_cache_key_covers_version_and_mode_table(tmp_path, synthetic_osm, monkeypatch) -> None:
    drive = get_mode("drive")

    def key(mode=drive, **kw):
        args = {"buffer_m": 5000.0, "simplify": True, "study_area": None, "dem": None, **kw}
        return cache.cache_key(synthetic_osm, mode, **args)

    assert key() == key() == key(version=cache.package_version())
    assert key(version="0.1.0") != key(version="0.2.0")
    for change in ({"speed_factor": 1.5}, {"turnout_minutes": 2.0}, {"oneway": False},
                   {"speeds_kmh": {**drive.speeds_kmh, "residential": 31.0}},
                   {"maxspeed_plausible_kmh": (5.0, 120.0)}, {"access_speed_kmh": 4.0}):
        assert key(dataclasses.replace(drive, **change)) != key(), change
    assert key(dataclasses.replace(drive, description="other words")) == key()
    assert key(buffer_m=100.0) != key() and key(simplify=False) != key()
    assert key(study_area=shapely.box(1.5, 42.5, 1.51, 42.51)) != key()
    assert key(dem=ANDORRA_DEM) != key()
    edited = tmp_path / "edited.osm"
    edited.write_bytes(synthetic_osm.read_bytes().replace(b'lat="42.501"', b'lat="42.502"'))
    assert cache.cache_key(edited, drive, buffer_m=5000.0, simplify=True, study_area=None,
                           dem=None) != key()
    # end to end: another version is another cache file, the old one is left alone
    folder = tmp_path / "cache"
    build_network(synthetic_osm, mode="drive", cache_dir=folder)
    monkeypatch.setattr(cache, "package_version", lambda: "999.0")
    other = build_network(synthetic_osm, mode="drive", cache_dir=folder)
    assert not other.report.from_cache
    assert len(list(folder.glob(f"*{cache.SUFFIX}"))) == 2
    assert build_network(synthetic_osm, mode="drive", cache_dir=folder).report.from_cache


def test_default_cache_folder_comes_from_the_settings(tmp_path, synthetic_osm, monkeypatch):
    monkeypatch.setenv("COVPLAN_CACHE_DIR", str(tmp_path / "set-after-import"))
    net = build_network(synthetic_osm, mode="drive")
    assert Path(net.report.cache_file).parent == tmp_path / "set-after-import" / "networks"
    assert build_network(synthetic_osm, mode="drive").report.from_cache
