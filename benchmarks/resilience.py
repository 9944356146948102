"""Single-points-of-failure benchmark on Andorra: the fast analysis against brute force.

Run ``python benchmarks/resilience.py``. The shipped Andorra scenario is loaded (ambulance
network from the 2013 OSM extract, the hospitals, the modelled population places); the
emergency circle is BZ-12 / BZ-13 (urban 15 min, rural 30 min by ambulance, 2 min turnout).
:func:`covplan.engine.closures.single_points_of_failure` (one Dijkstra, then only the
shortest-path subtrees a segment carries are repaired) is timed against
:func:`~covplan.engine.closures.single_points_of_failure_bruteforce` (every road segment
removed in turn, a full search each time), in the same run, on the same inputs. The fast
analysis takes the best of ``RUNS`` runs, the brute force one run.

The last line reads ``spof_speedup_vs_bruteforce=<ratio>`` (target >= 20, same answer).
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from covplan import pipeline  # noqa: E402
from covplan.engine.closures import (  # noqa: E402
    single_points_of_failure,
    single_points_of_failure_bruteforce,
)
from covplan.resilience import emergency_rules  # noqa: E402
from covplan.scenario import load_scenario  # noqa: E402

SCENARIO = REPO / "data" / "scenarios" / "andorra.toml"
RUNS = 5


def main() -> None:
    """Print both timings, whether the answers are equal, and the speed-up."""
    warnings.simplefilter("ignore")
    scenario = load_scenario(SCENARIO)
    inputs = pipeline.load_inputs(scenario)
    rules = emergency_rules(pipeline.rules_for_scenario(scenario))
    access = pipeline.road_access(scenario, inputs)
    mode = rules[0].mode
    net = access.network(mode)
    src = access.attachment(mode, "facilities")
    src = src.subset(inputs.facilities["type"].isin(rules[0].facility_types).to_numpy()
                     & src.reachable)
    tgt = access.attachment(mode, "places")
    limits = np.column_stack([r.limit_per_place(inputs.places).to_numpy() for r in rules])
    limit = np.nanmax(np.where(np.isnan(limits), -np.inf, limits), axis=1)
    pop = inputs.places["population"].to_numpy(float)
    kw = {"limit_minutes": limit, "weights": pop}
    print(f"network: {net.n_nodes} nodes, {net.n_edges} edges, {net.seg_fwd.shape[0]} road "
          f"segments; {len(src)} facilities, {len(tgt)} places; rules {[r.id for r in rules]}")
    fast_times = []
    for _ in range(RUNS):
        t0 = time.perf_counter()
        fast = single_points_of_failure(net, src, tgt, **kw)
        fast_times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    brute = single_points_of_failure_bruteforce(net, src, tgt, **kw)
    brute_s = time.perf_counter() - t0
    fast_s = min(fast_times)
    same = fast.equals(brute)
    print(f"segments with a loss: {len(fast)}; top: OSM way {fast['osm_way_id'].iloc[0]} "
          f"({fast['residents_lost'].iloc[0]:,.0f} residents)")
    print(f"spof_fast_s={fast_s:.3f}")
    print(f"spof_bruteforce_s={brute_s:.3f}")
    print(f"spof_same_answer={same}")
    print(f"spof_speedup_vs_bruteforce={brute_s / fast_s:.1f}")


if __name__ == "__main__":
    main()
