"""Attaching points to the nearest road edge (real Andorra network)."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely
from covplan.engine.attach import attach, attach_nodes
from covplan.engine.network import build_network
from covplan.engine.routing import nearest
from covplan.errors import CoverageError, InputError
from shipped import ANDORRA_PBF


def _layer(points: list[tuple[float, float]]) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"place_id": [f"p{i}" for i in range(len(points))]},
        geometry=[shapely.Point(p) for p in points],
        crs="EPSG:4326",
    ).set_index("place_id")


def test_snap_distance_fraction_and_leg_match_shapely(andorra_drive) -> None:
    net = andorra_drive
    pts = _layer([(1.5218, 42.5063), (1.5341, 42.5096), (1.4913, 42.4636), (1.5803, 42.5343)])
    att = attach(net, pts, max_snap_m=500)
    assert att.reachable.all()
    metric = pts.to_crs(net.crs).geometry.values
    edges_xy = net.geometry_xy  # independent: brute force over every directed edge
    for k, p in enumerate(metric):
        d = shapely.distance(edges_xy, p)
        assert att.snap_m[k] == pytest.approx(d.min(), abs=1e-6)
        seg = net.seg_geometry_xy[att.segment[k]]
        on_road = seg.interpolate(att.fraction[k], normalized=True)
        assert on_road.distance(p) == pytest.approx(att.snap_m[k], abs=1e-6)
    speed = net.mode.access_speed_kmh / 3.6
    np.testing.assert_allclose(att.leg_s, att.snap_m / speed)
    assert list(att.ids) == ["p0", "p1", "p2", "p3"]
    edges = att.edge(net)
    assert (edges >= 0).all()


def test_place_off_the_network_is_reported_with_its_distance(andorra_drive) -> None:
    # Coma Pedrosa summit (2,942 m), far from any drivable road
    pts = _layer([(1.4442, 42.5917), (1.5218, 42.5063)])
    att = attach(andorra_drive, pts, max_snap_m=1000)
    assert att.reachable.tolist() == [False, True]
    report = att.unreachable()
    assert report["id"].tolist() == ["p0"]
    peak = pts.to_crs(andorra_drive.crs).geometry.iloc[0]
    true_d = shapely.distance(andorra_drive.geometry_xy, peak).min()
    assert report["distance_m"].iloc[0] == pytest.approx(true_d) and true_d > 1000
    res = nearest(andorra_drive, np.array([0]), att)
    assert np.isinf(res.value[0]) and res.source[0] == -1 and np.isfinite(res.value[1])


def test_facility_outside_the_study_area(tmp_path) -> None:
    box = shapely.box(1.50, 42.49, 1.54, 42.52)
    net = build_network(ANDORRA_PBF, mode="drive", study_area=box, buffer_m=2000, cache_dir=None)
    # inside the buffer (Santa Coloma, 1 km outside the box) attaches and is counted;
    # Encamp (5 km outside, beyond the buffer) is unreachable with its distance
    fac = _layer([(1.4987, 42.4943), (1.5803, 42.5343)])
    att = attach(net, fac, max_snap_m=500)
    assert att.reachable.tolist() == [True, False]
    assert att.snap_m[1] > 2000
    place = attach(net, _layer([(1.5218, 42.5063)]), max_snap_m=500)
    res = nearest(net, att, place)
    assert np.isfinite(res.value[0]) and res.source[0] == 0


def test_polygons_attach_by_centroid_and_bad_inputs(andorra_drive) -> None:
    poly = shapely.Point(1.5218, 42.5063).buffer(0.002)
    gdf = gpd.GeoDataFrame(geometry=[poly, shapely.Point(1.5218, 42.5063)], crs="EPSG:4326")
    att = attach(andorra_drive, gdf)
    assert att.segment[0] == att.segment[1]
    assert att.fraction[0] == pytest.approx(att.fraction[1], abs=1e-3)
    empty = gpd.GeoDataFrame(geometry=[shapely.Point()], crs="EPSG:4326")
    with pytest.raises(InputError, match="has no geometry"):
        attach(andorra_drive, empty)
    with pytest.raises(CoverageError, match="max_snap_m"):
        attach(andorra_drive, gdf, max_snap_m=0)


def test_attach_nodes_sits_on_the_node(andorra_drive) -> None:
    net = andorra_drive
    att = attach_nodes(net, np.array([0, 5, 77]))
    for k, node in enumerate([0, 5, 77]):
        seg = att.segment[k]
        end = net.seg_start[seg] if att.fraction[k] == 0 else net.seg_end[seg]
        assert end == node
