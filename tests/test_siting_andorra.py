"""Siting on Andorra with the real engine: reproducible proposals and a monotone curve.

Drive network from the 2013 OSM extract, the shipped population places and hospitals, and
candidates from a 1 km grid of road nodes inside the parishes (at least 300 m from a hospital).
The coverage the curve reports is checked against an independent computation: the engine's
one-pass multi-source ``nearest`` from the hospitals plus the proposed sites.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from covplan.engine.attach import attach
from covplan.engine.network import build_network
from covplan.engine.routing import nearest, reach_matrix
from covplan.siting import SitingProblem
from covplan.siting.candidates import exclude, grid_candidates
from covplan.siting.curve import coverage_curve
from shipped import ANDORRA_FACILITIES, ANDORRA_PARISHES, ANDORRA_PBF, ANDORRA_PLACES


@pytest.fixture(scope="module")
def andorra():
    network = build_network(ANDORRA_PBF, mode="drive", cache_dir=None)
    places = gpd.read_file(ANDORRA_PLACES)
    facilities = gpd.read_file(ANDORRA_FACILITIES)
    hospitals = facilities[facilities["type"] == "hospital"].reset_index(drop=True)
    parishes = gpd.read_file(ANDORRA_PARISHES)
    area = parishes.to_crs(network.crs).union_all()
    hosp_xy = hospitals.to_crs(network.crs).geometry
    cands = grid_candidates(area, spacing_m=1000, node_x=network.xy[:, 0],
                            node_y=network.xy[:, 1])
    cands = exclude(cands, facilities_x=hosp_xy.x, facilities_y=hosp_xy.y, min_distance_m=300)
    cand_pts = gpd.GeoDataFrame(
        {"facility_id": [f"cand-{i}" for i in range(len(cands))]},
        geometry=gpd.points_from_xy(network.lonlat[cands.node, 0],
                                    network.lonlat[cands.node, 1]),
        crs="EPSG:4326",
    )
    sources = gpd.GeoDataFrame(
        pd.concat([hospitals[["facility_id", "geometry"]], cand_pts], ignore_index=True),
        geometry="geometry", crs="EPSG:4326",
    )
    src_att = attach(network, sources, max_snap_m=1000)
    tgt_att = attach(network, places, max_snap_m=1000)
    times = reach_matrix(network, src_att, tgt_att, cutoff=30.0, direction="to_facility")
    threshold = np.where(places["urban_rural"] == "urban", 15.0, 30.0)
    problem = SitingProblem.from_matrix(
        times, existing=np.arange(len(hospitals)), population=places["population"],
        threshold_minutes=threshold, unit_ids=places["unit_id"],
        site_ids=sources["facility_id"],
    )
    return network, src_att, tgt_att, problem, threshold, places


def test_andorra_proposals_reproducible_and_curve_monotone(andorra) -> None:
    network, src_att, tgt_att, problem, threshold, places = andorra
    assert problem.existing.size == 7 and problem.candidates.size > 100
    assert problem.total_population == pytest.approx(85_015)
    first = coverage_curve(problem, 5)
    second = coverage_curve(problem, 5)
    pd.testing.assert_frame_equal(first, second)
    assert first["covered_population"].is_monotonic_increasing
    assert first.loc[1, "covered_population"] > first.loc[0, "covered_population"]
    exact = coverage_curve(problem, 3, method="exact")
    assert exact["covered_population"].is_monotonic_increasing
    assert (exact["covered_population"].to_numpy() + 1e-6
            >= first["covered_population"].to_numpy()[:4]).all()

    # independent: one multi-source nearest() pass from the hospitals plus the proposed sites
    pop = places["population"].to_numpy()
    for k in range(6):
        rows = np.array([*problem.existing, *first.loc[k, "sites"]])
        sub = type(src_att)(
            src_att.ids[rows], src_att.segment[rows], src_att.fraction[rows],
            src_att.snap_m[rows], src_att.leg_s[rows], src_att.reachable[rows],
            src_att.max_snap_m,
        )
        minutes = nearest(network, sub, tgt_att, direction="to_facility").value
        covered = float(pop[minutes <= threshold].sum())
        assert first.loc[k, "covered_population"] == pytest.approx(covered)
