"""Routing on arrays vs independent networkx searches on the same graph, and by hand."""

from __future__ import annotations

import math

import geopandas as gpd
import networkx as nx
import numpy as np
import pytest
import shapely
from conftest import SYNTHETIC_NODES
from covplan.engine.attach import attach
from covplan.engine.network import build_network
from covplan.engine.routing import nearest, reach_matrix, reach_sets
from covplan.errors import CoverageError
from pyproj import Geod
from shipped import ANDORRA_PBF

GEOD = Geod(ellps="WGS84")
#: fixed points: town centres (lon, lat)
TOWNS = {
    "andorra_la_vella": (1.5218, 42.5063),
    "sant_julia": (1.4913, 42.4636),
    "encamp": (1.5803, 42.5343),
    "ordino": (1.5331, 42.5562),
    "pas_de_la_casa": (1.7330, 42.5425),
}


def _nearest_node(net, lon: float, lat: float) -> int:
    d = (net.lonlat[:, 0] - lon) ** 2 + ((net.lonlat[:, 1] - lat) * 1.35) ** 2
    return int(np.argmin(d))


def test_drive_distances_between_towns_match_networkx(andorra_drive) -> None:
    net, g = andorra_drive, andorra_drive.graph
    nodes = {k: _nearest_node(net, *p) for k, p in TOWNS.items()}
    names = list(nodes)
    for a in names:
        res = nearest(
            net, np.array([nodes[a]]), np.array([nodes[b] for b in names]),
            metric="length", direction="from_facility",
        )  # fmt: skip
        for j, b in enumerate(names):
            ref = nx.shortest_path_length(
                g, int(net.node_ids[nodes[a]]), int(net.node_ids[nodes[b]]), weight="length"
            )
            assert res.value[j] == pytest.approx(ref / 1000.0, abs=1e-6), (a, b)
    # sanity against the map: Andorra la Vella -> Pas de la Casa by the CG-2 is about 30 km
    # of mountain road, well above the 18 km straight line
    far = nearest(net, np.array([nodes["andorra_la_vella"]]), np.array([nodes["pas_de_la_casa"]]),
                  metric="length", direction="from_facility").value[0]  # fmt: skip
    straight = GEOD.inv(*TOWNS["andorra_la_vella"], *TOWNS["pas_de_la_casa"])[2] / 1000
    assert 1.3 * straight < far < 2.5 * straight


def test_multi_source_nearest_equals_networkx_multi_source(andorra_drive) -> None:
    net, g = andorra_drive, andorra_drive.graph
    fac = np.random.default_rng(3).choice(net.n_nodes, 12, replace=False)
    ids = [int(net.node_ids[i]) for i in fac]
    for direction, graph in (("from_facility", g), ("to_facility", g.reverse(copy=False))):
        res = nearest(net, fac, direction=direction)
        ref = nx.multi_source_dijkstra_path_length(graph, ids, weight="travel_time")
        got = dict(zip(net.node_ids.tolist(), res.node_value.tolist(), strict=True))
        assert len(ref) == net.n_nodes
        for osm, seconds in ref.items():
            assert got[osm] == pytest.approx(seconds / 60.0, abs=1e-6)
        # the reported source really is at that distance
        i = 57
        src = fac[res.node_source[i]]
        one = nearest(net, np.array([src]), np.array([i]), direction=direction).value[0]
        assert one == pytest.approx(res.node_value[i], abs=1e-6)


def test_one_way_street_times_differ_by_direction(andorra_drive) -> None:
    net, g = andorra_drive, andorra_drive.graph
    e = int(np.flatnonzero(net.osmid == 6165450)[0])  # primary, oneway=yes
    a, b = int(net.u[e]), int(net.v[e])
    ab = nearest(net, np.array([a]), np.array([b]), direction="from_facility").value[0]
    ba = nearest(net, np.array([b]), np.array([a]), direction="from_facility").value[0]
    assert ab == pytest.approx(net.time_s[e] / 60.0, abs=1e-6)  # straight along the one-way
    ref_ba = nx.shortest_path_length(
        g, int(net.node_ids[b]), int(net.node_ids[a]), weight="travel_time"
    )
    assert ba == pytest.approx(ref_ba / 60.0, abs=1e-6)
    assert ba > ab + 0.1


def test_reach_matrix_equals_networkx_cutoff_searches(andorra_drive) -> None:
    net, g = andorra_drive, andorra_drive.graph
    fac = np.random.default_rng(5).choice(net.n_nodes, 6, replace=False)
    m = reach_matrix(net, fac, cutoff=15, direction="from_facility")
    assert m.shape == (6, net.n_nodes)
    sets = reach_sets(m)
    for i, f in enumerate(fac):
        ref = nx.single_source_dijkstra_path_length(
            g, int(net.node_ids[f]), cutoff=900, weight="travel_time"
        )
        idx = net.node_index(list(ref))
        assert set(sets[i].tolist()) == set(idx.tolist())
        np.testing.assert_allclose(
            m[i].toarray()[0, idx], np.array(list(ref.values())) / 60, atol=1e-6
        )
        assert f in sets[i] and m[i, f] == 0  # own node kept as an explicit 0
    m30 = reach_matrix(net, fac, cutoff=30, direction="from_facility")
    assert all(set(a) <= set(b) for a, b in zip(sets, reach_sets(m30), strict=True))


def test_ambulance_turnout_and_speed_factor(network_cache) -> None:
    amb = build_network(ANDORRA_PBF, mode="ambulance", cache_dir=network_cache)
    fac = np.array([10, 500])
    res = nearest(amb, fac)  # ambulance default: from_facility, 2 min turnout
    assert res.direction == "from_facility"
    assert res.node_value[fac] == pytest.approx([2.0, 2.0])
    ids = [int(amb.node_ids[i]) for i in fac]
    ref = nx.multi_source_dijkstra_path_length(amb.graph, ids, weight="travel_time")
    for osm, seconds in list(ref.items())[:200]:
        assert res.node_value[amb.node_index(osm)[0]] == pytest.approx(2.0 + seconds / 60)
    per_station = nearest(amb, fac, turnout_minutes=np.array([0.0, 5.0]))
    assert per_station.node_value[fac] == pytest.approx([0.0, 5.0])


# --- SYNTHETIC hand-made network ---------------------------------------------------------------
def _geodesic(a: int, b: int) -> float:
    """Great-circle metres on the 6,371,008.8 m sphere, written out by hand."""
    (x1, y1), (x2, y2) = SYNTHETIC_NODES[a], SYNTHETIC_NODES[b]
    p1, p2, dl = math.radians(y1), math.radians(y2), math.radians(x2 - x1)
    h = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6_371_008.8 * math.asin(math.sqrt(h))


def test_synthetic_multi_source_equals_hand_values(synthetic_osm) -> None:
    net = build_network(synthetic_osm, mode="drive", cache_dir=None)
    a, b, c, d = net.node_index([1, 2, 3, 4])
    res_kmh, pri_kmh = 25 / 3.6, 60 / 3.6
    ab, bc, bd, cd = _geodesic(1, 2), _geodesic(2, 3), _geodesic(2, 4), _geodesic(3, 4)
    t_ab, t_bc, t_bd, t_cd = ab / res_kmh, bc / res_kmh, bd / pri_kmh, cd / res_kmh
    # facilities at A and C, vehicle drives out
    out = nearest(net, np.array([a, c]), direction="from_facility").node_value * 60
    hand = {a: 0.0, c: 0.0, b: min(t_ab, t_bc), d: min(t_ab + t_bd, t_cd)}
    for node, seconds in hand.items():
        assert out[node] == pytest.approx(seconds, rel=1e-9, abs=1e-9)
    # facility at D only, residents drive to it: B->D is one-way, D->B is not
    to_d = nearest(net, np.array([d]), direction="to_facility").node_value * 60
    assert to_d[b] == pytest.approx(t_bd, rel=1e-9)
    from_d = nearest(net, np.array([d]), direction="from_facility").node_value * 60
    assert from_d[b] == pytest.approx(t_cd + t_bc, rel=1e-9)
    km = nearest(net, np.array([a]), np.array([d]), metric="length", direction="from_facility")
    assert km.value[0] * 1000 == pytest.approx(ab + bd, rel=1e-9)


def test_synthetic_points_mid_edge_same_segment_and_off_network(synthetic_osm) -> None:
    net = build_network(synthetic_osm, mode="drive", cache_dir=None)
    # points on the A-B road at 1/4 and 3/4 (lon 1.50025, 1.50075), 0 m off the road,
    # one place 10 m north of the 3/4 point, and one 5 km away
    pts = gpd.GeoSeries(
        [shapely.Point(1.50025, 42.5), shapely.Point(1.50075, 42.5),
         shapely.Point(1.50075, 42.50009), shapely.Point(1.56, 42.5)],
        crs="EPSG:4326",
    )  # fmt: skip
    fac = attach(net, pts.iloc[:1], max_snap_m=200)
    places = attach(net, pts.iloc[1:], max_snap_m=200)
    assert places.reachable.tolist() == [True, True, False]
    assert places.unreachable()["distance_m"].iloc[0] > 4000
    res = nearest(net, fac, places, direction="to_facility")
    t_ab = _geodesic(1, 2) / (25 / 3.6)
    leg = places.snap_m[1] / (net.mode.access_speed_kmh / 3.6)
    assert places.snap_m[1] == pytest.approx(10.0, abs=0.3)
    # same segment: half of A-B, no node visited
    # (fractions are measured in UTM, so a 1e-4 relative tolerance)
    assert res.value[0] * 60 == pytest.approx(t_ab / 2, rel=1e-4)
    assert res.value[1] * 60 == pytest.approx(t_ab / 2 + leg, rel=1e-4)
    assert np.isinf(res.value[2]) and res.source[2] == -1
    m = reach_matrix(net, fac, places, cutoff=1.0, direction="to_facility")
    assert m[0, 0] == pytest.approx(res.value[0]) and m[0, 1] == pytest.approx(res.value[1])
    assert m[0].nnz == 2


def test_bad_arguments(andorra_drive) -> None:
    with pytest.raises(CoverageError, match="metric"):
        nearest(andorra_drive, np.array([1]), metric="hours")
    with pytest.raises(CoverageError, match="direction"):
        nearest(andorra_drive, np.array([1]), direction="sideways")
    with pytest.raises(CoverageError, match="cutoff"):
        reach_matrix(andorra_drive, np.array([1]), cutoff=-1)
