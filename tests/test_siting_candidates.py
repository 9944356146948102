"""Candidate sites on real Liechtenstein road nodes, checked by brute-force geometry.

Road nodes: every node of a drivable way (``highway`` in a fixed list) of the Liechtenstein
extract, read with pyosmium and projected to UTM 32N; study area: the convex hull of the
village and town seats (place=village|town) buffered by 1 km; the hospital is the existing facility.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import osmium
import pytest
import shapely
from covplan.errors import CoverageError
from covplan.siting.candidates import (
    combine,
    exclude,
    grid_candidates,
    point_candidates,
    seat_candidates,
)
from pyproj import Transformer
from shipped import LIECHTENSTEIN_PBF

DRIVE = {"motorway", "trunk", "primary", "secondary", "tertiary", "unclassified", "residential",
         "living_street", "service"}
TO_UTM = Transformer.from_crs(4326, 32632, always_xy=True)


@pytest.fixture(scope="module")
def data():
    node_ids: set[int] = set()
    for way in osmium.FileProcessor(str(LIECHTENSTEIN_PBF), osmium.osm.WAY):
        if way.tags.get("highway") in DRIVE:
            node_ids.update(n.ref for n in way.nodes)
    lonlat, seats, hospital = {}, [], None
    for node in osmium.FileProcessor(str(LIECHTENSTEIN_PBF), osmium.osm.NODE):
        if node.id in node_ids:
            lonlat[node.id] = (node.location.lon, node.location.lat)
        if node.tags.get("place") in ("village", "town"):
            seats.append((node.tags.get("name"), node.location.lon, node.location.lat))
        if node.tags.get("amenity") == "hospital":
            hospital = TO_UTM.transform(node.location.lon, node.location.lat)
    ids = np.array(sorted(lonlat))
    xy = np.array([TO_UTM.transform(*lonlat[i]) for i in ids])
    seat_gdf = gpd.GeoDataFrame(
        {"name": [s[0] for s in seats]},
        geometry=gpd.points_from_xy([s[1] for s in seats], [s[2] for s in seats]),
        crs="EPSG:4326",
    )
    seat_xy = np.array([TO_UTM.transform(s[1], s[2]) for s in seats])
    area = shapely.MultiPoint(seat_xy).convex_hull.buffer(1000)
    return xy, seat_gdf, seat_xy, area, np.array(hospital)


def brute_nearest(xy: np.ndarray, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d = np.hypot(pts[:, None, 0] - xy[None, :, 0], pts[:, None, 1] - xy[None, :, 1])
    return d.argmin(axis=1), d.min(axis=1)


def test_grid_candidates_are_the_nearest_nodes_inside_the_area(data) -> None:
    xy, _, _, area, _ = data
    assert xy.shape[0] > 3000
    cands = grid_candidates(area, spacing_m=1000, node_x=xy[:, 0], node_y=xy[:, 1])
    # the grid, rebuilt independently
    minx, miny, maxx, maxy = area.bounds
    gx, gy = np.meshgrid(np.arange(minx + 500, maxx, 1000), np.arange(miny + 500, maxy, 1000))
    pts = np.column_stack([gx.ravel(), gy.ravel()])
    pts = pts[[area.contains(shapely.Point(p)) for p in pts]]
    idx, dist = brute_nearest(xy, pts)
    ok = dist <= 1000
    inside = np.array([area.contains(shapely.Point(xy[i])) for i in idx])
    expected = np.unique(idx[ok & inside])
    np.testing.assert_array_equal(np.sort(cands.node), expected)
    assert len(np.unique(cands.node)) == len(cands)
    np.testing.assert_allclose(cands.x, xy[cands.node, 0])
    assert set(cands.source) == {"grid"}
    assert sum(cands.excluded.values()) == pts.shape[0] - len(cands)


def test_exclusion_by_distance_to_existing_facility(data) -> None:
    xy, _, _, area, hospital = data
    cands = grid_candidates(area, spacing_m=500, node_x=xy[:, 0], node_y=xy[:, 1])
    kept = exclude(cands, facilities_x=[hospital[0]], facilities_y=[hospital[1]],
                   min_distance_m=2000)
    d_all = np.hypot(cands.x - hospital[0], cands.y - hospital[1])
    assert (d_all < 2000).sum() > 0
    assert len(kept) == int((d_all >= 2000).sum())
    assert np.hypot(kept.x - hospital[0], kept.y - hospital[1]).min() >= 2000
    assert kept.excluded["closer than 2000 m to an existing facility"] == int((d_all < 2000).sum())


def test_seat_and_user_candidates_snap_and_respect_the_boundary(data) -> None:
    xy, seat_gdf, seat_xy, _, _ = data
    seats = seat_candidates(seat_gdf, crs="EPSG:32632", node_x=xy[:, 0], node_y=xy[:, 1])
    idx, dist = brute_nearest(xy, seat_xy)
    first = {}
    for name, i, d in zip(seat_gdf["name"], idx, dist, strict=True):
        first.setdefault(i, (name, d))
    assert sorted(seats.node.tolist()) == sorted(first)
    for node, label, snap in zip(seats.node, seats.label, seats.snap_m, strict=True):
        assert first[node][0] == label and first[node][1] == pytest.approx(snap)
    assert "Vaduz" in set(seats.label)
    # a small boundary around Vaduz's seat keeps only what lies inside it
    vaduz = seat_xy[list(seat_gdf["name"]).index("Vaduz")]
    box = shapely.Point(vaduz).buffer(3000)
    inside = exclude(seats, area=box)
    assert all(box.contains(shapely.Point(x, y)) for x, y in zip(inside.x, inside.y, strict=True))
    assert 0 < len(inside) < len(seats)
    user = point_candidates([vaduz[0], vaduz[0] + 5], [vaduz[1], vaduz[1]], node_x=xy[:, 0],
                            node_y=xy[:, 1], labels=["a", "b"])
    assert len(user) == 1 and user.label[0] == "a"  # both snap to the same node: kept once
    both = combine(seats, user)
    assert len(both) == len(seats) + (0 if user.node[0] in set(seats.node) else 1)
    far = point_candidates([vaduz[0] + 50_000], [vaduz[1]], node_x=xy[:, 0], node_y=xy[:, 1],
                           max_snap_m=1000)
    assert len(far) == 0 and far.excluded == {"farther than 1000 m from a road": 1}


def test_bad_inputs_raise(data) -> None:
    xy, _, _, area, _ = data
    with pytest.raises(CoverageError, match="spacing"):
        grid_candidates(area, spacing_m=0, node_x=xy[:, 0], node_y=xy[:, 1])
    with pytest.raises(CoverageError, match="too fine"):
        grid_candidates(area, spacing_m=0.5, node_x=xy[:, 0], node_y=xy[:, 1])
    with pytest.raises(CoverageError, match="no road nodes"):
        point_candidates([0.0], [0.0], node_x=[], node_y=[])
