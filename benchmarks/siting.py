"""Siting benchmark on the Andorra drive network: precompute, what-if and proposal timings.

Run ``python benchmarks/siting.py``. The engine builds the drive network from the 2013 OSM
extract, attaches the population places (data/population/andorra_places.geojson), the existing
hospitals (data/facilities/andorra.geojson) and 2,000 candidate road nodes, and computes the
facility-by-place travel-time matrix (to the facility, 30-minute cutoff). Then the siting layer is
timed. A second, larger run uses ~5,000 road nodes as places with a 15-minute threshold (a stress
test of the what-if engine: those places carry no real population, each counts 1).

The last line reads ``whatif_add_one_site_ms=<median>`` (real places).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from covplan.engine.attach import attach  # noqa: E402
from covplan.engine.network import build_network  # noqa: E402
from covplan.engine.routing import reach_matrix  # noqa: E402
from covplan.siting import SitingProblem, greedy_mclp, solve  # noqa: E402
from covplan.siting.curve import coverage_curve  # noqa: E402
from covplan.siting.whatif import WhatIf  # noqa: E402

PBF = REPO / "data" / "osm" / "andorra-2013-05-23.osm.pbf"
PLACES = REPO / "data" / "population" / "andorra_places.geojson"
FACILITIES = REPO / "data" / "facilities" / "andorra.geojson"
N_CANDIDATES = 2_000
CUTOFF_MIN = 30.0
RUNS = 25


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def median_ms(fn, args) -> float:
    times = []
    for a in args:
        t0 = time.perf_counter()
        fn(a)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def sources_layer(network, hospitals: gpd.GeoDataFrame, nodes: np.ndarray) -> gpd.GeoDataFrame:
    cand = gpd.GeoDataFrame(
        {"facility_id": [f"node-{network.node_ids[n]}" for n in nodes]},
        geometry=gpd.points_from_xy(network.lonlat[nodes, 0], network.lonlat[nodes, 1]),
        crs="EPSG:4326",
    )
    both = pd.concat([hospitals[["facility_id", "geometry"]], cand], ignore_index=True)
    return gpd.GeoDataFrame(both, geometry="geometry", crs="EPSG:4326")


def run(label, network, sources, targets, population, threshold, unit_ids, n_existing) -> float:
    print(f"\n== {label}")
    t0 = time.perf_counter()
    src_att = attach(network, sources, max_snap_m=1000)
    tgt_att = attach(network, targets, max_snap_m=1000)
    times = reach_matrix(network, src_att, tgt_att, cutoff=CUTOFF_MIN, metric="time",
                         direction="to_facility")
    print(f"travel-time matrix {times.shape[0]} x {times.shape[1]}, {times.nnz:,} pairs "
          f"<= {CUTOFF_MIN:g} min: {ms(time.perf_counter() - t0)}")

    t0 = time.perf_counter()
    problem = SitingProblem.from_matrix(
        times, existing=np.arange(n_existing), population=population,
        threshold_minutes=threshold, unit_ids=unit_ids,
        site_ids=sources["facility_id"].to_numpy(),
    )
    whatif = WhatIf(problem)
    print(f"precompute (SitingProblem + WhatIf): {ms(time.perf_counter() - t0)}")
    print(problem)

    cands = problem.candidates
    picks = cands[np.linspace(0, cands.size - 1, RUNS).astype(int)]
    add_ms = median_ms(whatif.add, picks)
    close_ms = median_ms(whatif.close, [problem.existing[i % n_existing] for i in range(RUNS)])
    move_ms = median_ms(lambda ab: whatif.move(*ab),
                        [(problem.existing[i % n_existing], picks[i]) for i in range(RUNS)])
    print(f"what-if add one site: median {add_ms:.2f} ms ({RUNS} runs)")
    print(f"what-if close one facility: median {close_ms:.2f} ms ({RUNS} runs)")
    print(f"what-if move one facility: median {move_ms:.2f} ms ({RUNS} runs)")

    t0 = time.perf_counter()
    greedy = greedy_mclp(problem, 10)
    print(f"propose 10 sites from {cands.size:,} candidates (lazy greedy MCLP): "
          f"{ms(time.perf_counter() - t0)}; {greedy.summary()}")
    auto = solve(problem, "mclp", n_sites=10, time_limit=60)
    print(f"propose 10 sites, solve(method='auto'): {ms(auto.seconds)}; {auto.summary()}")
    t0 = time.perf_counter()
    pmed = solve(problem, "pmedian", n_sites=10, method="greedy")
    print(f"propose 10 sites (p-median greedy + substitution): {ms(time.perf_counter() - t0)}; "
          f"weighted minutes {pmed.weighted_minutes:,.0f}")

    first = coverage_curve(problem, 5)
    second = coverage_curve(problem, 5)
    same = first["sites"].tolist() == second["sites"].tolist()
    mono = bool(first["covered_population"].is_monotonic_increasing)
    print(f"curve 0..5 new sites (greedy): reproducible={same} monotone={mono}")
    for row in first.itertuples():
        print(f"  {row.n_new_sites} new: covered {row.covered_population:,.0f} "
              f"({row.covered_share:.1%}) sites {list(row.site_ids)}")
    return add_ms


def main() -> None:
    t0 = time.perf_counter()
    network = build_network(PBF, mode="drive", simplify=False)  # one node per OSM node
    print(f"drive network: {network.n_nodes:,} nodes, {network.n_edges:,} edges "
          f"({ms(time.perf_counter() - t0)}; {network.report.summary()})")
    facilities = gpd.read_file(FACILITIES)
    hospitals = facilities[facilities["type"] == "hospital"].reset_index(drop=True)
    rng_nodes = np.unique(np.linspace(0, network.n_nodes - 1, N_CANDIDATES).astype(np.int64))
    sources = sources_layer(network, hospitals, rng_nodes)
    print(f"existing facilities: {len(hospitals)} hospitals; candidates: {N_CANDIDATES:,} road "
          "nodes evenly spread over the node list")

    # stress: ~5,000 road nodes as places (population 1 each, rural 30-minute threshold)
    nodes = np.unique(np.linspace(0, network.n_nodes - 1, 5000).astype(np.int64))
    node_places = gpd.GeoDataFrame(
        geometry=gpd.points_from_xy(network.lonlat[nodes, 0], network.lonlat[nodes, 1]),
        crs="EPSG:4326",
    )
    run(f"STRESS: {len(nodes):,} road nodes as places (population 1 each, 15 min)", network,
        sources, node_places, np.ones(len(nodes)), np.full(len(nodes), 15.0), None,
        len(hospitals))

    places = gpd.read_file(PLACES)
    threshold = np.where(places["urban_rural"] == "urban", 15.0, 30.0)
    add_ms = run(f"REAL: {len(places):,} population places (urban 15 / rural 30 min)", network,
                 sources, places, places["population"].to_numpy(float), threshold,
                 places["unit_id"].to_numpy(), len(hospitals))
    print(f"matrix-only what-if add (a candidate already in the matrix): {add_ms:.3f} ms")
    click_ms = scenario_whatif()
    print(f"whatif_add_one_site_ms={click_ms:.3f}")


def scenario_whatif() -> float:
    """End to end as in the app: a clicked point is routed, then compared with the baseline."""
    from covplan.pipeline import load_inputs, road_access, rules_for_scenario, run_scenario
    from covplan.scenario import load_scenario
    from covplan.siting.session import SitingSession
    from covplan.whatif import FacilityChange, NewFacility, what_if

    print("\n== SCENARIO: data/scenarios/andorra.toml, DRIVE-15 (15 min drive to a hospital)")
    scenario = load_scenario(REPO / "data" / "scenarios" / "andorra.toml")
    t0 = time.perf_counter()
    inputs = load_inputs(scenario)
    access = road_access(scenario, inputs)
    rules = rules_for_scenario(scenario)
    base = run_scenario(scenario, inputs=inputs, access=access, with_isochrones=False)
    session = SitingSession.from_access(access, rules, rule_id="DRIVE-15")
    print(f"precompute once per scenario (inputs, networks, baseline audit, siting matrix): "
          f"{ms(time.perf_counter() - t0)}")
    rng = np.random.default_rng(7)
    places = inputs.places.geometry
    picks = rng.choice(len(places), RUNS, replace=False)
    points = [(places.iloc[i].x + 0.002, places.iloc[i].y) for i in picks]
    click_ms = median_ms(lambda p: session.add_point(*p), points)
    print(f"what-if add one clicked site (attach + bounded Dijkstra + delta), DRIVE-15: "
          f"median {click_ms:.2f} ms ({RUNS} runs)")
    full_ms = median_ms(
        lambda p: what_if(access, rules,
                          FacilityChange(add=(NewFacility(p[0], p[1], type="hospital"),)),
                          base_audit=base.unit_results),
        points[:7],
    )
    print(f"what-if add one site, every standard re-audited ({len(rules)} standards): "
          f"median {full_ms:.1f} ms (7 runs)")
    return click_ms


if __name__ == "__main__":
    main()
