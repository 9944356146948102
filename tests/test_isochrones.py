"""Isochrone polygons on the real Andorra network."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from covplan.engine.isochrones import isochrones
from covplan.engine.routing import nearest
from covplan.errors import CoverageError

#: Andorra la Vella and Encamp (lon, lat) as facility locations
TOWNS = [(1.5218, 42.5063), (1.5803, 42.5343)]


@pytest.fixture(scope="module")
def iso_case(andorra_drive):
    net = andorra_drive
    fac = np.array(
        [int(np.argmin(np.hypot(net.lonlat[:, 0] - x, net.lonlat[:, 1] - y))) for x, y in TOWNS]
    )
    iso = isochrones(net, fac, minutes=(30, 15), direction="to_facility", buffer_m=60)
    return net, fac, iso, iso.to_crs(net.crs)


def test_15_minute_area_nests_in_30_minute_area(iso_case) -> None:
    net, fac, iso, metric = iso_case
    assert iso.crs.to_epsg() == 4326 and iso["minutes"].tolist() == [15.0, 30.0]
    a15, a30 = metric.geometry.iloc[0], metric.geometry.iloc[1]
    assert a15.difference(a30).area < 1e-6 * a15.area
    assert a30.area > a15.area > 0
    assert iso["area_km2"].iloc[0] == pytest.approx(a15.area / 1e6, rel=1e-3)


def test_area_follows_roads_not_a_hull(iso_case) -> None:
    net, fac, iso, metric = iso_case
    a15 = metric.geometry.iloc[0]
    assert a15.area < 0.5 * a15.convex_hull.area
    values = nearest(net, fac, direction="to_facility").node_value
    xy = net.xy
    inside = shapely.contains_xy(a15.buffer(1.0), xy[:, 0], xy[:, 1])
    # every node within 15 minutes is inside the 15-minute area
    assert inside[values <= 15].all()
    # nodes more than 20 minutes away and farther than the band from any node within
    # 15 minutes are outside it (no land between valleys is covered)
    near = values <= 15
    far = np.flatnonzero(values > 20)
    tree = shapely.STRtree(shapely.points(xy[near]))
    _, dist = tree.query_nearest(shapely.points(xy[far]), return_distance=True)
    clear = far[dist > 1000]
    assert clear.size > 20 and not inside[clear].any()


def test_bad_thresholds(andorra_drive) -> None:
    with pytest.raises(CoverageError, match="positive"):
        isochrones(andorra_drive, np.array([0]), minutes=(0,))
    with pytest.raises(CoverageError, match="at least one"):
        isochrones(andorra_drive, np.array([0]), minutes=())
